//! One thread that owns the ledger's connection and commits every device's batches with
//! group commit: whatever arrived while the last transaction was being made durable goes
//! into the next one, so many devices share one fsync. A caller's batch is durable when
//! [`Writer::record`] returns `Ok` — only then may it acknowledge its device.

use crossbeam_channel::{Receiver, Sender};

use super::{Batch, Event, Finding, Ledger};

/// Batches committed together at most (a bound on one transaction's size).
const GROUP: usize = 256;

struct Request {
    run: String,
    events: Vec<Event>,
    numbered: Option<(String, u64)>,
    reply: Sender<Result<Vec<Finding>, String>>,
}

/// A handle to the ledger's writer thread; clone it for every device handler.
#[derive(Clone)]
pub struct Writer {
    requests: Sender<Request>,
}

/// The writer thread has stopped or its transaction failed.
#[derive(Debug, thiserror::Error)]
#[error("the ledger did not record the batch: {0}")]
pub struct NotRecorded(pub String);

impl Writer {
    /// Starts the writer thread on `ledger`; it stops when every handle is dropped.
    pub fn start(ledger: Ledger) -> Self {
        let (requests, rx) = crossbeam_channel::bounded(GROUP * 4);
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || serve(ledger, rx))
            .expect("a thread for the ledger writer");
        Self { requests }
    }

    /// Records a batch durably (with whatever else is pending) and returns its findings.
    pub fn record(&self, run: &str, events: Vec<Event>) -> Result<Vec<Finding>, NotRecorded> {
        self.send(run, events, None)
    }

    /// Records `source`'s batch number `seq` durably, once: the same number sent again
    /// (after a reconnect) is recognised and not applied twice.
    pub fn record_numbered(
        &self,
        source: &str,
        seq: u64,
        run: &str,
        events: Vec<Event>,
    ) -> Result<Vec<Finding>, NotRecorded> {
        self.send(run, events, Some((source.to_string(), seq)))
    }

    fn send(
        &self,
        run: &str,
        events: Vec<Event>,
        numbered: Option<(String, u64)>,
    ) -> Result<Vec<Finding>, NotRecorded> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.requests
            .send(Request {
                run: run.to_string(),
                events,
                numbered,
                reply,
            })
            .map_err(|_| NotRecorded("the ledger writer has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| NotRecorded("the ledger writer has stopped".into()))?
            .map_err(NotRecorded)
    }
}

fn serve(mut ledger: Ledger, rx: Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let batches: Vec<Batch<'_>> = group
            .iter()
            .map(|r| Batch {
                run: &r.run,
                events: &r.events,
                numbered: r.numbered.as_ref().map(|(s, n)| (s.as_str(), *n)),
            })
            .collect();
        match ledger.record_group(&batches) {
            Ok(findings) => {
                for (r, f) in group.iter().zip(findings) {
                    let _ = r.reply.send(Ok(f));
                }
            }
            Err(e) => {
                tracing::error!("ledger transaction failed: {e}");
                for r in &group {
                    let _ = r.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
