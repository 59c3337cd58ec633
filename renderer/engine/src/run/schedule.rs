//! The scheduler: one reader cuts the input into shards, one worker per backend slot pulls
//! shards and renders them, and the calling thread commits them in input order, exactly
//! once. The same code drives in-process threads and renderer nodes.
//!
//! - **Pull-based**: a free slot takes the next shard, so fast backends take more work.
//! - **Bounded window**: a shard is handed out only while it is fewer than `window` shards
//!   ahead of the commit point, so memory stays bounded even when one backend hangs on the
//!   oldest shard.
//! - **Failures**: a backend that fails, times out, stalls or answers something that is not
//!   its shard's output ([`super::answer`]) is marked unhealthy and probed with back-off;
//!   its shard goes back to the queue for another backend, up to `max_attempts` times.
//!   `Busy` is a retry, not a failure.
//! - **Stopping**: cancel aborts in-flight shards; drain hands out nothing new, lets the
//!   shards in flight finish, commits what is contiguous and stops resumably.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, select, unbounded};

use super::answer;
use super::backend::{Backend, BackendError, ShardWork};
use super::commit::Committer;
use super::journal::CommitRecord;
use super::shard::{OutputParams, ShardOutput};
use super::{Progress, RunControl, RunError, RunObserver};
use crate::input::{InputError, RawRecord};

/// What the scheduler needs to know about the run.
pub struct Plan<'a> {
    pub run_id: Arc<str>,
    pub template_sha256: Arc<str>,
    pub params: Arc<OutputParams>,
    /// Records per shard.
    pub batch_records: usize,
    /// Shards already committed and kept: rendering starts after them.
    pub resume: u64,
    /// Committed shards whose files must be rendered again and rewritten.
    pub repair: BTreeSet<u64>,
    /// The kept journal records (indexed by shard), to check repairs against.
    pub kept: &'a [CommitRecord],
    /// Shards that may be rendered ahead of the commit point.
    pub window: usize,
    pub max_attempts: u32,
    /// The run fails when no backend has been healthy for this long.
    pub unavailable: Duration,
}

/// How the scheduler ended (errors are returned as `Err`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Completed,
    Stopped,
    Cancelled,
}

struct Shard {
    id: u64,
    records: Arc<Vec<RawRecord>>,
    attempts: u32,
}

enum Event {
    Done { out: ShardOutput, backend: usize },
    Failed(RunError),
    ReaderDone(u64),
    ReaderFailed(InputError),
}

struct Health {
    healthy: AtomicBool,
    failures: AtomicU32,
}

/// Shared state of one scheduled run.
struct Shared<'a> {
    plan: &'a Plan<'a>,
    backends: &'a [Arc<dyn Backend>],
    health: Vec<Health>,
    observer: &'a dyn RunObserver,
    /// No new shards are handed out; workers and the reader end.
    stop: AtomicBool,
    /// In-flight renders are asked to give up.
    abort: AtomicBool,
    /// Drain: take nothing new, finish what is in flight.
    draining: AtomicBool,
    in_flight: AtomicUsize,
    /// The next shard to commit, and a condition the reader waits on for the window.
    next: Mutex<u64>,
    moved: Condvar,
    /// Render seconds (as microseconds) and records over finished shards.
    render_micros: AtomicU64,
    rendered_records: AtomicU64,
    composed: AtomicU64,
}

impl Shared<'_> {
    fn expected(&self, records: usize) -> Option<Duration> {
        let n = self.rendered_records.load(Ordering::Relaxed);
        (n > 0).then(|| {
            let per = self.render_micros.load(Ordering::Relaxed) as f64 / n as f64;
            Duration::from_micros((per * records as f64) as u64)
        })
    }

    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stop.load(Ordering::Relaxed) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Sets the stop flags when the committer leaves, however it leaves.
struct StopOnDrop<'a, 'b>(&'a Shared<'b>, bool);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
        if self.1 {
            self.0.abort.store(true, Ordering::SeqCst);
        }
        self.0.moved.notify_all();
    }
}

/// Runs the plan over `records` (the input stream) on `backends`, committing through
/// `committer`.
/// `records` delivers the input in order and ends (disconnects) at its end; it is fed by
/// a reader thread of the caller's, so a run can end while that thread still waits for
/// bytes (standard input).
pub fn execute(
    plan: &Plan<'_>,
    records: Receiver<Result<RawRecord, InputError>>,
    committer: &mut Committer,
    backends: &[Arc<dyn Backend>],
    control: &RunControl,
    observer: &dyn RunObserver,
) -> Result<Ended, RunError> {
    if backends.iter().all(|b| b.slots() == 0) {
        return Err(RunError::NoBackend);
    }
    let shared = Shared {
        plan,
        backends,
        health: backends
            .iter()
            .map(|_| Health {
                healthy: AtomicBool::new(false),
                failures: AtomicU32::new(0),
            })
            .collect(),
        observer,
        stop: AtomicBool::new(false),
        abort: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        next: Mutex::new(plan.resume),
        moved: Condvar::new(),
        render_micros: AtomicU64::new(0),
        rendered_records: AtomicU64::new(0),
        composed: AtomicU64::new(0),
    };
    let slots: usize = backends.iter().map(|b| b.slots()).sum();
    let (work_tx, work_rx) = bounded::<Shard>(slots.max(1));
    let (retry_tx, retry_rx) = unbounded::<Shard>();
    let (event_tx, event_rx) = unbounded::<Event>();

    std::thread::scope(|s| {
        // Probe every backend once before work starts (in parallel: nodes may be slow).
        std::thread::scope(|p| {
            for (i, b) in backends.iter().enumerate() {
                let shared = &shared;
                p.spawn(move || match b.probe() {
                    Ok(()) => {
                        shared.health[i].healthy.store(true, Ordering::Relaxed);
                        shared.observer.health(b.name(), true);
                    }
                    Err(e) => {
                        tracing::warn!(backend = b.name(), "backend not ready: {e}");
                        shared.health[i].failures.store(1, Ordering::Relaxed);
                        shared.observer.health(b.name(), false);
                    }
                });
            }
        });
        {
            let shared = &shared;
            let events = event_tx.clone();
            s.spawn(move || read(shared, records, work_tx, events));
        }
        for (i, b) in backends.iter().enumerate() {
            for slot in 0..b.slots() {
                let (shared, work, retry_rx, retry_tx, events) = (
                    &shared,
                    work_rx.clone(),
                    retry_rx.clone(),
                    retry_tx.clone(),
                    event_tx.clone(),
                );
                s.spawn(move || work_loop(shared, i, slot, work, retry_rx, retry_tx, events));
            }
        }
        drop(event_tx);
        let mut guard = StopOnDrop(&shared, true);
        let ended = commit_loop(&shared, committer, control, &event_rx);
        guard.1 = !matches!(ended, Ok(Ended::Completed | Ended::Stopped));
        ended
    })
}

/// The reader: cuts the input into shards and hands them out within the window.
fn read(
    shared: &Shared<'_>,
    records: Receiver<Result<RawRecord, InputError>>,
    work: Sender<Shard>,
    events: Sender<Event>,
) {
    let plan = shared.plan;
    let size = plan.batch_records.max(1);
    let mut id = 0u64;
    let mut batch = Vec::with_capacity(size.min(4096));
    let emit = |id: u64, batch: Vec<RawRecord>| -> bool {
        if id < plan.resume && !plan.repair.contains(&id) {
            return true;
        }
        if id >= plan.resume {
            let mut next = shared.next.lock().unwrap_or_else(|e| e.into_inner());
            while id >= *next + plan.window as u64 {
                if shared.stop.load(Ordering::Relaxed) {
                    return false;
                }
                next = shared
                    .moved
                    .wait_timeout(next, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        let mut shard = Shard {
            id,
            records: Arc::new(batch),
            attempts: 0,
        };
        loop {
            match work.send_timeout(shard, Duration::from_millis(100)) {
                Ok(()) => return true,
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                    if shared.stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    shard = back;
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    };
    loop {
        let raw = match records.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) if shared.stop.load(Ordering::Relaxed) => return,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let raw = match raw {
            Ok(r) => r,
            Err(e) => {
                let _ = events.send(Event::ReaderFailed(e));
                return;
            }
        };
        batch.push(raw);
        if batch.len() == size {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(size.min(4096)));
            if !emit(id, full) {
                return;
            }
            id += 1;
        }
    }
    if !batch.is_empty() {
        if !emit(id, batch) {
            return;
        }
        id += 1;
    }
    let _ = events.send(Event::ReaderDone(id));
}

/// A worker: one slot of one backend.
fn work_loop(
    shared: &Shared<'_>,
    b: usize,
    slot: usize,
    work: Receiver<Shard>,
    retry_rx: Receiver<Shard>,
    retry_tx: Sender<Shard>,
    events: Sender<Event>,
) {
    let backend = &shared.backends[b];
    let health = &shared.health[b];
    let name = backend.name();
    while !shared.stop.load(Ordering::Relaxed) {
        if !health.healthy.load(Ordering::Relaxed) {
            let failures = health.failures.load(Ordering::Relaxed).min(5);
            shared.sleep(Duration::from_millis(100 << failures));
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            // Only one slot probes; the others wait for its verdict.
            if slot == 0 || backend.slots() == 1 {
                match backend.probe() {
                    Ok(()) => {
                        tracing::info!(backend = name, "backend healthy again");
                        health.healthy.store(true, Ordering::Relaxed);
                        shared.observer.health(name, true);
                    }
                    Err(e) => {
                        tracing::debug!(backend = name, "probe failed: {e}");
                        health.failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            continue;
        }
        if shared.draining.load(Ordering::Relaxed) {
            return;
        }
        let shard = match retry_rx.try_recv() {
            Ok(s) => s,
            Err(_) => select! {
                recv(retry_rx) -> s => match s { Ok(s) => s, Err(_) => continue },
                recv(work) -> s => match s { Ok(s) => s, Err(_) => { shared.sleep(Duration::from_millis(50)); continue } },
                default(Duration::from_millis(100)) => continue,
            },
        };
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        if shared.draining.load(Ordering::SeqCst) {
            // Taken just as the drain began: leave it for the resumed run.
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let mut shard = shard;
        shard.attempts += 1;
        let w = ShardWork {
            run_id: shared.plan.run_id.clone(),
            shard: shard.id,
            records: shard.records.clone(),
            params: shared.plan.params.clone(),
            template_sha256: shared.plan.template_sha256.clone(),
            attempt: shard.attempts,
            expected: shared.expected(shard.records.len()),
        };
        shared.observer.in_flight(name, 1);
        let began = Instant::now();
        let result =
            backend
                .render(slot, &w, &shared.abort)
                .and_then(|out| match answer::check(&w, &out) {
                    Ok(()) => Ok(out),
                    Err(why) => Err(BackendError::BadAnswer(why)),
                });
        let elapsed = began.elapsed();
        shared.observer.in_flight(name, -1);
        match result {
            Ok(out) => {
                health.failures.store(0, Ordering::Relaxed);
                shared
                    .render_micros
                    .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
                shared
                    .rendered_records
                    .fetch_add(out.records, Ordering::Relaxed);
                shared.composed.fetch_add(out.records, Ordering::Relaxed);
                shared.observer.rendered(name, shard.id, elapsed);
                let _ = events.send(Event::Done { out, backend: b });
            }
            Err(BackendError::Cancelled) => {}
            Err(BackendError::Busy(why)) => {
                tracing::debug!(backend = name, shard = shard.id, "busy: {why}");
                shard.attempts -= 1;
                let _ = retry_tx.send(shard);
                shared.sleep(Duration::from_millis(200));
            }
            Err(e) => {
                shared.observer.failed(name, shard.id, &e);
                health.failures.fetch_add(1, Ordering::Relaxed);
                if health.healthy.swap(false, Ordering::Relaxed) {
                    shared.observer.health(name, false);
                }
                tracing::warn!(
                    backend = name,
                    shard = shard.id,
                    attempt = shard.attempts,
                    "shard failed: {e}"
                );
                if shard.attempts >= shared.plan.max_attempts {
                    let _ = events.send(Event::Failed(RunError::ShardFailed {
                        shard: shard.id,
                        attempts: shard.attempts,
                        backend: name.to_string(),
                        error: e,
                    }));
                } else {
                    let _ = retry_tx.send(shard);
                }
            }
        }
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The committer loop: in input order, exactly once; late duplicates are discarded.
fn commit_loop(
    shared: &Shared<'_>,
    committer: &mut Committer,
    control: &RunControl,
    events: &Receiver<Event>,
) -> Result<Ended, RunError> {
    let plan = shared.plan;
    let mut next = plan.resume;
    let mut total: Option<u64> = None;
    let mut repairs: BTreeSet<u64> = plan.repair.clone();
    let mut pending: BTreeMap<u64, (ShardOutput, usize)> = BTreeMap::new();
    let mut none_healthy_since: Option<Instant> = None;
    let progress = |committer: &Committer, next: u64, total: Option<u64>| {
        let s = &committer.summary;
        Progress {
            composed: shared.composed.load(Ordering::Relaxed).max(s.records),
            records: s.records,
            documents: s.documents,
            pages: s.pages,
            rejected: s.rejected,
            shards_committed: next,
            shards_total: total,
        }
    };
    loop {
        if total == Some(next) && repairs.is_empty() {
            return Ok(Ended::Completed);
        }
        if control.cancelled() {
            return Ok(Ended::Cancelled);
        }
        if shared
            .health
            .iter()
            .any(|h| h.healthy.load(Ordering::Relaxed))
        {
            none_healthy_since = None;
        } else {
            let since = *none_healthy_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= plan.unavailable {
                return Err(RunError::Unavailable {
                    seconds: plan.unavailable.as_secs(),
                });
            }
        }
        if control.draining() && !shared.draining.swap(true, Ordering::SeqCst) {
            tracing::warn!("stopping: no new shards; the shards in flight finish and commit");
        }
        let draining = shared.draining.load(Ordering::SeqCst);
        let event = if draining && shared.in_flight.load(Ordering::SeqCst) == 0 {
            match events.try_recv() {
                Ok(e) => e,
                Err(_) => return Ok(Ended::Stopped),
            }
        } else {
            match events.recv_timeout(Duration::from_millis(100)) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(RunError::Worker(
                        "every worker ended before the run was complete".into(),
                    ));
                }
            }
        };
        match event {
            Event::ReaderDone(n) => total = Some(n),
            Event::ReaderFailed(e) => return Err(RunError::Input(e)),
            Event::Failed(e) => return Err(e),
            Event::Done { out, backend } => {
                if repairs.remove(&out.shard) {
                    let committed = &plan.kept[out.shard as usize];
                    committer.repair(&out, committed)?;
                    tracing::warn!(shard = out.shard, "damaged files re-rendered and rewritten");
                    shared.observer.repaired(out.shard);
                    continue;
                }
                if out.shard < next || pending.contains_key(&out.shard) {
                    tracing::debug!(shard = out.shard, "late duplicate discarded");
                    continue;
                }
                pending.insert(out.shard, (out, backend));
                while let Some((out, b)) = pending.remove(&next) {
                    let name = shared.backends[b].name();
                    let record = committer.commit(out, name)?;
                    next += 1;
                    *shared.next.lock().unwrap_or_else(|e| e.into_inner()) = next;
                    shared.moved.notify_all();
                    tracing::info!(shard = record.shard, backend = name, "shard committed");
                    shared
                        .observer
                        .committed(&record, &progress(committer, next, total));
                }
            }
        }
    }
}
