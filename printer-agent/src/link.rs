//! The agent's session with the dispatcher (`PrintAgents.Attach`): hello with the
//! devices and the jobs held, then the outbox's batches in order (each kept until the
//! dispatcher acknowledges it), device states as they change, and print jobs coming in
//! ([`crate::receive`]). A broken session is opened again with back-off; nothing is
//! lost, because nothing leaves the outbox before its acknowledgement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pressrun_proto::v1::print_agents_client::PrintAgentsClient;
use pressrun_proto::v1::{AgentHello, AgentMessage, PrinterInfo, agent_command, agent_message};
use tokio::sync::{Notify, mpsc};

use crate::receive::{Receiving, safe_name};
use crate::status::Statuses;
use crate::store::Store;

/// How to reach the dispatcher.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    /// `host:port`.
    pub address: String,
    /// PEM CA certificate to trust (TLS); `None` = plain.
    pub tls_ca: Option<Vec<u8>>,
    pub tls_domain: Option<String>,
    pub token: Option<String>,
}

/// The session's side of the agent.
pub struct Link {
    pub dispatcher: Dispatcher,
    pub agent: String,
    pub printers: Vec<PrinterInfo>,
    pub inserters: Vec<String>,
    pub store: Arc<Store>,
    pub outbox: Arc<Notify>,
    pub statuses: Arc<Statuses>,
    /// Per printer, woken when a job for it is held.
    pub printer_jobs: BTreeMap<String, Arc<Notify>>,
}

type Channel = tonic::service::interceptor::InterceptedService<
    tonic::transport::Channel,
    pressrun_proto::transport::Bearer,
>;

impl Link {
    /// Keeps a session open for ever.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let started = std::time::Instant::now();
            match self.session().await {
                Ok(()) => tracing::warn!("the dispatcher closed the session"),
                Err(e) => tracing::warn!("session with the dispatcher ended: {e}"),
            }
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(200);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    async fn client(&self) -> Result<PrintAgentsClient<Channel>, String> {
        let d = &self.dispatcher;
        let scheme = if d.tls_ca.is_some() { "https" } else { "http" };
        let mut endpoint =
            tonic::transport::Endpoint::from_shared(format!("{scheme}://{}", d.address))
                .map_err(|e| e.to_string())?
                .tcp_nodelay(true)
                .connect_timeout(Duration::from_secs(5))
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(10));
        if let Some(ca) = &d.tls_ca {
            let host = d
                .address
                .rsplit_once(':')
                .map_or(d.address.as_str(), |(h, _)| h)
                .to_string();
            endpoint = endpoint
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                        .domain_name(d.tls_domain.clone().unwrap_or(host)),
                )
                .map_err(|e| e.to_string())?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot reach the dispatcher at {}: {e}", d.address))?;
        let bearer = pressrun_proto::transport::Bearer::new(d.token.as_deref())
            .map_err(|_| "the token has characters a header cannot carry".to_string())?;
        Ok(PrintAgentsClient::with_interceptor(channel, bearer).max_decoding_message_size(8 << 20))
    }

    async fn session(&self) -> Result<(), String> {
        let mut client = self.client().await?;
        let (tx, rx) = mpsc::channel::<AgentMessage>(64);
        let holding = self.store.holding().map_err(|e| e.to_string())?;
        tx.send(AgentMessage {
            kind: Some(agent_message::Kind::Hello(AgentHello {
                agent: self.agent.clone(),
                printers: self.printers.clone(),
                inserters: self.inserters.clone(),
                holding,
            })),
        })
        .await
        .map_err(|_| "session closed")?;
        let mut incoming = client
            .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|e| format!("attach refused: {}", e.message()))?
            .into_inner();
        let welcome = incoming
            .message()
            .await
            .map_err(|e| e.message().to_string())?
            .ok_or("the dispatcher closed the session before its welcome")?;
        let Some(agent_command::Kind::Welcome(w)) = welcome.kind else {
            return Err("the dispatcher's first message is not a welcome".into());
        };
        let renumbered = self
            .store
            .welcome(w.last_recorded)
            .map_err(|e| e.to_string())?;
        if renumbered > 0 {
            tracing::error!(
                last_recorded = w.last_recorded,
                renumbered,
                "the dispatcher has recorded more batches from this agent than its store ever numbered (its state was replaced): waiting batches renumbered"
            );
        }
        tracing::info!(
            last_recorded = w.last_recorded,
            "attached to the dispatcher"
        );
        let mut sent = 0u64;
        let mut receiving: Option<Receiving> = None;
        for s in self.statuses.all() {
            send(&tx, agent_message::Kind::Status(s)).await?;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = self.outbox.notified() => {}
                _ = tick.tick() => {}
                _ = self.statuses.notify.notified() => {
                    for s in self.statuses.take_changed() {
                        send(&tx, agent_message::Kind::Status(s)).await?;
                    }
                }
                m = incoming.message() => {
                    let m = m.map_err(|e| e.message().to_string())?
                        .ok_or("the dispatcher closed the session")?;
                    match m.kind {
                        Some(agent_command::Kind::Ack(n)) => {
                            let waiting = self.store.acknowledged(n).map_err(|e| e.to_string())?;
                            metrics::gauge!("pressrun_agent_outbox_batches").set(waiting as f64);
                        }
                        Some(agent_command::Kind::Job(header)) => {
                            receiving = self.start_job(header);
                        }
                        Some(agent_command::Kind::File(chunk)) => {
                            if let Some(r) = receiving.as_mut() {
                                match r.chunk(&chunk) {
                                    Ok(false) => {}
                                    Ok(true) => {
                                        let r = receiving.take().expect("receiving");
                                        self.hold(&r)?;
                                    }
                                    Err(e) => {
                                        let r = receiving.take().expect("receiving");
                                        self.refuse(&r.header, &e)?;
                                    }
                                }
                            }
                        }
                        Some(agent_command::Kind::Refused(why)) => return Err(format!("the dispatcher refused the agent: {why}")),
                        Some(agent_command::Kind::Withdraw(w)) => {
                            match self.store.withdraw(&w.run_id, &w.print_job, &w.why) {
                                Ok(true) => {
                                    tracing::warn!(run = %w.run_id, job = %w.print_job, why = %w.why, "print job withdrawn");
                                    self.outbox.notify_one();
                                }
                                Ok(false) => tracing::info!(run = %w.run_id, job = %w.print_job, "not withdrawn: not held, or the printer has it"),
                                Err(e) => return Err(e.to_string()),
                            }
                        }
                        Some(agent_command::Kind::Welcome(_)) | None => {}
                    }
                }
            }
            loop {
                let batches = self.store.pending(sent, 64).map_err(|e| e.to_string())?;
                if batches.is_empty() {
                    break;
                }
                for b in batches {
                    metrics::counter!("pressrun_agent_event_batches_sent_total").increment(1);
                    sent = b.seq;
                    send(&tx, agent_message::Kind::Events(b)).await?;
                }
            }
        }
    }

    fn start_job(&self, header: pressrun_proto::v1::PrintJob) -> Option<Receiving> {
        if !safe_name(&header.run_id) || !safe_name(&header.print_job) {
            tracing::error!(run = %header.run_id.escape_debug(), job = %header.print_job.escape_debug(), "a print job with names this agent cannot use: ignored");
            return None;
        }
        match self.store.job(&header.run_id, &header.print_job) {
            Ok(Some(_)) => {
                // Held already (the dispatcher sent it again): report it queued again.
                tracing::info!(job = %header.print_job, "print job held already");
                let _ = self.store.push(
                    &header.run_id,
                    vec![crate::events::queued(&header.print_job, &header.printer)],
                );
                self.outbox.notify_one();
                return None;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("cannot read the agent's store: {e}");
                return None;
            }
        }
        let printers: Vec<&str> = self.printers.iter().map(|p| p.name.as_str()).collect();
        let dir = self.store.job_dir(&header.run_id, &header.print_job);
        match Receiving::start(header.clone(), dir, &printers) {
            Ok(r) => Some(r),
            Err(e) => {
                if let Err(e) = self.refuse(&header, &e) {
                    tracing::error!("{e}");
                }
                None
            }
        }
    }

    fn hold(&self, r: &Receiving) -> Result<(), String> {
        self.store
            .hold(&r.header, &r.dir)
            .map_err(|e| e.to_string())?;
        tracing::info!(run = %r.header.run_id, job = %r.header.print_job, printer = %r.header.printer, "print job held");
        self.outbox.notify_one();
        if let Some(n) = self.printer_jobs.get(&r.header.printer) {
            n.notify_one();
        }
        Ok(())
    }

    /// A job that cannot be taken: the dispatcher hears it ended without printing.
    fn refuse(&self, h: &pressrun_proto::v1::PrintJob, why: &str) -> Result<(), String> {
        tracing::error!(run = %h.run_id, job = %h.print_job, "print job refused: {why}");
        if safe_name(&h.run_id) && safe_name(&h.print_job) {
            let device = if safe_name(&h.printer) {
                h.printer.as_str()
            } else {
                "agent"
            };
            self.store
                .push(
                    &h.run_id,
                    vec![crate::events::ended(
                        &h.print_job,
                        device,
                        format!("refused by the agent: {why}"),
                        0,
                    )],
                )
                .map_err(|e| e.to_string())?;
            self.outbox.notify_one();
        }
        Ok(())
    }
}

async fn send(tx: &mpsc::Sender<AgentMessage>, kind: agent_message::Kind) -> Result<(), String> {
    tx.send(AgentMessage { kind: Some(kind) })
        .await
        .map_err(|_| "the session closed".to_string())
}
