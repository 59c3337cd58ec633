//! One agent's session: hello, welcome, then its event batches into the ledger (each
//! acknowledged once it is on disk) and its device states into the hub.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pressrun_proto::v1::{
    AgentCommand, AgentHello, AgentMessage, EventBatch, Welcome, agent_command, agent_message,
    device_event,
};
use tokio::sync::mpsc;
use tonic::Status;

use super::{Agent, Hub, ToAgent, convert};

/// How long an agent has to say hello.
const HELLO: Duration = Duration::from_secs(10);

fn check_hello(h: &AgentHello) -> Result<(), String> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    if !ok(&h.agent) {
        return Err(format!(
            "agent name {:?}: 1 to 64 letters, digits, '-', '_' or '.'",
            h.agent
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in h.printers.iter().map(|p| &p.name).chain(&h.inserters) {
        if !ok(name) {
            return Err(format!(
                "device name {name:?}: 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        if !seen.insert(name) {
            return Err(format!("device {name:?} is announced twice"));
        }
    }
    Ok(())
}

/// Opens a session for the agent whose first message is read from `incoming`; returns
/// the stream of commands to it.
pub async fn attach(
    hub: Arc<Hub>,
    mut incoming: tonic::Streaming<AgentMessage>,
) -> Result<mpsc::Receiver<Result<AgentCommand, Status>>, Status> {
    let first = tokio::time::timeout(HELLO, incoming.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no hello within 10 s"))??
        .ok_or_else(|| Status::invalid_argument("the stream ended before hello"))?;
    let Some(agent_message::Kind::Hello(hello)) = first.kind else {
        return Err(Status::invalid_argument("the first message must be hello"));
    };
    check_hello(&hello).map_err(Status::invalid_argument)?;
    let name = hello.agent.clone();
    let last_recorded = {
        let hub = hub.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || {
            hub.reader()?.last_recorded(&name).map_err(super::internal)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??
    };
    let (tx, rx) = mpsc::channel(16);
    tx.send(Ok(AgentCommand {
        kind: Some(agent_command::Kind::Welcome(Welcome { last_recorded })),
    }))
    .await
    .map_err(|_| Status::cancelled("the agent went away"))?;
    let session = {
        let mut inner = hub.lock();
        inner.sessions += 1;
        let session = inner.sessions;
        let (printed, sending) = inner
            .agents
            .remove(&name)
            .map(|a| (a.printed, a.sending))
            .unwrap_or_default();
        inner.agents.insert(
            name.clone(),
            Agent {
                session,
                printers: hello.printers.clone(),
                inserters: hello.inserters.clone(),
                tx: Some(tx.clone()),
                sending,
                down_since: BTreeMap::new(),
                status: BTreeMap::new(),
                attached_at: Instant::now(),
                printed,
            },
        );
        session
    };
    metrics::counter!("pressrun_agent_sessions_total").increment(1);
    tracing::info!(
        agent = %name,
        printers = hello.printers.len(),
        inserters = hello.inserters.len(),
        holding = hello.holding.len(),
        last_recorded,
        "agent attached"
    );
    hub.retry_waiting();
    tokio::spawn(serve(hub, name, session, incoming, tx));
    Ok(rx)
}

async fn serve(
    hub: Arc<Hub>,
    agent: String,
    session: u64,
    mut incoming: tonic::Streaming<AgentMessage>,
    tx: ToAgent,
) {
    let mut closing = hub.closing.subscribe();
    let why = loop {
        let m = tokio::select! {
            m = incoming.message() => match m {
                Ok(Some(m)) => m,
                Ok(None) => break "the agent closed the session".to_string(),
                Err(e) => break format!("the session broke: {e}"),
            },
            r = closing.changed() => {
                let closed = r.is_err() || *closing.borrow();
                if !closed {
                    continue;
                }
                let _ = tx.send(Err(Status::unavailable("the dispatcher is shutting down"))).await;
                break "the dispatcher is shutting down".to_string();
            }
        };
        match m.kind {
            Some(agent_message::Kind::Events(batch)) => {
                if let Err(e) = record(&hub, &agent, batch, &tx).await {
                    let _ = tx.send(Err(e.clone())).await;
                    break e.message().to_string();
                }
            }
            Some(agent_message::Kind::Status(mut s)) => {
                let mut inner = hub.lock();
                // Only the devices the agent announced, with bounded texts.
                let known = inner.agents.get(&agent).is_some_and(|a| {
                    a.printers.iter().any(|p| p.name == s.device) || a.inserters.contains(&s.device)
                });
                s.reasons.truncate(32);
                s.supplies.truncate(32);
                for r in &mut s.reasons {
                    let mut end = r.len().min(256);
                    while !r.is_char_boundary(end) {
                        end -= 1;
                    }
                    r.truncate(end);
                }
                if let Some(a) = inner
                    .agents
                    .get_mut(&agent)
                    .filter(|a| known && a.session == session)
                {
                    let window = a
                        .printed
                        .entry(s.device.clone())
                        .or_insert_with(VecDeque::new);
                    let now = Instant::now();
                    window.push_back((now, s.impressions_printed));
                    while window
                        .front()
                        .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(3600))
                    {
                        window.pop_front();
                    }
                    if super::is_down(&s.state) {
                        a.down_since.entry(s.device.clone()).or_insert(now);
                    } else {
                        a.down_since.remove(&s.device);
                    }
                    a.status.insert(s.device.clone(), s);
                }
            }
            Some(agent_message::Kind::Hello(_)) | None => {
                let e = Status::invalid_argument("hello is the first message only");
                let _ = tx.send(Err(e)).await;
                break "a second hello".to_string();
            }
        }
    };
    let mut inner = hub.lock();
    if inner
        .agents
        .get(&agent)
        .is_some_and(|a| a.session == session)
    {
        if let Some(a) = inner.agents.get_mut(&agent) {
            a.tx = None;
        }
        // Jobs on their way to this agent were not taken: they wait for a printer again.
        let lost: Vec<(String, String)> = inner
            .sending
            .iter()
            .filter(|(_, (a, _, _))| a == &agent)
            .map(|(k, _)| k.clone())
            .collect();
        for key in lost {
            inner.sending.remove(&key);
            inner.waiting.insert(key.0);
        }
    }
    drop(tx);
    tracing::warn!(%agent, "agent detached: {why}");
}

/// Records one batch in the ledger and acknowledges it once it is durable.
async fn record(
    hub: &Arc<Hub>,
    agent: &str,
    batch: EventBatch,
    tx: &ToAgent,
) -> Result<(), Status> {
    if batch.seq == 0 || batch.run_id.is_empty() {
        return Err(Status::invalid_argument(
            "an event batch needs a run id and a seq from 1",
        ));
    }
    let events = batch
        .events
        .iter()
        .map(|e| convert::event(agent, e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Status::invalid_argument(format!("batch {}: {e}", batch.seq)))?;
    let queued: Vec<String> = batch
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                Some(device_event::Kind::Queued(_) | device_event::Kind::Ended(_))
            )
        })
        .map(|e| e.print_job.clone())
        .collect();
    let n = events.len() as u64;
    let writer = hub.writer.clone();
    let (a, run, seq) = (agent.to_string(), batch.run_id.clone(), batch.seq);
    let findings =
        tokio::task::spawn_blocking(move || writer.record_numbered(&a, seq, &run, events))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::unavailable(e.to_string()))?;
    metrics::counter!("pressrun_ledger_events_total").increment(n);
    for f in &findings {
        metrics::counter!("pressrun_ledger_findings_total").increment(1);
        tracing::warn!(%agent, run = %batch.run_id, "device report kept as evidence, not applied: {f:?}");
    }
    {
        let mut inner = hub.lock();
        for job in queued {
            inner.sending.remove(&(batch.run_id.clone(), job));
        }
    }
    // A job ended or a piece reported: the ledger may call for reprints.
    let settled: std::collections::BTreeSet<String> = batch
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                Some(device_event::Kind::Ended(_) | device_event::Kind::Piece(_))
            )
        })
        .map(|e| e.print_job.clone())
        .collect();
    if !settled.is_empty() {
        let hub = hub.clone();
        let run = batch.run_id.clone();
        tokio::spawn(async move {
            match hub
                .reprints(&run, Some(settled.into_iter().collect()), false)
                .await
            {
                Ok((0, _)) => {}
                Ok(_) => {
                    if let Err(e) = hub.route(&run).await {
                        tracing::warn!(%run, "reprint jobs not sent: {e}");
                    }
                }
                Err(e) => tracing::error!(%run, "reprints not made: {e}"),
            }
        });
    }
    tx.send(Ok(AgentCommand {
        kind: Some(agent_command::Kind::Ack(batch.seq)),
    }))
    .await
    .map_err(|_| Status::cancelled("the agent went away"))
}
