//! A fixed pool of render threads, one per configured concurrent image: CPU
//! work stays off the async runtime, at most that many images are in memory
//! at once, and each thread keeps its decode buffer and codec state between
//! images (tokio's blocking pool would hand work to short-lived threads).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context as _};

type Task = Box<dyn FnOnce() + Send>;

pub struct RenderPool {
    sender: Mutex<Option<Sender<Task>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl RenderPool {
    pub fn new(threads: usize) -> anyhow::Result<Self> {
        let (sender, receiver) = channel::<Task>();
        let receiver = Arc::new(Mutex::new(receiver));
        let handles = (0..threads.max(1))
            .map(|i| {
                let receiver = receiver.clone();
                std::thread::Builder::new()
                    .name(format!("kiln-render-{i}"))
                    .spawn(move || work(&receiver))
                    .context("starting a render thread")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            threads: Mutex::new(handles),
        })
    }

    /// Runs `f` on a render thread. A panic in `f` is an error here, and the
    /// thread lives on.
    pub async fn run<R, F>(&self, f: F) -> anyhow::Result<R>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let task: Task = Box::new(move || {
            let _ = done.send(catch_unwind(AssertUnwindSafe(f)));
        });
        {
            let sender = self
                .sender
                .lock()
                .map_err(|_| anyhow!("render pool poisoned"))?;
            sender
                .as_ref()
                .context("render pool is shut down")?
                .send(task)
                .map_err(|_| anyhow!("render threads are gone"))?;
        }
        result
            .await
            .context("render thread dropped the task")?
            .map_err(|_| anyhow!("render panicked"))
    }

    /// Stops taking work and waits for the threads to finish what they have.
    pub fn shutdown(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let handles = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for handle in handles {
            let _ = handle.join();
        }
    }
}

fn work(receiver: &Mutex<Receiver<Task>>) {
    loop {
        let task = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match task {
            Ok(task) => task(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_on_named_threads_and_survives_panics() {
        let pool = RenderPool::new(2).unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("kiln-render-"));
        let panicked = pool.run(|| -> u32 { panic!("bad image") }).await;
        assert!(panicked.is_err());
        // Both threads are still there to take work.
        let sum: u32 = futures_util::future::join_all((0..4).map(|i| pool.run(move || i)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum();
        assert_eq!(sum, 6);
        pool.shutdown();
        assert!(pool.run(|| 1).await.is_err());
    }
}
