//! The renderer node: the `Renderer` gRPC service, a thin async layer over the composition
//! engine. Templates arrive as content-addressed bundles and are cached in memory by hash;
//! the node keeps no state on disk and may be killed at any moment. Shards render on a
//! dedicated pool; the async side only moves bytes. A shard whose caller goes away is
//! cancelled (skipped if queued, stopped at the next record if running), so a crashed
//! dispatcher never leaves a node busy with a dead run.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use pressrun_engine::bundle::MAX_BUNDLE_BYTES;
use pressrun_engine::input::RawRecord;
use pressrun_engine::run::pool::{Job, JobError, RenderPool};
use pressrun_engine::run::shard::{OutputParams, ShardOutput};
use pressrun_engine::template::Template;
use pressrun_proto::ServiceError;
use pressrun_proto::v1::renderer_server::{Renderer, RendererServer};
use pressrun_proto::v1::{
    MissingBundlesRequest, MissingBundlesResponse, PutBundleResponse, RenderDocumentRequest,
    RenderDocumentResponse, RenderShardRequest, RenderShardResponse, TemplateBundle,
    render_shard_request,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::wire;

/// Templates kept in memory, most recently used last.
const CACHED_TEMPLATES: usize = 32;
/// Shard numbers a node accepts (a run of more shards than this is not a real run).
const MAX_SHARDS: u64 = 1 << 40;
/// How often a node says it is alive while a shard waits or renders.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Limits a node enforces on what it is sent.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest shard (its records' bytes) accepted.
    pub max_shard_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_shard_bytes: 2 << 30,
        }
    }
}

/// The node's state: its template cache and its render pool.
pub struct Node {
    templates: Mutex<VecDeque<(String, Arc<Template>)>>,
    pool: RenderPool,
    limits: Limits,
}

impl Node {
    /// Creates a node with `threads` render threads and a queue of as many shards again.
    pub fn new(threads: usize, limits: Limits) -> Self {
        Self {
            templates: Mutex::new(VecDeque::new()),
            pool: RenderPool::new(threads, threads.max(1)),
            limits,
        }
    }

    fn template(&self, hash: &str) -> Result<Arc<Template>, ServiceError> {
        let mut cache = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        let i = cache.iter().position(|(h, _)| h == hash).ok_or_else(|| {
            ServiceError::FailedPrecondition(format!(
                "bundle {hash} is not on this node: upload it with PutBundle"
            ))
        })?;
        let entry = cache.remove(i).expect("found");
        let t = entry.1.clone();
        cache.push_back(entry);
        Ok(t)
    }

    /// Queues a shard; the reply arrives on the returned channel.
    fn submit(
        &self,
        template: Arc<Template>,
        shard: u64,
        records: Vec<RawRecord>,
        params: OutputParams,
        cancel: Arc<AtomicBool>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<ShardOutput, JobError>>, ServiceError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            template,
            shard,
            records,
            params,
            cancel,
            reply: Box::new(move |out| {
                let _ = reply.send(out);
            }),
        };
        self.pool.try_submit(job).map_err(|_| {
            metrics::counter!("pressrun_node_shards_refused_total").increment(1);
            ServiceError::Busy(format!(
                "renderer busy ({} shards queued): send the shard elsewhere or retry",
                self.pool.queued()
            ))
        })?;
        Ok(rx)
    }
}

type ShardStream = Pin<Box<dyn Stream<Item = Result<RenderShardResponse, Status>> + Send>>;

/// The answer stream of a shard: when the caller drops it (it went away), the shard is
/// cancelled.
struct CancelOnDrop {
    inner: tokio_stream::wrappers::ReceiverStream<Result<RenderShardResponse, Status>>,
    cancel: Arc<AtomicBool>,
}

impl Stream for CancelOnDrop {
    type Item = Result<RenderShardResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.cancel.swap(true, Ordering::SeqCst) {
            tracing::debug!("shard answer dropped: cancelling it");
        }
    }
}

/// Reads the request stream of a shard: its header, then its records.
async fn read_shard(
    inbound: &mut Streaming<RenderShardRequest>,
    limits: Limits,
) -> Result<(pressrun_proto::v1::ShardHeader, Vec<RawRecord>), ServiceError> {
    let bad = |m: String| ServiceError::InvalidArgument(m);
    let first = inbound
        .message()
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| bad("the request stream is empty: send a header first".into()))?;
    let Some(render_shard_request::Part::Header(header)) = first.part else {
        return Err(bad("the first message of a shard must be its header".into()));
    };
    if header.shard >= MAX_SHARDS {
        return Err(ServiceError::InvalidArgument(format!(
            "shard number {} is out of range (below {MAX_SHARDS})",
            header.shard
        )));
    }
    if header.records_bytes > limits.max_shard_bytes {
        return Err(ServiceError::InvalidArgument(format!(
            "shard of {} bytes exceeds this node's limit of {} bytes: send smaller shards (--batch-records)",
            header.records_bytes, limits.max_shard_bytes
        )));
    }
    let mut bytes = Vec::with_capacity(header.records_bytes.min(64 << 20) as usize);
    loop {
        let msg = inbound
            .message()
            .await
            .map_err(ServiceError::from)?
            .ok_or_else(|| bad("the request stream ended before the last records chunk".into()))?;
        let Some(render_shard_request::Part::Records(chunk)) = msg.part else {
            return Err(bad("a shard has one header".into()));
        };
        if bytes.len() as u64 + chunk.data.len() as u64 > header.records_bytes {
            return Err(bad("more record bytes than the header announced".into()));
        }
        bytes.extend_from_slice(&chunk.data);
        if chunk.last {
            break;
        }
    }
    let records = wire::decode_records(&bytes, header.records).map_err(|e| bad(e.to_string()))?;
    Ok((header, records))
}

#[tonic::async_trait]
impl Renderer for Node {
    async fn missing_bundles(
        &self,
        req: Request<MissingBundlesRequest>,
    ) -> Result<Response<MissingBundlesResponse>, Status> {
        let cache = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        let missing = req
            .into_inner()
            .hashes
            .into_iter()
            .filter(|h| !cache.iter().any(|(c, _)| c == h))
            .collect();
        Ok(Response::new(MissingBundlesResponse {
            missing,
            engine: pressrun_engine::run::ENGINE_BUILD.to_string(),
        }))
    }

    async fn put_bundle(
        &self,
        req: Request<TemplateBundle>,
    ) -> Result<Response<PutBundleResponse>, Status> {
        let bundle = crate::wire::bundle_from_wire(req.into_inner())
            .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        let compiled = tokio::task::spawn_blocking(move || {
            // A template that panics the compiler is a bad bundle, not a dead node.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bundle.compile()))
                .map_err(|_| {
                    ServiceError::InvalidArgument(
                        "the bundle's template crashed the compiler: report it".into(),
                    )
                })
                .map(|r| r.map(|c| (bundle.hash.clone(), c)))
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??
        .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        let (hash, c) = compiled;
        let t = Arc::new(c.template);
        let resp = PutBundleResponse {
            hash: hash.clone(),
            template_id: t.id.clone(),
            template_version: t.version.clone(),
        };
        let mut cache = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(h, _)| h != &hash);
        cache.push_back((hash, t));
        while cache.len() > CACHED_TEMPLATES {
            cache.pop_front();
        }
        metrics::counter!("pressrun_node_bundles_received_total").increment(1);
        tracing::info!(template = %resp.template_id, version = %resp.template_version, "bundle cached");
        Ok(Response::new(resp))
    }

    type RenderShardStream = ShardStream;

    async fn render_shard(
        &self,
        req: Request<Streaming<RenderShardRequest>>,
    ) -> Result<Response<ShardStream>, Status> {
        let mut inbound = req.into_inner();
        let (header, records) = read_shard(&mut inbound, self.limits).await?;
        let template = self.template(&header.bundle_hash)?;
        let params = wire::params(header.params.as_ref())?;
        let span = tracing::info_span!("shard", run = %header.run_id, shard = header.shard, records = records.len());
        let _e = span.enter();
        tracing::debug!("render shard");
        let cancel = Arc::new(AtomicBool::new(false));
        let n = records.len() as u64;
        let rx = self.submit(template, header.shard, records, params, cancel.clone())?;
        metrics::gauge!("pressrun_node_shards_in_flight").increment(1.0);
        let (tx, out_rx) = tokio::sync::mpsc::channel(8);
        let started = std::time::Instant::now();
        tokio::spawn(async move {
            let mut rx = rx;
            let mut tick = tokio::time::interval(HEARTBEAT);
            let result = loop {
                tokio::select! {
                    r = &mut rx => break r,
                    _ = tick.tick() => {
                        if tx.send(Ok(wire::progress_message(0))).await.is_err() {
                            break Ok(Err(JobError::Cancelled));
                        }
                    }
                }
            };
            metrics::gauge!("pressrun_node_shards_in_flight").decrement(1.0);
            match result {
                Ok(Ok(out)) => {
                    metrics::counter!("pressrun_node_shards_rendered_total").increment(1);
                    metrics::counter!("pressrun_node_records_rendered_total").increment(n);
                    metrics::counter!("pressrun_node_pages_rendered_total").increment(out.pages);
                    metrics::histogram!("pressrun_node_shard_seconds")
                        .record(started.elapsed().as_secs_f64());
                    for m in wire::shard_messages(out) {
                        if tx.send(Ok(m)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Err(JobError::Cancelled)) => {
                    metrics::counter!("pressrun_node_shards_cancelled_total").increment(1);
                    tracing::info!("shard cancelled: its caller went away");
                }
                Ok(Err(e @ JobError::Panicked(_))) => {
                    let _ = tx
                        .send(Err(ServiceError::Internal(e.to_string()).into()))
                        .await;
                }
                Err(_) => {
                    let _ = tx
                        .send(Err(ServiceError::Internal(
                            "render thread ended without an answer".into(),
                        )
                        .into()))
                        .await;
                }
            }
        });
        Ok(Response::new(Box::pin(CancelOnDrop {
            inner: tokio_stream::wrappers::ReceiverStream::new(out_rx),
            cancel,
        })))
    }

    async fn render_document(
        &self,
        req: Request<RenderDocumentRequest>,
    ) -> Result<Response<RenderDocumentResponse>, Status> {
        let r = req.into_inner();
        let template = self.template(&r.bundle_hash)?;
        let params = wire::on_demand_params(r.params.as_ref())?;
        let record = r
            .record
            .ok_or_else(|| ServiceError::InvalidArgument("record is required".into()))?;
        let records = wire::raw_records(vec![record]);
        let cancel = Arc::new(AtomicBool::new(false));
        let rx = self.submit(template, 0, records, params, cancel)?;
        let out = rx
            .await
            .map_err(|_| ServiceError::Internal("render thread ended without an answer".into()))?
            .map_err(|e| match e {
                JobError::Cancelled => ServiceError::Cancelled(e.to_string()),
                JobError::Panicked(_) => ServiceError::Internal(e.to_string()),
            })?;
        Ok(Response::new(wire::document_response(out)))
    }
}

/// Transport security: TLS (PEM certificate chain and key) and a bearer token every
/// Renderer call must carry. The health service stays open for orchestrator probes.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub token: Option<String>,
}

/// Serves the Renderer service and gRPC health on `listen` until SIGINT/SIGTERM, then
/// reports NOT_SERVING, drains in-flight shards for up to `drain`, and stops.
pub async fn serve(
    listen: SocketAddr,
    threads: usize,
    drain: Duration,
    security: Security,
    limits: Limits,
    health_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let node = Arc::new(Node::new(threads, limits));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    // Tests and supervisors read the bound address from this line.
    println!("renderer listening on {local}");
    use std::io::Write;
    std::io::stdout().flush()?;
    tracing::info!(%local, threads, "renderer node serving");
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<RendererServer<Node>>().await;
    if let Some(addr) = health_listen {
        // Plain-text health only, for probes; it shares the reporter, so it turns
        // NOT_SERVING when the node drains.
        let probe = tonic::transport::Server::builder().add_service(health.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "health for probes");
        tokio::spawn(async move {
            if let Err(e) = probe
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
            {
                tracing::warn!("health listener ended: {e}");
            }
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signal_reporter = reporter.clone();
    tokio::spawn(async move {
        pressrun_proto::transport::shutdown_signal().await;
        tracing::info!("shutting down: not serving, draining in-flight shards");
        signal_reporter
            .set_not_serving::<RendererServer<Node>>()
            .await;
        let _ = stop_tx.send(());
    });
    // Bundles are the largest messages; shards stream in chunks of at most 1 MiB.
    let max_message = (MAX_BUNDLE_BYTES + (1 << 20)) as usize;
    let service = RendererServer::from_arc(node)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(8 << 20);
    let service = pressrun_proto::transport::with_bearer(service, security.token.as_deref());
    let server = pressrun_proto::transport::server_builder(security.tls.as_ref())?
        .concurrency_limit_per_connection(64)
        .load_shed(true)
        .add_service(health)
        .add_service(service)
        .serve_with_incoming_shutdown(
            pressrun_proto::transport::nodelay(tokio_stream::wrappers::TcpListenerStream::new(
                listener,
            )),
            async {
                let _ = stop_rx.await;
            },
        );
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => r?,
        _ = async { pressrun_proto::transport::shutdown_signal().await; tokio::time::sleep(drain).await } => {
            tracing::warn!("drain deadline passed; stopping with work in flight");
        }
    }
    Ok(())
}

/// Registers the help texts of the node's metrics.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "pressrun_node_shards_rendered_total",
        "Shards this node rendered and answered."
    );
    describe_counter!(
        "pressrun_node_records_rendered_total",
        "Records in the shards this node rendered."
    );
    describe_counter!(
        "pressrun_node_pages_rendered_total",
        "Pages in the shards this node rendered."
    );
    describe_counter!(
        "pressrun_node_shards_cancelled_total",
        "Shards given up because their caller went away."
    );
    describe_counter!(
        "pressrun_node_shards_refused_total",
        "Shards refused because the render queue was full."
    );
    describe_counter!(
        "pressrun_node_bundles_received_total",
        "Template bundles uploaded to this node."
    );
    describe_gauge!(
        "pressrun_node_shards_in_flight",
        "Shards queued or rendering on this node."
    );
    describe_histogram!(
        "pressrun_node_shard_seconds",
        metrics::Unit::Seconds,
        "Time from a shard's arrival to its answer."
    );
    // Series exist from the start, so a scrape before the first shard sees them at 0.
    metrics::gauge!("pressrun_node_shards_in_flight").set(0.0);
    for name in [
        "pressrun_node_shards_rendered_total",
        "pressrun_node_records_rendered_total",
        "pressrun_node_pages_rendered_total",
        "pressrun_node_shards_cancelled_total",
        "pressrun_node_shards_refused_total",
        "pressrun_node_bundles_received_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}
