//! Printer agents attached to the dispatcher (the `PrintAgents` gRPC service of
//! `dispatcher serve`): their sessions ([`link`]), where print jobs go ([`route`]), how a
//! job travels ([`files`]) and how an agent's events reach the ledger ([`convert`]).
//!
//! The ledger is the truth: a job is handed to an agent once the ledger has it, it counts
//! as the agent's once the agent reports it `queued` (on the agent's disk), and every
//! event batch is acknowledged only after the ledger's transaction holding it is on disk.
//! What the hub keeps in memory (sessions, device states, jobs on their way) is rebuilt
//! when agents attach again.

mod convert;
mod files;
mod link;
mod route;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatcher::ledger::{JobPlan, Ledger, Writer};
use pressrun_proto::ServiceError;
use pressrun_proto::v1::{
    AgentCommand, DeviceStatus, FleetDevice, FleetRequest, FleetResponse, PrintRunRequest,
    PrintRunResponse, PrinterInfo, ReconcileRequest, ReconcileResponse, agent_command,
    print_agents_server::PrintAgents,
};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// The commands going to one attached agent.
type ToAgent = mpsc::Sender<Result<AgentCommand, Status>>;

/// One agent as the hub knows it.
struct Agent {
    /// Which attachment this is (a reattached agent replaces its old session).
    session: u64,
    printers: Vec<PrinterInfo>,
    inserters: Vec<String>,
    tx: Option<ToAgent>,
    /// Held while one job's header and files go out: a job's chunks never interleave
    /// with another's.
    sending: Arc<tokio::sync::Mutex<()>>,
    status: BTreeMap<String, DeviceStatus>,
    attached_at: Instant,
    /// Since when each of its devices has been down (stopped, unreachable).
    down_since: BTreeMap<String, Instant>,
    /// (when, impressions printed since the agent started), per printer, over the last hour.
    printed: BTreeMap<String, VecDeque<(Instant, u64)>>,
}

#[derive(Default)]
struct Inner {
    agents: BTreeMap<String, Agent>,
    sessions: u64,
    /// Runs with jobs no capable printer could take: tried again when an agent attaches.
    waiting: BTreeSet<String>,
    /// (run, job) asked back from an agent whose printer is down.
    withdrawn: BTreeSet<(String, String)>,
    /// (run, job) on their way to an agent, not yet reported queued: (agent, impressions).
    sending: BTreeMap<(String, String), (String, String, u64)>,
}

/// The attached agents and the ledger they report into.
pub struct Hub {
    state: PathBuf,
    writer: Writer,
    inner: Mutex<Inner>,
    /// One reprint decision at a time (two batches about one job must not both cut it).
    reprinting: tokio::sync::Mutex<()>,
    /// Set when the server shuts down: every session ends (agents attach again to the
    /// next dispatcher).
    closing: tokio::sync::watch::Sender<bool>,
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

impl Hub {
    /// A hub recording into the ledger of the run registry at `state`.
    pub fn new(state: &Path) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            state: state.to_path_buf(),
            writer: Writer::start(Ledger::open(state)?),
            inner: Mutex::new(Inner::default()),
            closing: tokio::sync::watch::channel(false).0,
            reprinting: tokio::sync::Mutex::new(()),
        }))
        .inspect(|hub: &Arc<Self>| {
            // Runs asked to print before a restart wait for their printers again.
            match Ledger::open(state).and_then(|l| l.runs_to_print()) {
                Ok(runs) => hub.lock().waiting.extend(runs),
                Err(e) => tracing::error!("cannot read the runs to print: {e}"),
            }
        })
    }

    /// Drains printers that stay down for `after`: every job queued to one and not yet
    /// taken by it is asked back from its agent; once the agent reports it withdrawn,
    /// its pieces go into a reprint job that routing sends to a printer that is up.
    pub fn start_drainer(self: &Arc<Self>, after: Duration) {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let down: Vec<(String, String, ToAgent)> = {
                    let inner = hub.lock();
                    inner
                        .agents
                        .iter()
                        .flat_map(|(name, a)| {
                            a.down_since
                                .iter()
                                .filter(|(_, t)| t.elapsed() >= after)
                                .filter_map(|(p, _)| Some((name.clone(), p.clone(), a.tx.clone()?)))
                                .collect::<Vec<_>>()
                        })
                        .collect()
                };
                for (agent, printer, tx) in down {
                    let to = format!("{agent}/{printer}");
                    let h = hub.clone();
                    let jobs = tokio::task::spawn_blocking(move || {
                        h.reader()
                            .and_then(|l| l.queued_not_started(&to).map_err(internal))
                    })
                    .await;
                    let Ok(Ok(jobs)) = jobs else { continue };
                    for (run, job) in jobs {
                        if !hub.lock().withdrawn.insert((run.clone(), job.clone())) {
                            continue;
                        }
                        tracing::warn!(%agent, %printer, %run, %job, "printer down: job asked back to move it");
                        metrics::counter!("pressrun_jobs_withdrawn_total").increment(1);
                        let w = pressrun_proto::v1::Withdraw {
                            run_id: run,
                            print_job: job,
                            why: format!("printer {printer} down for {} s", after.as_secs()),
                        };
                        let _ = tx
                            .send(Ok(AgentCommand {
                                kind: Some(agent_command::Kind::Withdraw(w)),
                            }))
                            .await;
                    }
                }
            }
        });
    }

    /// Ends every agent session (the server is shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
        for a in self.lock().agents.values_mut() {
            a.tx = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reading connection to the ledger (the writer thread owns the writing one).
    fn reader(&self) -> Result<Ledger, ServiceError> {
        Ledger::open(&self.state).map_err(internal)
    }

    /// The output folder of a run of the registry.
    fn run_folder(&self, run: &str) -> Result<PathBuf, ServiceError> {
        let rows = crate::state::State::open(&self.state)
            .and_then(|s| s.runs())
            .map_err(internal)?;
        let row = rows
            .into_iter()
            .find(|r| r.id == run)
            .ok_or_else(|| ServiceError::NotFound(format!("no run {run} in the registry")))?;
        if row.status != "succeeded" {
            return Err(ServiceError::FailedPrecondition(format!(
                "run {run} is {}: only a run that succeeded is printed",
                row.status
            )));
        }
        Ok(PathBuf::from(row.out))
    }

    /// Makes the reprint jobs the ledger calls for among `jobs` of `run` (all its jobs
    /// if `None`): per print job, the pieces to print again, unless that would take the
    /// share of its original job's pieces reprinted above the profile's cap (then they
    /// wait for an operator, unless `force`). Returns (reprint jobs made, jobs held).
    pub async fn reprints(
        self: &Arc<Self>,
        run: &str,
        jobs: Option<Vec<String>>,
        force: bool,
    ) -> Result<(u64, u64), ServiceError> {
        let _one = self.reprinting.lock().await;
        let hub = self.clone();
        let run = run.to_string();
        tokio::task::spawn_blocking(move || hub.reprints_now(&run, jobs, force))
            .await
            .map_err(internal)?
    }

    fn reprints_now(
        &self,
        run: &str,
        jobs: Option<Vec<String>>,
        force: bool,
    ) -> Result<(u64, u64), ServiceError> {
        let mut ledger = self.reader()?;
        let states = ledger.jobs(run).map_err(internal)?;
        let jobs = jobs.unwrap_or_else(|| states.iter().map(|j| j.print_job.clone()).collect());
        // Most batches call for nothing: look at the ledger first, and at the run's folder
        // (its registry row, the profile's cap) only when some piece is to be printed again.
        let mut due = Vec::new();
        for job in jobs {
            let Some(state) = states.iter().find(|j| j.print_job == job) else {
                continue;
            };
            let candidates = ledger.reprint_candidates(run, &job).map_err(internal)?;
            if !candidates.is_empty() {
                due.push((job, state, candidates));
            }
        }
        if due.is_empty() {
            return Ok((0, 0));
        }
        let out = self.run_folder(run)?;
        let cap = run_profile(&out).reprint_cap;
        let (mut made, mut held) = (0, 0);
        for (job, state, candidates) in due {
            let origin = &state.origin;
            let (pieces, reprinted, n) = ledger.reprint_counts(run, origin).map_err(internal)?;
            let new = candidates.iter().filter(|(_, r)| *r == 0).count() as u64;
            // Pieces of a job withdrawn from a printer that went down are moved, not
            // failed: the cap does not hold them.
            let moved = state
                .ended
                .as_deref()
                .is_some_and(|e| e.starts_with("withdrawn"));
            if !force && !moved && (reprinted + new) * 100 > u64::from(cap) * pieces {
                held += 1;
                metrics::counter!("pressrun_reprints_held_total").increment(1);
                tracing::warn!(
                    %run, %job, pieces = candidates.len(), cap,
                    "reprints held for an operator: they would take {} of {pieces} pieces of {origin} over the cap of {cap} %",
                    reprinted + new
                );
                continue;
            }
            let id = format!("{origin}R{}", n + 1);
            let ids: Vec<String> = candidates.iter().map(|(p, _)| p.piece.clone()).collect();
            let plan = dispatcher::reprint::write(&out, &job, origin, &ids, &id)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            ledger.register(run, &[plan]).map_err(internal)?;
            made += 1;
            metrics::counter!("pressrun_reprint_jobs_total").increment(1);
            metrics::counter!("pressrun_reprinted_pieces_total").increment(ids.len() as u64);
            tracing::info!(%run, %job, reprint = %id, pieces = ids.len(), "reprint job made");
        }
        Ok((made, held))
    }

    /// Hands every print job of `run` that is not yet with an agent to a capable printer
    /// that is up; the rest wait for one to attach. The reprints the ledger calls for
    /// are made first.
    pub async fn print_run(self: &Arc<Self>, run: &str) -> Result<PrintRunResponse, ServiceError> {
        self.print(run, false).await
    }

    async fn print(
        self: &Arc<Self>,
        run: &str,
        reprint_held: bool,
    ) -> Result<PrintRunResponse, ServiceError> {
        let hub = self.clone();
        let owned = run.to_string();
        tokio::task::spawn_blocking(move || {
            let out = hub.run_folder(&owned)?;
            let plans = JobPlan::of_run(&out).map_err(ServiceError::FailedPrecondition)?;
            let mut ledger = hub.reader()?;
            ledger.register(&owned, &plans).map_err(internal)?;
            ledger.request_print(&owned).map_err(internal)?;
            Ok::<_, ServiceError>(())
        })
        .await
        .map_err(internal)??;
        let (made, held) = self.reprints(run, None, reprint_held).await?;
        let mut answer = self.route(run).await?;
        answer.reprint_jobs = made;
        answer.reprints_held = held;
        Ok(answer)
    }

    /// Hands the run's jobs that no agent holds to printers (the jobs are in the ledger
    /// already): after reprints were made, or when an agent attaches.
    pub async fn route(self: &Arc<Self>, run: &str) -> Result<PrintRunResponse, ServiceError> {
        let hub = self.clone();
        let owned = run.to_string();
        let (out, jobs, profile) = tokio::task::spawn_blocking(move || {
            let out = hub.run_folder(&owned)?;
            let jobs = hub.reader()?.jobs(&owned).map_err(internal)?;
            let profile = run_profile(&out);
            Ok::<_, ServiceError>((out, jobs, profile))
        })
        .await
        .map_err(internal)??;
        let mut answer = PrintRunResponse::default();
        let mut sends = Vec::new();
        {
            let mut inner = self.lock();
            let mut candidates = candidates(&inner);
            let mut todo = Vec::new();
            for j in &jobs {
                let key = (run.to_string(), j.print_job.clone());
                if j.queued_to.is_some()
                    || j.printer.is_some()
                    || j.ended.is_some()
                    || inner.sending.contains_key(&key)
                {
                    answer.jobs_already += 1;
                } else {
                    todo.push(j);
                }
            }
            let needs: Vec<route::Needs> = todo
                .iter()
                .map(|j| route::Needs {
                    duplex: j.impressions > j.sheets,
                    media: profile.media.clone(),
                    impressions: j.impressions,
                })
                .collect();
            for (j, choice) in todo.iter().zip(route::spread(&needs, &mut candidates)) {
                let Some(i) = choice else {
                    answer.jobs_waiting += 1;
                    continue;
                };
                let c = &candidates[i];
                let Some((tx, lock)) = inner
                    .agents
                    .get(&c.agent)
                    .and_then(|a| Some((a.tx.clone()?, a.sending.clone())))
                else {
                    answer.jobs_waiting += 1;
                    continue;
                };
                inner.sending.insert(
                    (run.to_string(), j.print_job.clone()),
                    (c.agent.clone(), c.printer.clone(), j.impressions),
                );
                sends.push((
                    tx,
                    lock,
                    c.agent.clone(),
                    c.printer.clone(),
                    j.print_job.clone(),
                    j.origin.clone(),
                ));
                answer.jobs_queued += 1;
            }
            if answer.jobs_waiting > 0 {
                inner.waiting.insert(run.to_string());
            } else {
                inner.waiting.remove(run);
            }
        }
        let answer_run = run.to_string();
        // One task sends this call's jobs in order, each under its agent's lock.
        let hub = self.clone();
        let run = run.to_string();
        tokio::spawn(async move {
            for (tx, lock, agent, printer, job, origin) in sends {
                let _held = lock.lock().await;
                let media = profile.media.clone().unwrap_or_default();
                if let Err(e) = send_job(&out, &run, &job, &origin, &printer, &media, &tx).await {
                    tracing::warn!(%run, %job, %agent, "print job not handed over: {e}");
                    let mut inner = hub.lock();
                    inner.sending.remove(&(run.clone(), job));
                    inner.waiting.insert(run.clone());
                }
            }
        });
        tracing::info!(
            run = %answer_run,
            queued = answer.jobs_queued,
            waiting = answer.jobs_waiting,
            already = answer.jobs_already,
            "print run"
        );
        Ok(answer)
    }

    /// Runs whose jobs wait for a printer: tried again (an agent attached).
    fn retry_waiting(self: &Arc<Self>) {
        let runs: Vec<String> = self.lock().waiting.iter().cloned().collect();
        for run in runs {
            let hub = self.clone();
            tokio::spawn(async move {
                if let Err(e) = hub.route(&run).await {
                    tracing::warn!(%run, "waiting print jobs not sent: {e}");
                }
            });
        }
    }

    fn fleet(&self) -> FleetResponse {
        let inner = self.lock();
        let hour = Duration::from_secs(3600);
        let mut devices = Vec::new();
        for (name, a) in &inner.agents {
            for p in &a.printers {
                let window = a.printed.get(&p.name);
                let per_hour = window.and_then(|w| Some((w.front()?, w.back()?))).map_or(
                    0.0,
                    |((t0, n0), (t1, n1))| {
                        let span = t1.duration_since(*t0).max(Duration::from_secs(1));
                        let span = span.min(hour).max(a.attached_at.elapsed().min(hour));
                        (n1 - n0) as f64 * 3600.0 / span.as_secs_f64().max(1.0)
                    },
                );
                devices.push(FleetDevice {
                    agent: name.clone(),
                    kind: "printer".into(),
                    printer: Some(p.clone()),
                    status: a.status.get(&p.name).cloned(),
                    attached: a.tx.is_some(),
                    pages_per_hour: per_hour,
                });
            }
            for i in &a.inserters {
                devices.push(FleetDevice {
                    agent: name.clone(),
                    kind: "inserter".into(),
                    printer: None,
                    status: a.status.get(i).cloned(),
                    attached: a.tx.is_some(),
                    pages_per_hour: 0.0,
                });
            }
        }
        FleetResponse { devices }
    }
}

/// A device state that puts out no paper.
pub(crate) fn is_down(state: &str) -> bool {
    matches!(state, "stopped" | "down" | "unreachable")
}

/// What printing needs from a run's production profile (its `jobs/production.json`).
#[derive(Clone, Debug, Default)]
struct RunProfile {
    /// The reprint cap in percent (10 if absent).
    reprint_cap: u32,
    /// The paper's IPP media keyword, if the profile names one.
    media: Option<String>,
}

fn run_profile(out: &Path) -> RunProfile {
    let path = out.join("jobs/production.json");
    let v = pressrun_engine::source::read_regular(
        &path,
        256 << 20,
        pressrun_engine::source::FileKind::Output,
    )
    .ok()
    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    .unwrap_or_default();
    // The engine checked the keyword; a run folder is still not trusted blindly.
    let media = match &v["profile"]["media"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(m) if pressrun_engine::production::is_media_keyword(m) => {
            Some(m.clone())
        }
        other => {
            tracing::error!(run_folder = %out.display(), "jobs/production.json names media {other}, not an IPP media keyword: ignored");
            None
        }
    };
    RunProfile {
        reprint_cap: v["profile"]["reprint_cap_percent"]
            .as_u64()
            .map_or(10, |n| n.min(100) as u32),
        media,
    }
}

/// Every known printer as routing sees it: attached agents' printers, up unless their
/// last status says otherwise, with the work on its way to them counted.
fn candidates(inner: &Inner) -> Vec<route::Candidate> {
    let mut out = Vec::new();
    for (name, a) in &inner.agents {
        for p in &a.printers {
            let status = a.status.get(&p.name);
            let down = status
                .is_some_and(|s| matches!(s.state.as_str(), "stopped" | "down" | "unreachable"));
            let on_the_way: u64 = inner
                .sending
                .values()
                .filter(|(ag, pr, _)| ag == name && pr == &p.name)
                .map(|(_, _, n)| n)
                .sum();
            out.push(route::Candidate {
                agent: name.clone(),
                printer: p.name.clone(),
                duplex: p.duplex,
                media: p.media.clone(),
                up: a.tx.is_some() && !down,
                queued_impressions: status.map_or(0, |s| s.queued_impressions) + on_the_way,
            });
        }
    }
    out
}

async fn send_job(
    out: &Path,
    run: &str,
    job: &str,
    origin: &str,
    printer: &str,
    media: &str,
    tx: &ToAgent,
) -> Result<(), String> {
    let (o, r, j, g, p) = (
        out.to_path_buf(),
        run.to_string(),
        job.to_string(),
        origin.to_string(),
        printer.to_string(),
    );
    let mut outgoing = tokio::task::spawn_blocking(move || files::prepare(&o, &r, &j, &g, &p))
        .await
        .map_err(|e| e.to_string())??;
    outgoing.header.media = media.to_string();
    let specs = outgoing.header.files.clone();
    tx.send(Ok(AgentCommand {
        kind: Some(agent_command::Kind::Job(outgoing.header)),
    }))
    .await
    .map_err(|_| "the agent went away".to_string())?;
    for (path, spec) in outgoing.files.iter().zip(&specs) {
        files::send_file(path, spec, tx).await?;
    }
    Ok(())
}

/// The `PrintAgents` service.
pub struct Service {
    pub hub: Arc<Hub>,
    /// With `--users`: who may make which call, and the access log.
    pub gate: Option<Arc<dispatcher::principals::Gate>>,
}

impl Service {
    fn check<T>(
        &self,
        req: &Request<T>,
        action: dispatcher::principals::Action,
        target: &str,
    ) -> Result<(), Status> {
        crate::service::check(self.gate.as_deref(), req, action, target)
    }
}

#[tonic::async_trait]
impl PrintAgents for Service {
    type AttachStream = tokio_stream::wrappers::ReceiverStream<Result<AgentCommand, Status>>;

    async fn attach(
        &self,
        request: Request<tonic::Streaming<pressrun_proto::v1::AgentMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        self.check(&request, dispatcher::principals::Action::AttachAgent, "")?;
        let rx = link::attach(self.hub.clone(), request.into_inner()).await?;
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn print_run(
        &self,
        request: Request<PrintRunRequest>,
    ) -> Result<Response<PrintRunResponse>, Status> {
        self.check(
            &request,
            dispatcher::principals::Action::PrintRun,
            &request.get_ref().run_id,
        )?;
        let r = request.into_inner();
        Ok(Response::new(
            self.hub.print(&r.run_id, r.reprint_held).await?,
        ))
    }

    async fn reconcile(
        &self,
        request: Request<ReconcileRequest>,
    ) -> Result<Response<ReconcileResponse>, Status> {
        self.check(
            &request,
            dispatcher::principals::Action::Reconcile,
            &request.get_ref().run_id,
        )?;
        let run = request.into_inner().run_id;
        let hub = self.hub.clone();
        let report = tokio::task::spawn_blocking(move || {
            hub.reader()?.reconcile(&run).map_err(|e| match e {
                dispatcher::ledger::LedgerError::NoSuchRun { .. } => {
                    ServiceError::NotFound(e.to_string())
                }
                e => internal(e),
            })
        })
        .await
        .map_err(internal)??;
        Ok(Response::new(ReconcileResponse {
            json: serde_json::to_string(&report).map_err(internal)?,
            complete: report.complete,
        }))
    }

    async fn fleet(&self, req: Request<FleetRequest>) -> Result<Response<FleetResponse>, Status> {
        self.check(&req, dispatcher::principals::Action::Fleet, "")?;
        Ok(Response::new(self.hub.fleet()))
    }
}
