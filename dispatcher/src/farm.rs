//! Farm runs: the engine's one scheduler and committer ([`pressrun_engine::run`]) over
//! in-process render threads or renderer nodes, with the dispatcher's run registry and
//! Prometheus metrics attached as an observer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use pressrun_engine::bundle::Bundle;
use pressrun_engine::run::{
    Backend, BackendError, CommitRecord, LocalBackend, Progress, RunObserver, RunStatus,
};
use pressrun_engine::template::Template;
use pressrun_proto::transport::Bearer;
use pressrun_proto::v1::renderer_client::RendererClient;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::remote::{RemoteBackend, Timing};
use crate::state::State;

/// Where and how shards render.
#[derive(Clone)]
pub struct Nodes {
    /// Renderer node addresses (`host:port`); empty = render in-process.
    pub renderers: Vec<String>,
    /// In-process render threads when there are no nodes (0 = one per core).
    pub threads: usize,
    /// Shards in flight per node.
    pub credits: usize,
    pub timing: Timing,
    /// Talk TLS to the nodes, trusting this PEM CA certificate.
    pub tls_ca: Option<Vec<u8>>,
    /// Name the nodes' certificates carry (default: the host of each `--renderer`).
    pub tls_domain: Option<String>,
    /// Bearer token sent with every call.
    pub token: Option<String>,
}

/// Builds the backends of a run: renderer nodes (every address each name resolves to),
/// or in-process render threads when none are named.
pub async fn backends(
    nodes: &Nodes,
    template: &Arc<Template>,
    bundle: &Arc<Bundle>,
) -> anyhow::Result<Vec<Arc<dyn Backend>>> {
    if nodes.renderers.is_empty() {
        return Ok(vec![Arc::new(LocalBackend::new(
            template.clone(),
            nodes.threads,
        ))]);
    }
    let mut out: Vec<Arc<dyn Backend>> = Vec::new();
    for (addr, host) in resolve(&nodes.renderers).await? {
        let scheme = if nodes.tls_ca.is_some() {
            "https"
        } else {
            "http"
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(ca) = &nodes.tls_ca {
            let domain = nodes.tls_domain.clone().unwrap_or_else(|| host.clone());
            endpoint = endpoint.tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name(domain),
            )?;
        }
        let auth = Bearer::new(nodes.token.as_deref())
            .context("the token has characters a header cannot carry")?;
        let client = RendererClient::with_interceptor(endpoint.connect_lazy(), auth)
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(
                (pressrun_engine::bundle::MAX_BUNDLE_BYTES + (1 << 20)) as usize,
            );
        out.push(Arc::new(RemoteBackend::new(
            addr,
            client,
            bundle.clone(),
            tokio::runtime::Handle::current(),
            nodes.credits.max(1),
            nodes.timing,
        )));
    }
    Ok(out)
}

/// Resolves renderer addresses: an `ip:port` stands for itself; a `name:port` stands for
/// every address the name resolves to, so a Kubernetes headless service lists all its
/// renderer pods. Resolved when a run starts; duplicates are dropped.
async fn resolve(renderers: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for r in renderers {
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(r.as_str())
            .await
            .with_context(|| format!("cannot resolve renderer address {r}: use host:port"))?
            .collect();
        if addrs.is_empty() {
            bail!("renderer address {r} resolves to nothing");
        }
        if addrs.len() > 1 {
            tracing::info!(name = %r, nodes = addrs.len(), "renderer name resolved to several nodes");
        }
        // The name (without the port) is what a TLS certificate names.
        let host = r
            .rsplit_once(':')
            .map_or(r.as_str(), |(h, _)| h)
            .trim_matches(['[', ']'])
            .to_string();
        for a in addrs {
            let a = a.to_string();
            if !out.iter().any(|(x, _)| x == &a) {
                out.push((a, host.clone()));
            }
        }
    }
    Ok(out)
}

/// The dispatcher's observer of a run: the run registry, Prometheus metrics and a
/// progress callback.
pub struct FarmObserver {
    state: Option<Mutex<State>>,
    state_path: Option<PathBuf>,
    run_id: Mutex<String>,
    out: Mutex<PathBuf>,
    progress: Box<dyn Fn(&Progress) + Send + Sync>,
}

impl FarmObserver {
    /// Records into the registry at `state` (when given) and reports progress.
    pub fn new(
        state: Option<&Path>,
        progress: Box<dyn Fn(&Progress) + Send + Sync>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            state: state.map(State::open).transpose()?.map(Mutex::new),
            state_path: state.map(Path::to_path_buf),
            run_id: Mutex::new(String::new()),
            out: Mutex::new(PathBuf::new()),
            progress,
        })
    }

    /// Records how the run ended.
    pub fn finished(&self, status: RunStatus) {
        let id = self
            .run_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(s) = &self.state
            && !id.is_empty()
            && let Err(e) = s
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .finish_run(&id, status)
        {
            tracing::warn!("{e}");
        }
    }
}

impl FarmObserver {
    /// Enters an assembled run's print jobs into the ledger (in the registry's database),
    /// every sheet and piece as "assembled"; jobs already there are left alone, so a
    /// resumed run changes nothing. Returns the jobs added.
    pub fn register_print_jobs(&self) -> anyhow::Result<u64> {
        let Some(path) = &self.state_path else {
            return Ok(0);
        };
        let id = self
            .run_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let out = self.out.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let plans = dispatcher::ledger::JobPlan::of_run(&out).map_err(anyhow::Error::msg)?;
        let added = dispatcher::ledger::Ledger::open(path)?.register(&id, &plans)?;
        tracing::info!(run = %id, jobs = plans.len(), added, "print jobs in the ledger");
        Ok(added)
    }
}

impl RunObserver for FarmObserver {
    fn started(&self, run_id: &str, out: &Path, resumed: u64, damage: &[String]) {
        *self.run_id.lock().unwrap_or_else(|e| e.into_inner()) = run_id.to_string();
        *self.out.lock().unwrap_or_else(|e| e.into_inner()) = out.to_path_buf();
        metrics::counter!("pressrun_damaged_files_found_total").increment(damage.len() as u64);
        if let Some(s) = &self.state
            && let Err(e) = s.lock().unwrap_or_else(|e| e.into_inner()).begin_run(
                run_id,
                &out.display().to_string(),
                resumed,
            )
        {
            tracing::warn!("{e}");
        }
    }

    fn committed(&self, record: &CommitRecord, progress: &Progress) {
        let id = self
            .run_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(s) = &self.state
            && let Err(e) = s
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .commit_shard(&id, record)
        {
            tracing::warn!("{e}");
        }
        metrics::counter!("pressrun_shards_committed_total").increment(1);
        metrics::gauge!("pressrun_documents_rendered").set(progress.documents as f64);
        metrics::gauge!("pressrun_pages_rendered").set(progress.pages as f64);
        metrics::gauge!("pressrun_records_rejected").set(progress.rejected as f64);
        (self.progress)(progress);
    }

    fn rendered(&self, backend: &str, _shard: u64, elapsed: Duration) {
        metrics::histogram!("pressrun_shard_seconds", "node" => backend.to_string())
            .record(elapsed.as_secs_f64());
    }

    fn failed(&self, backend: &str, _shard: u64, error: &BackendError) {
        let kind = match error {
            BackendError::Busy(_) => "busy",
            BackendError::Unavailable(_) => "unavailable",
            BackendError::Timeout(_) => "timeout",
            BackendError::Stalled(_) => "stalled",
            BackendError::BadAnswer(_) => "bad_answer",
            BackendError::Failed(_) => "failed",
            BackendError::Cancelled => "cancelled",
        };
        metrics::counter!("pressrun_shard_retries_total", "node" => backend.to_string(), "reason" => kind)
            .increment(1);
    }

    fn health(&self, backend: &str, healthy: bool) {
        metrics::gauge!("pressrun_node_healthy", "node" => backend.to_string()).set(if healthy {
            1.0
        } else {
            0.0
        });
    }

    fn in_flight(&self, backend: &str, delta: i64) {
        metrics::gauge!("pressrun_shards_in_flight", "node" => backend.to_string())
            .increment(delta as f64);
    }

    fn repaired(&self, _shard: u64) {
        metrics::counter!("pressrun_shards_repaired_total").increment(1);
    }
}

/// Registers the help texts of the dispatcher's metrics and creates the run-independent
/// series at 0.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "pressrun_ledger_events_total",
        "Device events from printer agents recorded in the ledger."
    );
    describe_counter!(
        "pressrun_ledger_findings_total",
        "Device reports kept as evidence but not applied (beyond the plan, unexpected, duplicate)."
    );
    describe_counter!("pressrun_reprint_jobs_total", "Reprint jobs made.");
    describe_counter!(
        "pressrun_reprinted_pieces_total",
        "Mail pieces put into reprint jobs."
    );
    describe_counter!(
        "pressrun_reprints_held_total",
        "Reprint decisions held for an operator by the profile's reprint cap."
    );
    describe_counter!(
        "pressrun_jobs_withdrawn_total",
        "Print jobs asked back from an agent whose printer stayed down."
    );
    describe_counter!(
        "pressrun_agent_sessions_total",
        "Printer agent sessions opened."
    );
    describe_counter!(
        "pressrun_shards_committed_total",
        "Shards committed (on disk and journaled)."
    );
    describe_gauge!(
        "pressrun_documents_rendered",
        "Documents committed by the current run."
    );
    describe_gauge!(
        "pressrun_pages_rendered",
        "Pages committed by the current run."
    );
    describe_gauge!(
        "pressrun_records_rejected",
        "Records rejected by the current run (see exceptions.jsonl)."
    );
    describe_counter!(
        "pressrun_shard_retries_total",
        "Shards sent elsewhere after a backend failed them, by reason."
    );
    describe_counter!(
        "pressrun_shards_repaired_total",
        "Committed shards whose damaged files were re-rendered on resume."
    );
    describe_counter!(
        "pressrun_damaged_files_found_total",
        "Problems found in committed output when a run resumed."
    );
    describe_gauge!(
        "pressrun_shards_in_flight",
        "Shards being rendered, per backend."
    );
    describe_gauge!(
        "pressrun_node_healthy",
        "1 while a backend takes work, 0 while it is probed after a failure."
    );
    describe_histogram!(
        "pressrun_shard_seconds",
        metrics::Unit::Seconds,
        "Time a backend took to render a shard, per backend."
    );
    for name in [
        "pressrun_documents_rendered",
        "pressrun_pages_rendered",
        "pressrun_records_rejected",
    ] {
        metrics::gauge!(name).set(0.0);
    }
    for name in [
        "pressrun_shards_committed_total",
        "pressrun_shards_repaired_total",
        "pressrun_damaged_files_found_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// Whether at least one backend answers a probe (probes block, so they run off the runtime).
pub async fn any_reachable(backends: &[Arc<dyn Backend>]) -> bool {
    let backends = backends.to_vec();
    tokio::task::spawn_blocking(move || {
        backends.iter().any(|b| match b.probe() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(node = b.name(), "renderer not ready: {e}");
                false
            }
        })
    })
    .await
    .unwrap_or(false)
}
