//! Runs: the input cut into shards, shards scheduled over renderer backends (in-process
//! threads or renderer nodes over gRPC) with a bounded number in flight per backend, and
//! committed in input order, exactly once, with a checkpoint in the run state after each.
//!
//! Scheduling is pull-based: every backend runs `credits` workers that take the next shard
//! when they are free, so a fast node takes more shards and a slow one never stalls the
//! run. A shard whose backend fails, answers garbage or exceeds the deadline goes back to
//! the queue for another backend; the failing node is marked unhealthy and probed with
//! back-off before it gets work again. Late duplicates are discarded by the committer.

use renderer::wire::ToWire;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use pressrun_engine::bundle::Bundle;
use pressrun_engine::input::{RawRecord, RecordReader};
use pressrun_engine::run::pool::{Job, RenderPool};
use pressrun_engine::run::shard::ShardOutput;
use pressrun_engine::run::{Committer, Progress, RunOptions, RunSummary};
use pressrun_engine::template::Template;
use pressrun_proto::transport::Bearer;
use pressrun_proto::v1::renderer_client::RendererClient;
use pressrun_proto::v1::{BundleFile, MissingBundlesRequest, RenderShardRequest, TemplateBundle};
use renderer::wire::ShardAssembler;
use sha2::{Digest, Sha256};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::state::State;

/// Options of a farm run.
pub struct FarmOptions {
    pub template_dir: PathBuf,
    pub fragments: Option<PathBuf>,
    pub run: RunOptions,
    /// Renderer node addresses (`host:port`); empty = render in-process.
    pub renderers: Vec<String>,
    /// The run-state database.
    pub state: PathBuf,
    /// Deadline for one shard on a node.
    pub shard_timeout: Duration,
    /// Shards in flight per node.
    pub credits: usize,
    /// Attempts before a shard fails the run.
    pub max_attempts: u32,
    /// Talk TLS to the nodes, trusting this PEM CA certificate.
    pub tls_ca: Option<Vec<u8>>,
    /// Name the nodes' certificates carry (default: the host of each `--renderer`).
    pub tls_domain: Option<String>,
    /// Bearer token sent with every call.
    pub token: Option<String>,
    /// Set to true to cancel the run (committed shards stay; a later run resumes).
    pub cancel: Option<tokio::sync::watch::Receiver<bool>>,
    /// Set to true to stop gracefully: no new shards, in-flight ones finish and commit.
    pub drain: Option<tokio::sync::watch::Receiver<bool>>,
}

/// A renderer client that adds the bearer token, when there is one, to every call.
type Client = RendererClient<InterceptedService<Channel, Bearer>>;

/// A shard of the input.
#[derive(Clone)]
struct Shard {
    id: u64,
    records: Arc<Vec<RawRecord>>,
    attempts: u32,
}

enum Event {
    Output(ShardOutput, String),
    Total(u64),
    Failed(String),
}

/// A place shards render.
enum Backend {
    Local {
        pool: Arc<RenderPool>,
        template: Arc<Template>,
    },
    Remote {
        addr: String,
        client: Box<Client>,
        bundle: Arc<Bundle>,
    },
}

struct Node {
    backend: Backend,
    healthy: AtomicBool,
    failures: AtomicU32,
}

impl Node {
    fn name(&self) -> &str {
        match &self.backend {
            Backend::Local { .. } => "local",
            Backend::Remote { addr, .. } => addr,
        }
    }
}

/// Identifies a run by what determines its output, so a restarted run finds its state.
pub fn run_id(bundle: &Bundle, opts: &RunOptions) -> anyhow::Result<(String, String)> {
    let data = std::fs::canonicalize(&opts.data)
        .with_context(|| format!("cannot read {}", opts.data.display()))?;
    let meta = std::fs::metadata(&data)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let description = serde_json::json!({
        "bundle": bundle.hash,
        "data": data.display().to_string(),
        "data_len": meta.len(),
        "data_mtime": mtime,
        "out": opts.out.display().to_string(),
        "batch_records": opts.batch_records,
        "limit": opts.limit,
        "params": opts.output,
    })
    .to_string();
    let id = hex::encode(&Sha256::digest(description.as_bytes())[..8]);
    Ok((id, description))
}

/// Runs a farm run to completion (or resumes it), returning its counts.
pub async fn run(
    opts: FarmOptions,
    progress: Arc<dyn Fn(Progress) + Send + Sync>,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let compiled = pressrun_engine::template::compile(
        &opts.template_dir,
        &pressrun_engine::template::CompileOptions {
            fragments: opts.fragments.clone(),
        },
    )
    .map_err(|d| anyhow!(TemplateError(d.to_string())))?;
    let template = Arc::new(compiled.template);
    let bundle = Arc::new(Bundle::from_dir(
        &opts.template_dir,
        opts.fragments.as_deref(),
    )?);
    let (id, description) = run_id(&bundle, &opts.run)?;
    std::fs::create_dir_all(&opts.run.out)
        .with_context(|| format!("cannot create {}", opts.run.out.display()))?;
    if opts.run.output.per_document {
        std::fs::create_dir_all(opts.run.out.join("documents"))?;
    }
    let mut state = State::open(&opts.state)?;
    let (resume, checkpoint) = state.begin_run(&id, &description)?;
    if resume > 0 {
        tracing::info!(run = %id, shards = resume, "resuming: committed shards are kept");
    }
    let committer = match &checkpoint {
        Some(cp) => Committer::resume(&opts.run, cp)?,
        None => Committer::create(&opts.run)?,
    };

    // Backends.
    let mut nodes = Vec::new();
    if opts.renderers.is_empty() {
        let threads = if opts.run.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            opts.run.threads
        };
        let pool = Arc::new(RenderPool::new(threads, threads));
        for _ in 0..threads {
            nodes.push(Arc::new(Node {
                backend: Backend::Local {
                    pool: pool.clone(),
                    template: template.clone(),
                },
                healthy: AtomicBool::new(true),
                failures: AtomicU32::new(0),
            }));
        }
    } else {
        for (addr, host) in &resolve(&opts.renderers).await? {
            let scheme = if opts.tls_ca.is_some() {
                "https"
            } else {
                "http"
            };
            let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
                .connect_timeout(Duration::from_secs(3))
                .tcp_nodelay(true);
            if let Some(ca) = &opts.tls_ca {
                let domain = opts.tls_domain.clone().unwrap_or_else(|| host.clone());
                endpoint = endpoint.tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(ca))
                        .domain_name(domain),
                )?;
            }
            let auth = Bearer::new(opts.token.as_deref())
                .context("the token has characters a header cannot carry")?;
            let client = RendererClient::with_interceptor(endpoint.connect_lazy(), auth)
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(512 << 20);
            let node = Arc::new(Node {
                backend: Backend::Remote {
                    addr: addr.clone(),
                    client: Box::new(client),
                    bundle: bundle.clone(),
                },
                healthy: AtomicBool::new(false),
                failures: AtomicU32::new(0),
            });
            match probe(&node).await {
                Ok(()) => node.healthy.store(true, Ordering::Relaxed),
                Err(e) => tracing::warn!(node = %addr, "renderer not ready: {e:#}"),
            }
            metrics::gauge!("pressrun_node_healthy", "node" => addr.clone()).set(
                if node.healthy.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            );
            for _ in 0..opts.credits.max(1) {
                nodes.push(node.clone());
            }
        }
        if !nodes.iter().any(|n| n.healthy.load(Ordering::Relaxed)) {
            bail!(
                "no renderer node is reachable: start `renderer serve` on {}",
                opts.renderers.join(", ")
            );
        }
    }

    let (work_tx, work_rx) = async_channel::bounded::<Shard>(nodes.len() + 1);
    let (retry_tx, retry_rx) = async_channel::unbounded::<Shard>();
    let (event_tx, event_rx) = crossbeam_channel::bounded::<Event>(nodes.len() + 2);
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);

    // Reader: cuts the input into shards, skipping the committed ones.
    let reader_opts = opts.run.clone();
    let reader_events = event_tx.clone();
    let reader = std::thread::spawn(move || {
        let result = (|| -> anyhow::Result<u64> {
            let input = RecordReader::open(&reader_opts.data, reader_opts.format)?;
            let size = reader_opts.batch_records.max(1) as usize;
            let limit = reader_opts.limit.unwrap_or(u64::MAX);
            let mut shard = 0u64;
            let mut records = Vec::with_capacity(size.min(4096));
            let send = |shard: u64, records: Vec<RawRecord>| -> bool {
                shard < resume
                    || work_tx
                        .send_blocking(Shard {
                            id: shard,
                            records: Arc::new(records),
                            attempts: 0,
                        })
                        .is_ok()
            };
            for raw in input {
                let raw = raw?;
                if raw.number > limit {
                    break;
                }
                records.push(raw);
                if records.len() == size {
                    if !send(
                        shard,
                        std::mem::replace(&mut records, Vec::with_capacity(size.min(4096))),
                    ) {
                        return Ok(shard);
                    }
                    shard += 1;
                }
            }
            if !records.is_empty() {
                send(shard, records);
                shard += 1;
            }
            Ok(shard)
        })();
        let _ = reader_events.send(match result {
            Ok(total) => Event::Total(total),
            Err(e) => Event::Failed(format!("{e:#}")),
        });
    });

    // Committer: in input order, exactly once, checkpoint after every shard.
    let commit_id = id.clone();
    let commit_progress = progress.clone();
    let committer_thread = std::thread::spawn(move || -> anyhow::Result<RunSummary> {
        let mut committer = committer;
        let mut next = resume;
        let mut total: Option<u64> = None;
        let mut pending: BTreeMap<u64, (ShardOutput, String)> = BTreeMap::new();
        let finish = |committer: Committer| committer.finish().map_err(anyhow::Error::from);
        if let Some(cp) = &checkpoint {
            let s = &cp.summary;
            commit_progress(Progress {
                composed: s.records,
                records: s.records,
                documents: s.documents,
                pages: s.pages,
                rejected: s.rejected,
            });
        }
        loop {
            if total == Some(next) {
                let _ = done_tx.send(true);
                return finish(committer);
            }
            let Ok(event) = event_rx.recv() else {
                bail!("all shard sources ended before the run was complete")
            };
            match event {
                Event::Total(n) => total = Some(n),
                Event::Failed(e) => {
                    let _ = done_tx.send(true);
                    bail!(e)
                }
                Event::Output(out, node) => {
                    if out.shard < next || pending.contains_key(&out.shard) {
                        tracing::debug!(shard = out.shard, %node, "late duplicate discarded");
                        continue;
                    }
                    pending.insert(out.shard, (out, node));
                    while let Some((out, node)) = pending.remove(&next) {
                        let records = out.records;
                        committer.shard(out)?;
                        let cp = committer.checkpoint()?;
                        state.commit_shard(&commit_id, next, records, &node, &cp)?;
                        tracing::info!(shard = next, %node, "shard committed");
                        metrics::counter!("pressrun_shards_committed_total").increment(1);
                        next += 1;
                        let s = &committer.summary;
                        metrics::gauge!("pressrun_documents_rendered").set(s.documents as f64);
                        metrics::gauge!("pressrun_pages_rendered").set(s.pages as f64);
                        metrics::gauge!("pressrun_records_rejected").set(s.rejected as f64);
                        commit_progress(Progress {
                            composed: s.records,
                            records: s.records,
                            documents: s.documents,
                            pages: s.pages,
                            rejected: s.rejected,
                        });
                    }
                }
            }
        }
    });

    // Workers: `credits` per node, pulling shards.
    let params = opts.run.output.clone();
    let draining = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for node in nodes {
        let (work_rx, retry_rx, retry_tx, events) = (
            work_rx.clone(),
            retry_rx.clone(),
            retry_tx.clone(),
            event_tx.clone(),
        );
        let mut done = done_rx.clone();
        let (draining, busy) = (draining.clone(), busy.clone());
        let (params, run, timeout, max_attempts) = (
            params.clone(),
            id.clone(),
            opts.shard_timeout,
            opts.max_attempts,
        );
        tasks.push(tokio::spawn(async move {
            loop {
                if draining.load(Ordering::SeqCst) {
                    return;
                }
                if !node.healthy.load(Ordering::Relaxed) {
                    let failures = node.failures.load(Ordering::Relaxed).min(5);
                    tokio::select! {
                        _ = done.changed() => return,
                        _ = tokio::time::sleep(Duration::from_millis(200 << failures)) => {}
                    }
                    match probe(&node).await {
                        Ok(()) => {
                            tracing::info!(node = node.name(), "renderer healthy again");
                            metrics::gauge!("pressrun_node_healthy", "node" => node.name().to_string()).set(1.0);
                            node.healthy.store(true, Ordering::Relaxed);
                        }
                        Err(_) => continue,
                    }
                }
                let mut shard = tokio::select! {
                    biased;
                    _ = done.changed() => return,
                    Ok(s) = retry_rx.recv() => s,
                    r = work_rx.recv() => match r {
                        Ok(s) => s,
                        Err(_) => tokio::select! {
                            _ = done.changed() => return,
                            Ok(s) = retry_rx.recv() => s,
                        },
                    },
                };
                busy.fetch_add(1, Ordering::SeqCst);
                if draining.load(Ordering::SeqCst) {
                    // Taken as the drain began: left for the resumed run.
                    busy.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                shard.attempts += 1;
                let name = node.name().to_string();
                let in_flight = metrics::gauge!("pressrun_shards_in_flight", "node" => name.clone());
                in_flight.increment(1.0);
                let began = Instant::now();
                let result = match tokio::time::timeout(timeout, render(&node, &run, &shard, &params)).await {
                    Ok(r) => r,
                    Err(_) => Err(anyhow!("no answer within {} s", timeout.as_secs_f32())),
                };
                in_flight.decrement(1.0);
                metrics::histogram!("pressrun_shard_seconds", "node" => name.clone()).record(began.elapsed().as_secs_f64());
                match result {
                    Ok(out) => {
                        node.failures.store(0, Ordering::Relaxed);
                        let sent = events.send(Event::Output(out, node.name().to_string()));
                        busy.fetch_sub(1, Ordering::SeqCst);
                        if sent.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        metrics::counter!("pressrun_shard_retries_total", "node" => name.clone()).increment(1);
                        metrics::gauge!("pressrun_node_healthy", "node" => name.clone()).set(0.0);
                        node.failures.fetch_add(1, Ordering::Relaxed);
                        if node.healthy.swap(false, Ordering::Relaxed) {
                            tracing::warn!(
                                node = node.name(),
                                shard = shard.id,
                                "renderer marked unhealthy: {e:#}"
                            );
                        }
                        if shard.attempts >= max_attempts {
                            let _ = events.send(Event::Failed(format!(
                                "shard {} failed {} times, last on {}: {e:#}",
                                shard.id,
                                shard.attempts,
                                node.name()
                            )));
                            return;
                        }
                        let _ = retry_tx.send(shard).await;
                        busy.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    if let Some(mut drain) = opts.drain.clone() {
        let events = event_tx.clone();
        let (draining, busy) = (draining.clone(), busy.clone());
        tokio::spawn(async move {
            while drain.changed().await.is_ok() {
                if *drain.borrow() {
                    tracing::warn!("stopping: no new shards; draining the ones in flight");
                    draining.store(true, Ordering::SeqCst);
                    while busy.load(Ordering::SeqCst) > 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let _ = events.send(Event::Failed(STOPPED.into()));
                    return;
                }
            }
        });
    }
    if let Some(mut cancel) = opts.cancel.clone() {
        let events = event_tx.clone();
        tokio::spawn(async move {
            while cancel.changed().await.is_ok() {
                if *cancel.borrow() {
                    let _ = events.send(Event::Failed(CANCELLED.into()));
                    return;
                }
            }
        });
    }
    drop(event_tx);
    let summary = tokio::task::spawn_blocking(move || committer_thread.join())
        .await?
        .map_err(|_| anyhow!("the committer panicked"))?;
    for t in tasks {
        t.abort();
    }
    // A run that ended early (failed, cancelled) leaves the reader waiting to hand over
    // its next shard: closing the queue releases it.
    work_rx.close();
    retry_rx.close();
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    let state = State::open(&opts.state)?;
    let mut summary = match summary {
        Ok(s) => {
            state.finish_run(&id, "succeeded")?;
            s
        }
        Err(e) => {
            let status = match e.to_string().as_str() {
                CANCELLED => "cancelled",
                STOPPED => "stopped",
                _ => "failed",
            };
            state.finish_run(&id, status)?;
            return Err(e);
        }
    };
    summary.elapsed = started.elapsed();
    Ok(summary)
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

/// The error of a run stopped by a signal after draining.
pub const STOPPED: &str = "stopped by a signal: the shards in flight were committed; run the same command again to resume";

/// The error of a cancelled run.
pub const CANCELLED: &str = "the run was cancelled";

/// A template that does not compile (exit code 4).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Checks a node answers and has the bundle (uploading it when it lacks it).
async fn probe(node: &Node) -> anyhow::Result<()> {
    let Backend::Remote { client, bundle, .. } = &node.backend else {
        return Ok(());
    };
    let mut client = client.as_ref().clone();
    let missing = tokio::time::timeout(
        Duration::from_secs(3),
        client.missing_bundles(MissingBundlesRequest {
            hashes: vec![bundle.hash.clone()],
        }),
    )
    .await
    .map_err(|_| anyhow!("no answer to MissingBundles within 3 s"))??
    .into_inner()
    .missing;
    if !missing.is_empty() {
        upload(&mut client, bundle).await?;
    }
    Ok(())
}

async fn upload(client: &mut Client, bundle: &Bundle) -> anyhow::Result<()> {
    let msg = TemplateBundle {
        hash: bundle.hash.clone(),
        files: bundle
            .files
            .iter()
            .map(|(p, b)| BundleFile {
                path: p.clone(),
                content: b.clone().into(),
            })
            .collect(),
    };
    let r = client.put_bundle(msg).await?.into_inner();
    tracing::info!(template = %r.template_id, version = %r.template_version, "bundle uploaded");
    Ok(())
}

async fn render(
    node: &Node,
    run: &str,
    shard: &Shard,
    params: &pressrun_engine::run::shard::OutputParams,
) -> anyhow::Result<ShardOutput> {
    match &node.backend {
        Backend::Local { pool, template } => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let job = Job {
                template: template.clone(),
                shard: shard.id,
                records: shard.records.as_ref().clone(),
                params: params.clone(),
                reply: Box::new(move |out| {
                    let _ = tx.send(out);
                }),
            };
            let pool = pool.clone();
            tokio::task::spawn_blocking(move || pool.submit(job)).await?;
            Ok(rx.await?)
        }
        Backend::Remote { client, bundle, .. } => {
            let req = RenderShardRequest {
                run_id: run.to_string(),
                shard: shard.id,
                bundle_hash: bundle.hash.clone(),
                params: Some(params.to_wire()),
                records: shard.records.iter().map(ToWire::to_wire).collect(),
            };
            let mut client = client.as_ref().clone();
            let response = match client.render_shard(req.clone()).await {
                Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                    upload(&mut client, bundle).await?;
                    client.render_shard(req).await?
                }
                r => r?,
            };
            let mut stream = response.into_inner();
            let mut asm = ShardAssembler::default();
            while let Some(msg) = stream.message().await? {
                if let Some(out) = asm.push(msg)? {
                    if out.shard != shard.id || out.records != shard.records.len() as u64 {
                        bail!(
                            "answered shard {} with {} records for shard {} with {}",
                            out.shard,
                            out.records,
                            shard.id,
                            shard.records.len()
                        );
                    }
                    return Ok(out);
                }
            }
            bail!("the stream ended without a summary")
        }
    }
}
