//! The render pool: compositions run on dedicated threads, never on the async runtime.

use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError, bounded};
use renderer::input::RawRecord;
use renderer::run::compose::Worker;
use renderer::run::shard::{OutputParams, ShardOutput, render_shard};
use renderer::template::Template;
use tokio::sync::oneshot;

/// A unit of rendering work.
pub struct Job {
    pub template: Arc<Template>,
    pub shard: u64,
    pub records: Vec<RawRecord>,
    pub params: OutputParams,
    pub reply: oneshot::Sender<ShardOutput>,
}

/// Fixed threads, each with its own reusable [`Worker`], fed by a bounded queue: when the
/// queue is full the node answers "busy" instead of queueing without bound.
pub struct RenderPool {
    tx: Sender<Job>,
}

impl RenderPool {
    /// Starts `threads` render threads behind a queue of `queue` jobs.
    pub fn new(threads: usize, queue: usize) -> Self {
        let (tx, rx) = bounded::<Job>(queue);
        for i in 0..threads {
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
                        let _ = job.reply.send(out);
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

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }
}
