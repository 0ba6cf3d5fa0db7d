//! Requests that keep flowing while a service goes away and comes back, and
//! what they answered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;

/// One answer the flow got.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The path asked for (a failure names the request).
    pub path: String,
    pub status: u16,
    pub retry_after: Option<String>,
    /// The start of the body of anything but a redirect.
    pub body: String,
    pub at: Instant,
}

/// Requests every URL in turn from a few tasks until stopped. A transport
/// error or a client timeout (a hang) fails the flow.
pub struct Flow {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// No answer may take longer than this: a hang, not a slow render.
pub const HANG: Duration = Duration::from_secs(20);

pub fn client() -> reqwest::Client {
    kiln_e2e::http_with_timeout(HANG)
}

impl Flow {
    pub fn start(urls: Vec<String>, tasks: usize) -> Self {
        let urls = Arc::new(urls);
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..tasks)
            .map(|t| {
                let (urls, stop, answers) = (urls.clone(), stop.clone(), answers.clone());
                tokio::spawn(async move {
                    let client = client();
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        let url = i % urls.len();
                        let response = match client.get(&urls[url]).send().await {
                            Ok(response) => response,
                            Err(err) => bail!("request to {} failed: {err}", urls[url]),
                        };
                        let status = response.status().as_u16();
                        let retry_after = response
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let body = if status == 302 {
                            String::new()
                        } else {
                            let text = response.text().await.unwrap_or_default();
                            text.chars().take(200).collect()
                        };
                        let answer = Answer {
                            path: reqwest::Url::parse(&urls[url])
                                .map(|u| u.path().to_owned())
                                .unwrap_or_default(),
                            status,
                            retry_after,
                            body,
                            at: Instant::now(),
                        };
                        if let Ok(mut answers) = answers.lock() {
                            answers.push(answer);
                        }
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                    Ok(())
                })
            })
            .collect();
        Self {
            stop,
            answers,
            tasks,
        }
    }

    /// Stops the flow; every answer it got, or the first failure.
    pub async fn finish(self) -> anyhow::Result<Vec<Answer>> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await??;
        }
        let answers = self.answers.lock().map(|a| a.clone()).unwrap_or_default();
        Ok(answers)
    }
}

/// Requests each URL until it answers 302, within `within` overall.
pub async fn settle(urls: &[String], within: Duration) -> anyhow::Result<()> {
    let client = client();
    let deadline = Instant::now() + within;
    for url in urls {
        loop {
            let response = client.get(url).send().await?;
            let status = response.status().as_u16();
            if status == 302 {
                break;
            }
            if Instant::now() > deadline {
                let body = response.text().await.unwrap_or_default();
                bail!("{url} still answers {status} after {within:?}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Checks what users saw: only 302 or 503, every 503 with `Retry-After`.
pub fn check_answers(answers: &[Answer]) -> anyhow::Result<()> {
    for answer in answers {
        match answer.status {
            302 => {}
            503 if answer.retry_after.is_some() => {}
            503 => bail!(
                "{} answered 503 without Retry-After: {}",
                answer.path,
                answer.body
            ),
            other => bail!("{} answered {other}: {}", answer.path, answer.body),
        }
    }
    Ok(())
}
