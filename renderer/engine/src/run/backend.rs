//! Backends: the places a shard can be rendered — in-process render threads
//! ([`LocalBackend`]) or, implemented outside the engine, renderer nodes over gRPC. The one
//! scheduler ([`super::schedule`]) drives every kind through this interface.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::compose::Worker;
use super::shard::{OutputParams, ShardOutput, render_shard_until};
use crate::input::RawRecord;
use crate::template::Template;

/// One shard handed to a backend.
#[derive(Clone, Debug)]
pub struct ShardWork {
    pub run_id: Arc<str>,
    /// 0-based shard number.
    pub shard: u64,
    /// The shard's records, in input order.
    pub records: Arc<Vec<RawRecord>>,
    pub params: Arc<OutputParams>,
    /// Content hash (hex) of the template every document must be rendered with.
    pub template_sha256: Arc<str>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// How long the shard should take at the throughput observed so far in this run
    /// (`None` before any shard finished): remote backends derive their deadlines from it.
    pub expected: Option<Duration>,
}

/// Why a backend did not return a shard's output. The scheduler acts on the kind, never
/// on the text: `Busy` is retried without blaming the backend; `Cancelled` ends quietly;
/// every other kind marks the backend unhealthy and sends the shard elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("busy: {0}")]
    Busy(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("deadline exceeded: {0}")]
    Timeout(String),
    #[error("stalled: {0}")]
    Stalled(String),
    #[error("invalid answer: {0}")]
    BadAnswer(String),
    #[error("failed: {0}")]
    Failed(String),
    #[error("cancelled")]
    Cancelled,
}

/// A place shards render.
pub trait Backend: Send + Sync {
    /// A name for logs and metrics (`local`, `10.0.0.7:50051`).
    fn name(&self) -> &str;

    /// Shards this backend renders at once; the scheduler runs one worker per slot.
    fn slots(&self) -> usize;

    /// Checks the backend can take work (reachable, has the template); called before the
    /// first shard and again, with back-off, after a failure.
    fn probe(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Renders a shard on `slot`, blocking until done. Must return soon after `cancel` is set.
    fn render(
        &self,
        slot: usize,
        work: &ShardWork,
        cancel: &AtomicBool,
    ) -> Result<ShardOutput, BackendError>;
}

/// `threads`, or one per core when it is 0.
pub fn threads_or_cores(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    }
}

/// In-process rendering: one reusable engine worker per slot.
pub struct LocalBackend {
    template: Arc<Template>,
    workers: Vec<Mutex<Worker>>,
}

impl LocalBackend {
    /// A backend with `threads` render slots (0 = one per core).
    pub fn new(template: Arc<Template>, threads: usize) -> Self {
        let threads = threads_or_cores(threads);
        Self {
            template,
            workers: (0..threads)
                .map(|_| Mutex::new(Worker::default()))
                .collect(),
        }
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &str {
        "local"
    }

    fn slots(&self) -> usize {
        self.workers.len()
    }

    fn render(
        &self,
        slot: usize,
        work: &ShardWork,
        cancel: &AtomicBool,
    ) -> Result<ShardOutput, BackendError> {
        let mut worker = self.workers[slot % self.workers.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        render_shard_until(
            &self.template,
            work.shard,
            &work.records,
            &work.params,
            &mut worker,
            cancel,
        )
        .map_err(|_| BackendError::Cancelled)
    }
}
