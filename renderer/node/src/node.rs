//! The renderer node: the `Renderer` gRPC service, a thin async layer over the composition
//! core. Templates arrive as content-addressed bundles and are cached in memory by hash;
//! the node keeps no state on disk and may be killed at any moment.

use crate::wire::FromWire;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::wire;
use pressrun_engine::bundle::Bundle;
use pressrun_engine::run::pool::{Job, RenderPool};
use pressrun_engine::run::shard::{OutputParams, ShardOutput};
use pressrun_engine::template::Template;
use pressrun_proto::v1::renderer_server::{Renderer, RendererServer};
use pressrun_proto::v1::{
    MissingBundlesRequest, MissingBundlesResponse, PutBundleResponse, RenderDocumentRequest,
    RenderDocumentResponse, RenderShardRequest, RenderShardResponse, TemplateBundle,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Templates kept in memory, most recently used last.
const CACHED_TEMPLATES: usize = 32;

/// The node's state: its template cache and its render pool.
pub struct Node {
    templates: Mutex<VecDeque<(String, Arc<Template>)>>,
    pool: RenderPool,
}

impl Node {
    /// Creates a node with `threads` render threads.
    pub fn new(threads: usize) -> Self {
        Self {
            templates: Mutex::new(VecDeque::new()),
            pool: RenderPool::new(threads, threads * 2),
        }
    }

    fn template(&self, hash: &str) -> Result<Arc<Template>, Status> {
        let mut cache = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        let i = cache.iter().position(|(h, _)| h == hash).ok_or_else(|| {
            Status::failed_precondition(format!(
                "bundle {hash} is not on this node: upload it with PutBundle"
            ))
        })?;
        let entry = cache.remove(i).expect("found");
        let t = entry.1.clone();
        cache.push_back(entry);
        Ok(t)
    }

    async fn render(
        &self,
        template: Arc<Template>,
        shard: u64,
        records: Vec<pressrun_engine::input::RawRecord>,
        params: OutputParams,
    ) -> Result<ShardOutput, Status> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            template,
            shard,
            records,
            params,
            reply: Box::new(move |out| {
                let _ = reply.send(out);
            }),
        };
        if self.pool.try_submit(job).is_err() {
            return Err(Status::resource_exhausted(format!(
                "renderer busy ({} jobs queued): send the shard elsewhere or retry",
                self.pool.queued()
            )));
        }
        rx.await
            .map_err(|_| Status::internal("render thread ended without an answer"))
    }
}

type ShardStream = Pin<Box<dyn Stream<Item = Result<RenderShardResponse, Status>> + Send>>;

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
        Ok(Response::new(MissingBundlesResponse { missing }))
    }

    async fn put_bundle(
        &self,
        req: Request<TemplateBundle>,
    ) -> Result<Response<PutBundleResponse>, Status> {
        let b = req.into_inner();
        let files = b
            .files
            .into_iter()
            .map(|f| (f.path, f.content.to_vec()))
            .collect();
        let bundle =
            Bundle::verify(files, &b.hash).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let compiled =
            tokio::task::spawn_blocking(move || bundle.compile().map(|c| (bundle.hash, c)))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
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
        tracing::info!(template = %resp.template_id, version = %resp.template_version, "bundle cached");
        Ok(Response::new(resp))
    }

    type RenderShardStream = ShardStream;

    async fn render_shard(
        &self,
        req: Request<RenderShardRequest>,
    ) -> Result<Response<ShardStream>, Status> {
        let r = req.into_inner();
        let template = self.template(&r.bundle_hash)?;
        let params = r
            .params
            .as_ref()
            .map(OutputParams::from_wire)
            .ok_or_else(|| Status::invalid_argument("params are required"))?;
        let records = wire::raw_records(r.records);
        tracing::debug!(run = %r.run_id, shard = r.shard, records = records.len(), "render shard");
        let out = self.render(template, r.shard, records, params).await?;
        let msgs = wire::shard_messages(out);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            msgs.into_iter().map(Ok),
        ))))
    }

    async fn render_document(
        &self,
        req: Request<RenderDocumentRequest>,
    ) -> Result<Response<RenderDocumentResponse>, Status> {
        let r = req.into_inner();
        let template = self.template(&r.bundle_hash)?;
        let mut params = r
            .params
            .as_ref()
            .map(OutputParams::from_wire)
            .ok_or_else(|| Status::invalid_argument("params are required"))?;
        params.print_files = false;
        params.per_document = true;
        let record = r
            .record
            .ok_or_else(|| Status::invalid_argument("record is required"))?;
        let records = wire::raw_records(vec![record]);
        let out = self.render(template, 0, records, params).await?;
        Ok(Response::new(wire::document_response(out)))
    }
}

/// Optional transport security: TLS (PEM certificate chain and key) and a bearer token
/// every Renderer call must carry. The health service stays open for orchestrator probes.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub token: Option<String>,
}

pub async fn serve(
    listen: SocketAddr,
    threads: usize,
    drain: Duration,
    security: Security,
) -> anyhow::Result<()> {
    let node = Arc::new(Node::new(threads));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    // Tests and supervisors read the bound address from this line.
    println!("renderer listening on {local}");
    use std::io::Write;
    std::io::stdout().flush()?;
    tracing::info!(%local, threads, "renderer node serving");
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<RendererServer<Node>>().await;
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
    let service = RendererServer::from_arc(node)
        .max_decoding_message_size(512 << 20)
        .max_encoding_message_size(64 << 20);
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
