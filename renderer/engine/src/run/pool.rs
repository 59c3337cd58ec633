//! The render pool: shards render on dedicated threads, each with its own reusable
//! [`Worker`], behind a bounded queue. Async callers hand in a reply callback and never
//! block their runtime; when the queue is full the job is handed back (back-pressure
//! instead of an unbounded queue).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_channel::{Sender, TrySendError, bounded};

use super::compose::Worker;
use super::shard::{OutputParams, ShardOutput, render_shard_until};
use crate::input::RawRecord;
use crate::template::Template;

/// Why a job gave no output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Its caller went away.
    #[error("the render was cancelled")]
    Cancelled,
    /// The engine panicked outside a record (a bug): the thread lives on.
    #[error("internal error while rendering: {0}")]
    Panicked(String),
}

/// A unit of rendering work and where its result goes.
pub struct Job {
    pub template: Arc<Template>,
    pub shard: u64,
    pub records: Vec<RawRecord>,
    pub params: OutputParams,
    /// Set by the caller when it no longer wants the answer (it went away): a queued job
    /// is skipped, a running one stops at the next record.
    pub cancel: Arc<AtomicBool>,
    /// Receives the output, or why there is none.
    pub reply: Box<dyn FnOnce(Result<ShardOutput, JobError>) + Send>,
}

/// Fixed render threads fed by a bounded queue.
pub struct RenderPool {
    tx: Sender<Job>,
    busy: Arc<AtomicUsize>,
    threads: usize,
}

impl RenderPool {
    /// Starts `threads` render threads behind a queue of `queue` jobs.
    pub fn new(threads: usize, queue: usize) -> Self {
        let (tx, rx) = bounded::<Job>(queue);
        let busy = Arc::new(AtomicUsize::new(0));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let busy = busy.clone();
            std::thread::Builder::new()
                .name(format!("render-{i}"))
                .spawn(move || {
                    let mut worker = Worker::default();
                    for job in rx {
                        if job.cancel.load(Ordering::Relaxed) {
                            (job.reply)(Err(JobError::Cancelled));
                            continue;
                        }
                        busy.fetch_add(1, Ordering::SeqCst);
                        let span = tracing::info_span!(
                            "shard",
                            shard = job.shard,
                            records = job.records.len()
                        );
                        let _e = span.enter();
                        // Records that panic are rejected inside; this catches the rest,
                        // so a bad shard never kills a render thread.
                        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            render_shard_until(
                                &job.template,
                                job.shard,
                                &job.records,
                                &job.params,
                                &mut worker,
                                &job.cancel,
                            )
                        }));
                        busy.fetch_sub(1, Ordering::SeqCst);
                        let out = match out {
                            Ok(Ok(o)) => Ok(o),
                            Ok(Err(_)) => Err(JobError::Cancelled),
                            Err(panic) => {
                                worker = Worker::default();
                                let msg = panic
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_default();
                                tracing::error!(
                                    shard = job.shard,
                                    "render thread caught a panic: {msg}"
                                );
                                Err(JobError::Panicked(msg))
                            }
                        };
                        (job.reply)(out);
                    }
                })
                .expect("render threads start");
        }
        Self {
            tx,
            busy,
            threads: threads.max(1),
        }
    }

    /// Queues a job, or hands it back when the queue is full.
    pub fn try_submit(&self, job: Job) -> Result<(), Box<Job>> {
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => Err(Box::new(job)),
        }
    }

    /// Queues a job, waiting for room.
    pub fn submit(&self, job: Job) {
        let _ = self.tx.send(job);
    }

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// Jobs being rendered now.
    pub fn running(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// Render threads.
    pub fn threads(&self) -> usize {
        self.threads
    }
}
