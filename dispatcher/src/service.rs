//! `dispatcher serve`: the long-lived control plane. The Dispatcher gRPC service accepts
//! runs (executed by [`crate::farm::run`] on the configured renderer nodes or in-process),
//! streams their progress, cancels them, lists them, and renders single documents on
//! demand on a dedicated pool that batch runs never occupy.

use renderer::wire::FromWire;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pressrun_engine::bundle::Bundle;
use pressrun_engine::input::{RawData, RawRecord};
use pressrun_engine::run::pool::{Job, RenderPool};
use pressrun_engine::run::shard::OutputParams;
use pressrun_engine::run::{Progress, RunOptions};
use pressrun_engine::template::{CompileOptions, Template, compile};
use pressrun_proto::v1::dispatcher_server::{Dispatcher, DispatcherServer};
use pressrun_proto::v1::{
    CancelRunRequest, CancelRunResponse, ListRunsRequest, ListRunsResponse, RenderDocumentResponse,
    RenderNowRequest, RunProgress, RunState, SubmitRunRequest, SubmitRunResponse, WatchRunRequest,
};
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::farm::{self, FarmOptions};

/// What every run submitted to this server shares: nodes, state, transport security.
#[derive(Clone)]
pub struct ServerConfig {
    pub renderers: Vec<String>,
    pub state: PathBuf,
    pub shard_timeout: Duration,
    pub credits: usize,
    pub max_attempts: u32,
    pub tls_ca: Option<Vec<u8>>,
    pub tls_domain: Option<String>,
    pub token: Option<String>,
    /// Threads of the on-demand pool.
    pub on_demand_threads: usize,
}

impl ServerConfig {
    /// The options of one run on these nodes.
    pub fn farm(
        &self,
        template_dir: PathBuf,
        fragments: Option<PathBuf>,
        run: RunOptions,
        cancel: Option<watch::Receiver<bool>>,
        drain: Option<watch::Receiver<bool>>,
    ) -> FarmOptions {
        FarmOptions {
            template_dir,
            fragments,
            run,
            renderers: self.renderers.clone(),
            state: self.state.clone(),
            shard_timeout: self.shard_timeout,
            credits: self.credits,
            max_attempts: self.max_attempts,
            tls_ca: self.tls_ca.clone(),
            tls_domain: self.tls_domain.clone(),
            token: self.token.clone(),
            cancel,
            drain,
        }
    }
}

struct RunEntry {
    progress: watch::Receiver<RunProgress>,
    cancel: watch::Sender<bool>,
    drain: watch::Sender<bool>,
}

/// The Dispatcher service.
pub struct Service {
    config: ServerConfig,
    runs: Mutex<BTreeMap<String, RunEntry>>,
    on_demand: RenderPool,
    templates: Mutex<BTreeMap<(PathBuf, String), Arc<Template>>>,
}

impl Service {
    /// Creates the service.
    pub fn new(config: ServerConfig) -> Self {
        let threads = config.on_demand_threads.max(1);
        Self {
            on_demand: RenderPool::new(threads, threads * 64),
            config,
            runs: Mutex::new(BTreeMap::new()),
            templates: Mutex::new(BTreeMap::new()),
        }
    }

    /// The compiled template of a folder, cached by its bundle hash (a changed template is
    /// compiled again).
    fn template(&self, dir: &std::path::Path) -> Result<Arc<Template>, Status> {
        let bundle =
            Bundle::from_dir(dir, None).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let key = (dir.to_path_buf(), bundle.hash);
        if let Some(t) = self
            .templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(t.clone());
        }
        let t = Arc::new(
            compile(dir, &CompileOptions::default())
                .map_err(|d| Status::invalid_argument(d.to_string()))?
                .template,
        );
        self.templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, t.clone());
        Ok(t)
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
        shards_committed: 0,
        shards_total: 0,
        message: message.to_string(),
    }
}

fn terminal(state: i32) -> bool {
    [
        RunState::Succeeded as i32,
        RunState::Failed as i32,
        RunState::Cancelled as i32,
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
        let r = req.into_inner();
        let params = r
            .params
            .as_ref()
            .map(OutputParams::from_wire)
            .ok_or_else(|| Status::invalid_argument("params are required"))?;
        let run = RunOptions {
            data: PathBuf::from(&r.data),
            format: None,
            out: PathBuf::from(&r.out),
            batch_records: if r.batch_records == 0 {
                1000
            } else {
                r.batch_records
            },
            threads: 0,
            limit: r.limit,
            output: params,
        };
        let template_dir = PathBuf::from(&r.template_dir);
        let bundle = Bundle::from_dir(&template_dir, None)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (id, _) =
            farm::run_id(&bundle, &run).map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (drain_tx, drain_rx) = watch::channel(false);
        let (progress_tx, progress_rx) = watch::channel(progress_of(
            &id,
            RunState::Running,
            &Progress::default(),
            "started",
        ));
        {
            let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(existing) = runs.get(&id)
                && !terminal(existing.progress.borrow().state)
            {
                return Err(Status::already_exists(format!(
                    "run {id} is already running"
                )));
            }
            runs.insert(
                id.clone(),
                RunEntry {
                    progress: progress_rx,
                    cancel: cancel_tx,
                    drain: drain_tx,
                },
            );
        }
        let opts = self
            .config
            .farm(template_dir, None, run, Some(cancel_rx), Some(drain_rx));
        let (run_id, tx) = (id.clone(), Arc::new(progress_tx));
        let updates = tx.clone();
        let progress: Arc<dyn Fn(Progress) + Send + Sync> = Arc::new(move |p: Progress| {
            let _ = updates.send(progress_of(&run_id, RunState::Running, &p, ""));
        });
        let run_id = id.clone();
        tokio::spawn(async move {
            let result = farm::run(opts, progress).await;
            let last = tx.borrow().clone();
            let p = Progress {
                composed: last.records,
                records: last.records,
                documents: last.documents,
                pages: last.pages,
                rejected: last.rejected,
            };
            let update = match result {
                Ok(s) => {
                    let p = Progress {
                        composed: s.records,
                        records: s.records,
                        documents: s.documents,
                        pages: s.pages,
                        rejected: s.rejected,
                    };
                    progress_of(&run_id, RunState::Succeeded, &p, &s.line())
                }
                Err(e) if e.to_string() == farm::CANCELLED => {
                    progress_of(&run_id, RunState::Cancelled, &p, "cancelled")
                }
                Err(e) => progress_of(&run_id, RunState::Failed, &p, &format!("{e:#}")),
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
        let id = req.into_inner().run_id;
        let mut rx = self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|r| r.progress.clone())
            .ok_or_else(|| Status::not_found(format!("no run {id} on this dispatcher")))?;
        let stream = async_stream(
            move |tx: tokio::sync::mpsc::Sender<Result<RunProgress, Status>>| async move {
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
            },
        );
        Ok(Response::new(stream))
    }

    async fn cancel_run(
        &self,
        req: Request<CancelRunRequest>,
    ) -> Result<Response<CancelRunResponse>, Status> {
        let id = req.into_inner().run_id;
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let entry = runs
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("no run {id} on this dispatcher")))?;
        let _ = entry.cancel.send(true);
        Ok(Response::new(CancelRunResponse {
            state: entry.progress.borrow().state,
        }))
    }

    async fn list_runs(
        &self,
        _req: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
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
        let r = req.into_inner();
        let template = self.template(&PathBuf::from(&r.template_dir))?;
        let mut params = r
            .params
            .as_ref()
            .map(OutputParams::from_wire)
            .ok_or_else(|| Status::invalid_argument("params are required"))?;
        params.print_files = false;
        params.per_document = true;
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
            reply: Box::new(move |out| {
                let _ = tx.send(out);
            }),
        };
        if self.on_demand.try_submit(job).is_err() {
            return Err(Status::resource_exhausted(
                "on-demand queue full: retry shortly",
            ));
        }
        let out = rx
            .await
            .map_err(|_| Status::internal("render thread ended without an answer"))?;
        Ok(Response::new(renderer::wire::document_response(out)))
    }
}

/// A stream fed by a task.
fn async_stream<F, Fut>(f: F) -> ProgressStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<RunProgress, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Serves the Dispatcher service and gRPC health on `listen` until SIGINT/SIGTERM.
/// TLS (PEM certificate chain and key) and a bearer token for the Dispatcher service
/// itself; both optional. Health stays open for probes.
#[derive(Clone, Default)]
pub struct ServerSecurity {
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub token: Option<String>,
}

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
    let svc = Arc::new(Service::new(config));
    let service = DispatcherServer::from_arc(svc.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(256 << 20);
    let service = pressrun_proto::transport::with_bearer(service, security.token.as_deref());
    pressrun_proto::transport::server_builder(security.tls.as_ref())?
        .add_service(health)
        .add_service(service)
        .serve_with_incoming_shutdown(
            pressrun_proto::transport::nodelay(tokio_stream::wrappers::TcpListenerStream::new(
                listener,
            )),
            async move {
                pressrun_proto::transport::shutdown_signal().await;
                reporter
                    .set_not_serving::<DispatcherServer<Service>>()
                    .await;
            },
        )
        .await?;
    // Drain: every running run stops taking shards, commits the ones in flight and ends
    // resumable; then the process exits.
    let running: Vec<watch::Receiver<RunProgress>> = {
        let runs = svc.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.values()
            .filter(|r| !terminal(r.progress.borrow().state))
            .map(|r| {
                let _ = r.drain.send(true);
                r.progress.clone()
            })
            .collect()
    };
    tracing::info!(runs = running.len(), "draining runs before exit");
    for mut rx in running {
        while !terminal(rx.borrow_and_update().state) {
            if rx.changed().await.is_err() {
                break;
            }
        }
    }
    Ok(())
}
