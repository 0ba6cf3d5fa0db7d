//! Captcha generation: a code from the OS CSPRNG, drawn distorted, as PNG.

pub mod draw;
pub mod refill;

use kiln_core::captcha::CaptchaConfig;

pub use draw::Fonts;

/// A fresh captcha: its code and PNG.
pub fn generate(config: &CaptchaConfig, fonts: &Fonts) -> anyhow::Result<(String, Vec<u8>)> {
    let code = config.random_code()?;
    let image = draw::draw(&code, fonts, config.width, config.height);
    Ok((code, draw::encode_png(&image)?))
}
