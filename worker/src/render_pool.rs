//! A fixed pool of render threads, one per configured concurrent image: CPU
//! work stays off the async runtime, at most that many images are in memory
//! at once, and each thread keeps its decode buffer and codec state between
//! images (tokio's blocking pool would hand work to short-lived threads).
//!
//! Two lanes: a free thread always takes on-demand work (a visitor is
//! waiting) before background work (bulk pre-renders). Workers hold more
//! deliveries than they have threads so fetches and uploads overlap renders;
//! the lanes keep a visitor's render from queueing behind bulk renders the
//! worker already holds.
//!
//! A thread cannot be killed, so a task whose caller gave up (its job timed
//! out) is not left running unchecked: a queued one is dropped when a thread
//! reaches it, and a running one sees [`Abandoned::is_abandoned`] at its
//! next checkpoint. There are never more busy threads than the pool has.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context as _};

type Task = Box<dyn FnOnce() + Send>;

/// Tells a running task whether its caller is still waiting for it.
pub struct Abandoned<'a> {
    check: &'a dyn Fn() -> bool,
}

impl Abandoned<'_> {
    pub fn is_abandoned(&self) -> bool {
        (self.check)()
    }

    /// For work run outside the pool (tests, benches): never abandoned.
    pub fn never() -> Abandoned<'static> {
        Abandoned { check: &|| false }
    }
}

/// Which queue a render waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    OnDemand,
    Background,
}

impl Lane {
    /// The lane of a message with this RabbitMQ priority.
    pub fn of_priority(priority: u8) -> Self {
        if priority >= kiln_core::job::PRIORITY_ON_DEMAND {
            Self::OnDemand
        } else {
            Self::Background
        }
    }
}

#[derive(Default)]
struct Queues {
    on_demand: VecDeque<Task>,
    background: VecDeque<Task>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

pub struct RenderPool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl RenderPool {
    pub fn new(threads: usize) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        let handles = (0..threads.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("kiln-render-{i}"))
                    .spawn(move || work(&shared))
                    .context("starting a render thread")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            shared,
            threads: Mutex::new(handles),
        })
    }

    /// Runs `f` on a render thread, in the on-demand lane.
    pub async fn run<R, F>(&self, f: F) -> anyhow::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Abandoned<'_>) -> R + Send + 'static,
    {
        self.run_in(Lane::OnDemand, f).await
    }

    /// Runs `f` on a render thread once the tasks ahead of it in its lane
    /// (and, for background work, every on-demand task) have started. A
    /// panic in `f` is an error here, and the thread lives on.
    pub async fn run_in<R, F>(&self, lane: Lane, f: F) -> anyhow::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Abandoned<'_>) -> R + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let task: Task = Box::new(move || {
            if done.is_closed() {
                // Nobody waits for it any more: the thread goes to the next task.
                return;
            }
            let abandoned = Abandoned {
                check: &|| done.is_closed(),
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| f(&abandoned)));
            let _ = done.send(outcome);
        });
        {
            let mut queues = self
                .shared
                .queues
                .lock()
                .map_err(|_| anyhow!("render pool poisoned"))?;
            if queues.closed {
                return Err(anyhow!("render pool is shut down"));
            }
            match lane {
                Lane::OnDemand => queues.on_demand.push_back(task),
                Lane::Background => queues.background.push_back(task),
            }
        }
        self.shared.ready.notify_one();
        result
            .await
            .context("render thread dropped the task")?
            .map_err(|_| anyhow!("render panicked"))
    }

    /// Stops taking work and waits for the threads to finish what they have.
    pub fn shutdown(&self) {
        if let Ok(mut queues) = self.shared.queues.lock() {
            queues.closed = true;
        }
        self.shared.ready.notify_all();
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

/// Takes on-demand tasks first; exits once the pool is closed and drained.
fn work(shared: &Shared) {
    loop {
        let task = {
            let Ok(mut queues) = shared.queues.lock() else {
                return;
            };
            loop {
                if let Some(task) = queues.on_demand.pop_front() {
                    break task;
                }
                if let Some(task) = queues.background.pop_front() {
                    break task;
                }
                if queues.closed {
                    return;
                }
                queues = match shared.ready.wait(queues) {
                    Ok(queues) => queues,
                    Err(_) => return,
                };
            }
        };
        task();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_on_named_threads_and_survives_panics() {
        let pool = RenderPool::new(2).unwrap();
        let name = pool
            .run(|_| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("kiln-render-"));
        let panicked = pool.run(|_| -> u32 { panic!("bad image") }).await;
        assert!(panicked.is_err());
        // Both threads are still there to take work.
        let sum: u32 = futures_util::future::join_all((0..4).map(|i| pool.run(move |_| i)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum();
        assert_eq!(sum, 6);
        pool.shutdown();
        assert!(pool.run(|_| 1).await.is_err());
    }

    #[tokio::test]
    async fn on_demand_work_overtakes_queued_background_work() {
        let pool = Arc::new(RenderPool::new(1).unwrap());
        let order = Arc::new(Mutex::new(Vec::new()));
        // Hold the only thread so everything below queues.
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move |_| {
                    let _ = gate.recv();
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut tasks = Vec::new();
        for (lane, name) in [
            (Lane::Background, "bulk-1"),
            (Lane::Background, "bulk-2"),
            (Lane::OnDemand, "visitor"),
        ] {
            let (pool, order) = (pool.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                pool.run_in(lane, move |_| order.lock().unwrap().push(name))
                    .await
            }));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["visitor", "bulk-1", "bulk-2"]);
        pool.shutdown();
    }

    #[tokio::test]
    async fn abandoned_work_is_skipped_or_told_to_stop() {
        let pool = Arc::new(RenderPool::new(1).unwrap());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (saw_abandoned, seen) = std::sync::mpsc::channel::<bool>();
        // A running task whose caller gives up sees it at its next checkpoint.
        let running = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move |abandoned| {
                    let _ = gate.recv();
                    let _ = saw_abandoned.send(abandoned.is_abandoned());
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // A queued task whose caller gives up never runs.
        let ran = Arc::new(Mutex::new(false));
        let queued = {
            let (pool, ran) = (pool.clone(), ran.clone());
            tokio::spawn(async move { pool.run(move |_| *ran.lock().unwrap() = true).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        running.abort();
        queued.abort();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        release.send(()).unwrap();
        assert!(seen.recv().unwrap(), "the running task was told");
        // The thread is free again, and the queued task was dropped.
        assert_eq!(pool.run(|_| 7).await.unwrap(), 7);
        assert!(!*ran.lock().unwrap());
        pool.shutdown();
    }
}
