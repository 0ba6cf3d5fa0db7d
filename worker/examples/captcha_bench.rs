//! Captcha generation speed (draw + PNG encode, the worker's own code), and
//! samples to look at:
//!
//! ```sh
//! captcha_bench sample OUT_DIR [COUNT]     # write COUNT captchas as {code}.png
//! captcha_bench run SECONDS [THREADS]      # captchas per second, per thread
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use kiln_core::captcha::{CaptchaConfig, KeyMode, DEFAULT_ALPHABET};
use kiln_worker::captcha::{generate, Fonts};

fn config() -> CaptchaConfig {
    CaptchaConfig {
        salt: b"bench-salt-0123456789abcdef0123456789".to_vec(),
        key_mode: KeyMode::Hmac,
        length: 6,
        alphabet: DEFAULT_ALPHABET.chars().collect(),
        slot_digits: 3,
        width: 200,
        height: 70,
        issue_ttl: std::time::Duration::from_secs(300),
    }
}

fn fonts() -> anyhow::Result<Fonts> {
    Fonts::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/captcha/fonts"))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, fonts) = (config(), fonts()?);
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["sample", out, rest @ ..] => {
            let count: usize = rest.first().map_or(Ok(8), |n| n.parse())?;
            std::fs::create_dir_all(out)?;
            for _ in 0..count {
                let (code, png) = generate(&config, &fonts)?;
                println!("{code} {} bytes", png.len());
                std::fs::write(Path::new(out).join(format!("{code}.png")), png)?;
            }
            Ok(())
        }
        ["run", seconds, rest @ ..] => {
            let threads: usize = rest.first().map_or(Ok(1), |n| n.parse())?;
            let until = Instant::now() + Duration::from_secs_f64(seconds.parse()?);
            let started = Instant::now();
            let counts = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            let (mut n, mut bytes) = (0usize, 0usize);
                            while Instant::now() < until {
                                let (_, png) = generate(&config, &fonts)?;
                                n += 1;
                                bytes += png.len();
                            }
                            Ok::<_, anyhow::Error>((n, bytes))
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().map_err(|_| anyhow::anyhow!("thread panicked"))?)
                    .collect::<anyhow::Result<Vec<_>>>()
            })?;
            let n: usize = counts.iter().map(|c| c.0).sum();
            let bytes: usize = counts.iter().map(|c| c.1).sum();
            let rate = n as f64 / started.elapsed().as_secs_f64();
            println!(
                "generated {rate:.0} captchas/s on {threads} threads ({:.0} per thread), mean {:.1} KB",
                rate / threads as f64,
                bytes as f64 / n.max(1) as f64 / 1024.0
            );
            Ok(())
        }
        _ => bail!("usage: captcha_bench sample OUT_DIR [COUNT] | run SECONDS [THREADS]"),
    }
}
