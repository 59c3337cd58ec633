//! A renderer node as a [`Backend`] of the engine's scheduler: shards stream to the node
//! over gRPC (records in chunks), the answer streams back (progress, files in chunks, the
//! summary) and is reassembled within a size limit. A node is *stalled* when it sends
//! nothing for `stall` (a live node sends progress at least twice a second), and *late*
//! when a shard takes more than its deadline, derived from the throughput observed in the
//! run; either way the shard goes elsewhere within seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pressrun_engine::bundle::Bundle;
use pressrun_engine::run::shard::ShardOutput;
use pressrun_engine::run::{Backend, BackendError, ShardWork};
use pressrun_proto::ServiceError;
use pressrun_proto::transport::Bearer;
use pressrun_proto::v1::MissingBundlesRequest;
use pressrun_proto::v1::renderer_client::RendererClient;
use renderer::wire::{self, Pushed, ShardAssembler};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A renderer client that adds the bearer token, when there is one, to every call.
pub type Client = RendererClient<InterceptedService<Channel, Bearer>>;

/// How long a node may take.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// No message at all for this long: the node is stalled (stopped, hung, cut off).
    pub stall: Duration,
    /// A shard's deadline is four times its expected time, but never below this floor…
    pub shard_floor: Duration,
    /// …and never above this cap.
    pub shard_max: Duration,
}

impl Timing {
    /// The deadline of a shard expected to take `expected`.
    pub fn deadline(&self, expected: Option<Duration>) -> Duration {
        expected
            .map(|e| e * 4)
            .unwrap_or(self.shard_max)
            .clamp(self.shard_floor, self.shard_max)
    }
}

/// One renderer node.
pub struct RemoteBackend {
    addr: String,
    client: Client,
    bundle: Arc<Bundle>,
    rt: tokio::runtime::Handle,
    slots: usize,
    timing: Timing,
    /// Largest answer accepted for one shard.
    max_answer_bytes: u64,
}

impl RemoteBackend {
    /// A backend for the node at `addr`, reached through `client`, rendering `bundle`.
    pub fn new(
        addr: String,
        client: Client,
        bundle: Arc<Bundle>,
        rt: tokio::runtime::Handle,
        slots: usize,
        timing: Timing,
    ) -> Self {
        Self {
            addr,
            client,
            bundle,
            rt,
            slots,
            timing,
            max_answer_bytes: 8 << 30,
        }
    }

    async fn upload(&self) -> Result<(), BackendError> {
        let msg = renderer::wire::bundle_to_wire(&self.bundle);
        let r = self
            .client
            .clone()
            .put_bundle(msg)
            .await
            .map_err(|s| failure(s.into()))?
            .into_inner();
        if r.hash != self.bundle.hash {
            return Err(BackendError::BadAnswer(format!(
                "the node cached bundle {} for {}",
                r.hash, self.bundle.hash
            )));
        }
        tracing::info!(node = %self.addr, template = %r.template_id, version = %r.template_version, "bundle uploaded");
        Ok(())
    }

    async fn probe_async(&self) -> Result<(), BackendError> {
        let missing = tokio::time::timeout(
            Duration::from_secs(3),
            self.client.clone().missing_bundles(MissingBundlesRequest {
                hashes: vec![self.bundle.hash.clone()],
            }),
        )
        .await
        .map_err(|_| BackendError::Unavailable("no answer to MissingBundles within 3 s".into()))?
        .map_err(|s| failure(s.into()))?
        .into_inner();
        if missing.engine != pressrun_engine::run::ENGINE_BUILD {
            return Err(BackendError::Failed(format!(
                "the node runs {}, this dispatcher {}: run the same build on every node",
                missing.engine,
                pressrun_engine::run::ENGINE_BUILD
            )));
        }
        if !missing.missing.is_empty() {
            self.upload().await?;
        }
        Ok(())
    }

    async fn render_async(&self, work: &ShardWork) -> Result<ShardOutput, BackendError> {
        let msgs = wire::shard_request(
            &work.run_id,
            work.shard,
            &self.bundle.hash,
            &work.params,
            &work.records,
        );
        let started = Instant::now();
        let deadline = self.timing.deadline(work.expected);
        let call = |msgs| {
            let mut client = self.client.clone();
            async move { client.render_shard(tokio_stream::iter(msgs)).await }
        };
        let response = match tokio::time::timeout(deadline, call(msgs.clone())).await {
            Err(_) => return Err(BackendError::Timeout("no answer to RenderShard".into())),
            Ok(Ok(r)) => r,
            Ok(Err(s)) => match ServiceError::from(s) {
                // The node restarted empty: send it the bundle and try once more.
                ServiceError::FailedPrecondition(_) => {
                    self.upload().await?;
                    tokio::time::timeout(deadline, call(msgs))
                        .await
                        .map_err(|_| BackendError::Timeout("no answer to RenderShard".into()))?
                        .map_err(|s| failure(s.into()))?
                }
                e => return Err(failure(e)),
            },
        };
        let mut stream = response.into_inner();
        let mut asm = ShardAssembler::with_limit(self.max_answer_bytes);
        loop {
            let left = deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(BackendError::Timeout(format!(
                    "shard {} took longer than its deadline of {:.1} s",
                    work.shard,
                    deadline.as_secs_f64()
                )));
            }
            let wait = self.timing.stall.min(left);
            match tokio::time::timeout(wait, stream.message()).await {
                Err(_) if wait < self.timing.stall => continue,
                Err(_) => {
                    return Err(BackendError::Stalled(format!(
                        "no message from the node for {:.1} s",
                        wait.as_secs_f64()
                    )));
                }
                Ok(Err(s)) => return Err(failure(s.into())),
                Ok(Ok(None)) => {
                    return Err(BackendError::BadAnswer(
                        "the stream ended without a summary".into(),
                    ));
                }
                Ok(Ok(Some(msg))) => match asm.push(msg) {
                    Err(e) => return Err(BackendError::BadAnswer(e.to_string())),
                    Ok(Pushed::Done(out)) => return Ok(out),
                    Ok(Pushed::Partial | Pushed::Progress(_)) => {}
                },
            }
        }
    }
}

/// What a node's error means for the scheduler (by kind, never by text).
fn failure(e: ServiceError) -> BackendError {
    match e {
        ServiceError::Busy(m) => BackendError::Busy(m),
        ServiceError::Unavailable(m) | ServiceError::Cancelled(m) => BackendError::Unavailable(m),
        ServiceError::Timeout(m) => BackendError::Timeout(m),
        other => BackendError::Failed(other.to_string()),
    }
}

impl Backend for RemoteBackend {
    fn name(&self) -> &str {
        &self.addr
    }

    fn slots(&self) -> usize {
        self.slots
    }

    fn probe(&self) -> Result<(), BackendError> {
        self.rt.block_on(self.probe_async())
    }

    fn render(
        &self,
        _slot: usize,
        work: &ShardWork,
        cancel: &AtomicBool,
    ) -> Result<ShardOutput, BackendError> {
        self.rt.block_on(async {
            tokio::select! {
                r = self.render_async(work) => r,
                _ = async {
                    while !cancel.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                } => Err(BackendError::Cancelled),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_observed_throughput_within_bounds() {
        let t = Timing {
            stall: Duration::from_secs(5),
            shard_floor: Duration::from_secs(30),
            shard_max: Duration::from_secs(600),
        };
        assert_eq!(t.deadline(None), Duration::from_secs(600));
        assert_eq!(
            t.deadline(Some(Duration::from_secs(1))),
            Duration::from_secs(30)
        );
        assert_eq!(
            t.deadline(Some(Duration::from_secs(20))),
            Duration::from_secs(80)
        );
        assert_eq!(
            t.deadline(Some(Duration::from_secs(1000))),
            Duration::from_secs(600)
        );
    }
}
