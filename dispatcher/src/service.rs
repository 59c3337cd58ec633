//! `dispatcher serve`: the long-lived control plane. The Dispatcher gRPC service accepts
//! runs (executed by the engine's scheduler on the configured renderer nodes or
//! in-process), streams their progress, cancels them, lists them, and renders single
//! documents on demand on a dedicated pool that batch runs never occupy. Every path a
//! request names must lie inside the server's roots ([`crate::roots`]).

use dispatcher::principals::{Action, Check, Gate};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use pressrun_engine::bundle::Bundle;
use pressrun_engine::input::{RawData, RawRecord};
use pressrun_engine::run::pool::{Job, JobError, RenderPool};
use pressrun_engine::run::{
    FolderError, Progress, RunControl, RunError, RunSpec, RunStatus, prepare, run_claimed,
};
use pressrun_engine::template::{CompileOptions, Template, compile};
use pressrun_proto::ServiceError;
use pressrun_proto::v1::dispatcher_server::{Dispatcher, DispatcherServer};
use pressrun_proto::v1::{
    CancelRunRequest, CancelRunResponse, ListRunsRequest, ListRunsResponse, RenderDocumentResponse,
    RenderNowRequest, RunProgress, RunState, SubmitRunRequest, SubmitRunResponse, WatchRunRequest,
};
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::farm::{self, FarmObserver, Nodes};
use crate::roots::Roots;

/// What every run submitted to this server shares.
#[derive(Clone)]
pub struct ServerConfig {
    pub nodes: Nodes,
    pub max_attempts: u32,
    /// A run fails when no node has been healthy for this long.
    pub unavailable: std::time::Duration,
    /// The run registry.
    pub state: PathBuf,
    /// Threads of the on-demand pool.
    pub on_demand_threads: usize,
    pub roots: Roots,
    /// A printer down this long is drained: its queued jobs move to printers that are up.
    pub drain_after: std::time::Duration,
}

/// A compiled template and the bundle it came from.
type Compiled = (Arc<Template>, Arc<Bundle>);

struct RunEntry {
    progress: watch::Receiver<RunProgress>,
    control: Arc<RunControl>,
}

/// The Dispatcher service.
pub struct Service {
    config: ServerConfig,
    runs: Mutex<BTreeMap<String, RunEntry>>,
    on_demand: RenderPool,
    templates: Mutex<BTreeMap<(PathBuf, String), Compiled>>,
    /// The attached printer agents, for runs submitted with printing on.
    hub: Option<Arc<crate::agents::Hub>>,
    /// With `--users`: who may make which call, and the access log.
    gate: Option<Arc<Gate>>,
}

/// The service error of a run that cannot start.
fn run_error(e: RunError) -> ServiceError {
    match e {
        RunError::Folder(FolderError::Io { .. }) | RunError::Output { .. } => {
            ServiceError::Internal(e.to_string())
        }
        RunError::Folder(_) => ServiceError::FailedPrecondition(e.to_string()),
        RunError::Params(_) | RunError::NothingToWrite | RunError::Input(_) => {
            ServiceError::InvalidArgument(e.to_string())
        }
        _ => ServiceError::Internal(e.to_string()),
    }
}

impl Service {
    /// Creates the service.
    pub fn new(config: ServerConfig, hub: Option<Arc<crate::agents::Hub>>) -> Self {
        let threads = config.on_demand_threads.max(1);
        Self {
            hub,
            gate: None,
            on_demand: RenderPool::new(threads, threads * 64),
            config,
            runs: Mutex::new(BTreeMap::new()),
            templates: Mutex::new(BTreeMap::new()),
        }
    }

    /// Checks the users file's rights (and records the call) when there is one.
    pub fn with_gate(mut self, gate: Option<Arc<Gate>>) -> Self {
        self.gate = gate;
        self
    }

    fn check<T>(&self, req: &Request<T>, action: Action, target: &str) -> Result<(), Status> {
        check(self.gate.as_deref(), req, action, target)
    }

    /// The compiled template of a folder and its bundle, cached by the bundle's hash (a
    /// changed template is compiled again).
    async fn template(&self, dir: &Path) -> Result<Compiled, ServiceError> {
        if let Some(lib) = pressrun_engine::bundle::fragment_library(dir) {
            self.config.roots.template_library(&lib)?;
        }
        let owned = dir.to_path_buf();
        let bundle = tokio::task::spawn_blocking(move || Bundle::from_dir(&owned, None))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        let key = (dir.to_path_buf(), bundle.hash.clone());
        if let Some(t) = self
            .templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(t.clone());
        }
        let owned = dir.to_path_buf();
        let template = tokio::task::spawn_blocking(move || {
            compile(&owned, &CompileOptions::default())
                .map(|c| c.template)
                .map_err(|d| d.to_string())
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(ServiceError::InvalidArgument)?;
        if bundle.hash != hex::encode(template.content_hash) {
            return Err(ServiceError::FailedPrecondition(
                "the template folder changed while it was read: submit again once it is stable"
                    .into(),
            ));
        }
        let entry = (Arc::new(template), Arc::new(bundle));
        self.templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, entry.clone());
        Ok(entry)
    }
}

impl Service {
    /// A request's template: its folder (under a template root) or its registry name on
    /// the run date, one of them; with `preview`, a registry version not in force is
    /// allowed and said so.
    async fn run_template(
        &self,
        dir: &str,
        name: &str,
        params: Option<&pressrun_proto::v1::OutputParams>,
        preview: bool,
    ) -> Result<(Compiled, bool), ServiceError> {
        match (dir.is_empty(), name.is_empty()) {
            (false, true) => Ok((self.template(&self.config.roots.template(dir)?).await?, false)),
            (true, false) => {
                let run_date = params.map(|p| p.run_date.as_str()).unwrap_or_default();
                self.registry_template(name, run_date, preview).await
            }
            _ => Err(ServiceError::InvalidArgument(
                "name the template by its folder (template_dir) or by its registry name (template), one of them".into(),
            )),
        }
    }

    /// A registry template for a run dated `run_date`: `NAME` is the approved version in
    /// force that day, `NAME@VERSION` must be approved and in force that day. Its bundle
    /// comes from the registry, checked against its hash, compiled once per hash. With
    /// `preview`, `NAME@VERSION` may also be a version that is not approved and in force
    /// (then the answer says so: `true`).
    async fn registry_template(
        &self,
        spec: &str,
        run_date: &str,
        preview: bool,
    ) -> Result<(Compiled, bool), ServiceError> {
        let day = dispatcher::registry::parse_day(run_date)
            .map_err(|e| ServiceError::InvalidArgument(format!("run date: {e}")))?;
        let state = self.config.state.clone();
        let owned = spec.to_string();
        let (version, bundle, is_preview) = tokio::task::spawn_blocking(move || {
            let r = dispatcher::registry::Registry::open(&state)?;
            let (v, is_preview) = match r.for_run(&owned, day) {
                Ok(v) => (v, false),
                Err(
                    dispatcher::registry::RegistryError::NotInForce { .. }
                    | dispatcher::registry::RegistryError::NoneInForce { .. },
                ) if preview && owned.contains('@') => (r.show(&owned)?.0, true),
                Err(e) => return Err(e),
            };
            let b = r.bundle(&v)?;
            Ok::<_, dispatcher::registry::RegistryError>((v, b, is_preview))
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(|e| ServiceError::FailedPrecondition(e.to_string()))?;
        let key = (
            PathBuf::from(format!("registry:{}", version.id())),
            bundle.hash.clone(),
        );
        if let Some(t) = self
            .templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok((t.clone(), is_preview));
        }
        let (bundle, compiled) = tokio::task::spawn_blocking(move || {
            let c = bundle.compile();
            (bundle, c)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let template = compiled
            .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?
            .template;
        tracing::info!(template = %version.id(), hash = %version.hash, "run uses the registry's template");
        let entry = (Arc::new(template), Arc::new(bundle));
        self.templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, entry.clone());
        Ok((entry, is_preview))
    }

    /// Asks every running run to drain (finish its shards in flight and stop resumably)
    /// and returns their progress, to wait on.
    fn drain_all(&self) -> Vec<watch::Receiver<RunProgress>> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.values()
            .filter(|r| !terminal(r.progress.borrow().state))
            .map(|r| {
                r.control.drain();
                r.progress.clone()
            })
            .collect()
    }
}

fn progress_of(id: &str, state: RunState, p: &Progress, message: &str) -> RunProgress {
    RunProgress {
        run_id: id.to_string(),
        state: state as i32,
        records: p.records,
        documents: p.documents,
        pages: p.pages,
        rejected: p.rejected,
        shards_committed: p.shards_committed,
        shards_total: p.shards_total.unwrap_or(0),
        message: message.to_string(),
        unassembled: 0,
    }
}

fn terminal(state: i32) -> bool {
    [
        RunState::Succeeded as i32,
        RunState::Failed as i32,
        RunState::Cancelled as i32,
        RunState::Stopped as i32,
    ]
    .contains(&state)
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<RunProgress, Status>> + Send>>;

#[tonic::async_trait]
impl Dispatcher for Service {
    async fn submit_run(
        &self,
        req: Request<SubmitRunRequest>,
    ) -> Result<Response<SubmitRunResponse>, Status> {
        self.check(&req, Action::SubmitRun, &req.get_ref().out)?;
        let r = req.into_inner();
        let params = renderer::wire::params(r.params.as_ref())?;
        let roots = &self.config.roots;
        let data = roots.data(&r.data)?;
        let out = roots.out(&r.out)?;
        let ((template, bundle), _) = self
            .run_template(&r.template_dir, &r.template, r.params.as_ref(), false)
            .await?;
        if r.print && r.production_profile.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "print needs a production profile: only print-production runs are printed".into(),
            )
            .into());
        }
        let profile = if r.production_profile.is_empty() {
            None
        } else {
            let path = roots.profile(&r.production_profile)?;
            Some(
                pressrun_engine::production::Profile::read(&path)
                    .map_err(ServiceError::InvalidArgument)?,
            )
        };
        let mut spec = RunSpec {
            data,
            format: None,
            out,
            batch_records: if r.batch_records == 0 {
                1000
            } else {
                r.batch_records
            },
            limit: r.limit,
            output: params,
            replace: r.replace,
            window: r.window_shards as usize,
            max_attempts: self.config.max_attempts,
            runner: "dispatcher serve".into(),
            max_record_bytes: if r.max_record_bytes == 0 {
                pressrun_engine::input::MAX_RECORD_BYTES
            } else {
                r.max_record_bytes as usize
            },
            unavailable: self.config.unavailable,
            production: None,
            assemble_threads: 0,
        };
        renderer::args::with_production(&mut spec, profile);
        let (t, s) = (template.clone(), spec.clone());
        let claimed = tokio::task::spawn_blocking(move || prepare(&t, &s)?.claim(&s))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(run_error)?;
        let id = claimed.run_id().to_string();
        let backends = farm::backends(&self.config.nodes, &template, &bundle)
            .await
            .map_err(|e| ServiceError::Unavailable(format!("{e:#}")))?;
        let control = Arc::new(RunControl::default());
        let (progress_tx, progress_rx) = watch::channel(progress_of(
            &id,
            RunState::Running,
            &Progress::default(),
            "started",
        ));
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id.clone(),
            RunEntry {
                progress: progress_rx,
                control: control.clone(),
            },
        );
        let tx = Arc::new(progress_tx);
        let updates = tx.clone();
        let run_id = id.clone();
        let observer = FarmObserver::new(
            Some(&self.config.state),
            Box::new(move |p: &Progress| {
                let _ = updates.send(progress_of(&run_id, RunState::Running, p, ""));
            }),
        )
        .map_err(|e| ServiceError::Internal(format!("{e:#}")))?;
        let run_id = id.clone();
        let (hub, print) = (self.hub.clone(), r.print);
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let result = run_claimed(template, &spec, claimed, &backends, &control, &observer);
            let last = tx.borrow().clone();
            let p = Progress {
                composed: last.records,
                records: last.records,
                documents: last.documents,
                pages: last.pages,
                rejected: last.rejected,
                shards_committed: last.shards_committed,
                shards_total: (last.shards_total > 0).then_some(last.shards_total),
            };
            let update = match result {
                Ok(report) => {
                    let ledger =
                        if report.status == RunStatus::Succeeded && report.production.is_some() {
                            observer.register_print_jobs().err()
                        } else {
                            None
                        };
                    if let Some(e) = ledger {
                        observer.finished(RunStatus::Failed);
                        let msg = format!(
                            "the print jobs are written but not in the ledger ({e:#}); enter them with `dispatcher enter-jobs --out OUT --state STATE`"
                        );
                        let _ = tx.send(progress_of(&run_id, RunState::Failed, &p, &msg));
                        return;
                    }
                    observer.finished(report.status);
                    // Printed once the registry says it succeeded (print refuses others).
                    if print
                        && report.status == RunStatus::Succeeded
                        && report.production.is_some()
                        && let Some(hub) = hub.as_ref()
                    {
                        let hub = hub.clone();
                        let run = run_id.clone();
                        handle.spawn(async move {
                            if let Err(e) = hub.print_run(&run).await {
                                tracing::error!(%run, "the run is composed but not printing: {e}");
                            }
                        });
                    }
                    let s = &report.summary;
                    let p = Progress {
                        composed: s.records,
                        records: s.records,
                        documents: s.documents,
                        pages: s.pages,
                        rejected: s.rejected,
                        ..p
                    };
                    let state = match report.status {
                        RunStatus::Succeeded => RunState::Succeeded,
                        RunStatus::Cancelled => RunState::Cancelled,
                        RunStatus::Stopped => RunState::Stopped,
                        RunStatus::Running | RunStatus::Failed => RunState::Failed,
                    };
                    let mut done = progress_of(&run_id, state, &p, &report.line());
                    done.unassembled = report.production.as_ref().map_or(0, |x| x.unassembled);
                    done
                }
                Err(e) => {
                    observer.finished(RunStatus::Failed);
                    progress_of(&run_id, RunState::Failed, &p, &e.to_string())
                }
            };
            tracing::info!(run = %run_id, state = update.state, "run ended");
            let _ = tx.send(update);
        });
        Ok(Response::new(SubmitRunResponse { run_id: id }))
    }

    type WatchRunStream = ProgressStream;

    async fn watch_run(
        &self,
        req: Request<WatchRunRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        self.check(&req, Action::WatchRun, &req.get_ref().run_id)?;
        let id = req.into_inner().run_id;
        let mut rx = self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|r| r.progress.clone())
            .ok_or_else(|| ServiceError::NotFound(format!("no run {id} on this dispatcher")))?;
        let (tx, out) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let p = rx.borrow_and_update().clone();
                let end = terminal(p.state);
                if tx.send(Ok(p)).await.is_err() || end {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn cancel_run(
        &self,
        req: Request<CancelRunRequest>,
    ) -> Result<Response<CancelRunResponse>, Status> {
        self.check(&req, Action::CancelRun, &req.get_ref().run_id)?;
        let id = req.into_inner().run_id;
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let entry = runs
            .get(&id)
            .ok_or_else(|| ServiceError::NotFound(format!("no run {id} on this dispatcher")))?;
        entry.control.cancel();
        Ok(Response::new(CancelRunResponse {
            state: entry.progress.borrow().state,
        }))
    }

    async fn list_runs(
        &self,
        req: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        self.check(&req, Action::ListRuns, "")?;
        let runs = self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|r| r.progress.borrow().clone())
            .collect();
        Ok(Response::new(ListRunsResponse { runs }))
    }

    async fn render_now(
        &self,
        req: Request<RenderNowRequest>,
    ) -> Result<Response<RenderDocumentResponse>, Status> {
        let target = if req.get_ref().template.is_empty() {
            req.get_ref().template_dir.clone()
        } else {
            req.get_ref().template.clone()
        };
        self.check(&req, Action::RenderNow, &target)?;
        let r = req.into_inner();
        let ((template, _), preview) = self
            .run_template(&r.template_dir, &r.template, r.params.as_ref(), true)
            .await?;
        let params = renderer::wire::on_demand_params(r.params.as_ref())?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            template,
            shard: 0,
            records: vec![RawRecord {
                number: 1,
                line: 1,
                data: RawData::Json(r.record_json),
            }],
            params,
            cancel: Arc::new(AtomicBool::new(false)),
            reply: Box::new(move |out| {
                let _ = tx.send(out);
            }),
        };
        if self.on_demand.try_submit(job).is_err() {
            return Err(ServiceError::Busy("on-demand queue full: retry shortly".into()).into());
        }
        let out = rx
            .await
            .map_err(|_| ServiceError::Internal("render thread ended without an answer".into()))?
            .map_err(|e| match e {
                JobError::Cancelled => ServiceError::Cancelled(e.to_string()),
                JobError::Panicked(_) => ServiceError::Internal(e.to_string()),
            })?;
        let mut answer = renderer::wire::document_response(out);
        if preview
            && let Some(pressrun_proto::v1::render_document_response::Result::Document(d)) =
                &mut answer.result
        {
            let pdf = d.pdf.clone();
            let marked = tokio::task::spawn_blocking(move || crate::preview::watermark(&pdf))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))?
                .map_err(ServiceError::Internal)?;
            d.pdf = marked.into();
            d.preview = true;
        }
        Ok(Response::new(answer))
    }
}

/// TLS (PEM certificate chain and key) and a bearer token for the Dispatcher service
/// itself. Health stays open for probes.
#[derive(Clone, Default)]
pub struct ServerSecurity {
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub token: Option<String>,
    /// `--users`: tokens of named users with roles, checked per call (instead of `token`).
    pub gate: Option<Arc<Gate>>,
}

/// Checks a call against the users file's rights when there is one (no users file: the
/// shared token, if any, was checked by the interceptor and every call is allowed).
pub fn check<T>(
    gate: Option<&Gate>,
    req: &Request<T>,
    action: Action,
    target: &str,
) -> Result<(), Status> {
    match gate {
        Some(g) => g.authorize(req, action, target).map(|_| ()),
        None => Ok(()),
    }
}

/// The server's interceptor: the users file's principal, or the one shared token.
#[derive(Clone)]
pub struct Auth {
    bearer: pressrun_proto::transport::BearerCheck,
    users: Option<Check>,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        match &mut self.users {
            Some(c) => c.call(req),
            None => self.bearer.call(req),
        }
    }
}

impl ServerSecurity {
    fn auth(&self) -> Auth {
        Auth {
            bearer: pressrun_proto::transport::BearerCheck(self.token.as_deref().map(Arc::from)),
            users: self.gate.clone().map(Check),
        }
    }
}

/// Serves the Dispatcher service and gRPC health on `listen` until SIGINT/SIGTERM, then
/// drains every running run (in-flight shards commit; the runs stop resumably).
pub async fn serve(
    listen: std::net::SocketAddr,
    config: ServerConfig,
    security: ServerSecurity,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    println!("dispatcher listening on {local}");
    use std::io::Write;
    std::io::stdout().flush()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<DispatcherServer<Service>>().await;
    let hub = crate::agents::Hub::new(&config.state)?;
    hub.start_drainer(config.drain_after);
    let agents =
        pressrun_proto::v1::print_agents_server::PrintAgentsServer::new(crate::agents::Service {
            hub: hub.clone(),
            gate: security.gate.clone(),
        })
        .max_decoding_message_size(8 << 20);
    let agents = tonic::service::interceptor::InterceptedService::new(agents, security.auth());
    reporter
        .set_serving::<pressrun_proto::v1::print_agents_server::PrintAgentsServer<crate::agents::Service>>()
        .await;
    let state_path = config.state.clone();
    let svc = Arc::new(Service::new(config, Some(hub.clone())).with_gate(security.gate.clone()));
    if let Some(gate) = security.gate.clone() {
        // SIGHUP reads the users file again; one that does not check out changes nothing.
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match gate.reload() {
                    Ok(n) => tracing::info!(users = n, "users file reloaded"),
                    Err(e) => {
                        tracing::error!("users file not reloaded, the users in force stay: {e}")
                    }
                }
            }
        });
    }
    let service = DispatcherServer::from_arc(svc.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(256 << 20);
    let service = tonic::service::interceptor::InterceptedService::new(service, security.auth());
    let templates =
        pressrun_proto::v1::templates_server::TemplatesServer::new(crate::templates::Service {
            state: state_path,
            gate: security.gate.clone(),
        })
        .max_decoding_message_size((pressrun_engine::bundle::MAX_BUNDLE_BYTES + (1 << 20)) as usize)
        .max_encoding_message_size(
            (pressrun_engine::bundle::MAX_BUNDLE_BYTES + (1 << 20)) as usize,
        );
    let templates =
        tonic::service::interceptor::InterceptedService::new(templates, security.auth());
    pressrun_proto::transport::server_builder(security.tls.as_ref())?
        .add_service(health)
        .add_service(service)
        .add_service(agents)
        .add_service(templates)
        .serve_with_incoming_shutdown(
            pressrun_proto::transport::nodelay(tokio_stream::wrappers::TcpListenerStream::new(
                listener,
            )),
            {
                let svc = svc.clone();
                async move {
                    pressrun_proto::transport::shutdown_signal().await;
                    reporter
                        .set_not_serving::<DispatcherServer<Service>>()
                        .await;
                    // Drain before the server waits for open calls: a run being watched
                    // must stop too, and its WatchRun stream ends when it does.
                    let n = svc.drain_all().len();
                    tracing::info!(runs = n, "draining runs before exit");
                    hub.close();
                }
            },
        )
        .await?;
    for mut rx in svc.drain_all() {
        while !terminal(rx.borrow_and_update().state) {
            if rx.changed().await.is_err() {
                break;
            }
        }
    }
    Ok(())
}
