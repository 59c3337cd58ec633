//! The render pool: shards render on dedicated threads, each with its own reusable
//! [`Worker`], behind a bounded queue. Async callers hand in a reply callback and never
//! block their runtime; when the queue is full the job is handed back (back-pressure
//! instead of an unbounded queue).

use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError, bounded};

use super::compose::Worker;
use super::shard::{OutputParams, ShardOutput, render_shard};
use crate::input::RawRecord;
use crate::template::Template;

/// A unit of rendering work and where its result goes.
pub struct Job {
    pub template: Arc<Template>,
    pub shard: u64,
    pub records: Vec<RawRecord>,
    pub params: OutputParams,
    pub reply: Box<dyn FnOnce(ShardOutput) + Send>,
}

/// Fixed render threads fed by a bounded queue.
pub struct RenderPool {
    tx: Sender<Job>,
}

impl RenderPool {
    /// Starts `threads` render threads behind a queue of `queue` jobs.
    pub fn new(threads: usize, queue: usize) -> Self {
        let (tx, rx) = bounded::<Job>(queue);
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("render-{i}"))
                .spawn(move || {
                    let mut worker = Worker::default();
                    for job in rx {
                        let span = tracing::info_span!(
                            "shard",
                            shard = job.shard,
                            records = job.records.len()
                        );
                        let _e = span.enter();
                        let out = render_shard(
                            &job.template,
                            job.shard,
                            &job.records,
                            &job.params,
                            &mut worker,
                        );
                        (job.reply)(out);
                    }
                })
                .expect("render threads start");
        }
        Self { tx }
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
}
