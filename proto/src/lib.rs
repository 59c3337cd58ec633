//! Pressrun gRPC contracts, package `pressrun.v1`, compiled at build time by protox
//! (no system `protoc`). Large payloads (file chunks, bundle files, PDFs) are `bytes::Bytes`.
//!
//! - [`pressrun::v1::renderer_server`] / [`pressrun::v1::renderer_client`]: stateless renderer nodes;
//! - [`pressrun::v1::dispatcher_server`] / [`pressrun::v1::dispatcher_client`]: the control plane;
//! - [`pressrun::v1::print_agents_server`] / [`pressrun::v1::print_agents_client`]: printer
//!   agents attached to the dispatcher, printing runs, the ledger's reconciliation and the fleet.

/// Generated code.
pub mod pressrun {
    /// Version 1 of the contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic, reason = "generated code")]
        tonic::include_proto!("pressrun.v1");
    }
}

pub mod error;
pub mod transport;

pub use error::ServiceError;

pub use pressrun::v1;

#[cfg(test)]
mod tests {
    use super::v1::*;
    use prost::Message;

    #[test]
    fn a_shard_request_round_trips_through_the_wire_format() {
        let req = RenderShardRequest {
            part: Some(render_shard_request::Part::Header(ShardHeader {
                run_id: "r1".into(),
                shard: 3,
                bundle_hash: "ab".repeat(32),
                params: Some(OutputParams {
                    run_date: "2026-11-23".into(),
                    duplex: true,
                    batch_sheets: Some(500),
                    print_files: true,
                    ..Default::default()
                }),
                records: 1,
                records_bytes: 12,
            })),
        };
        let bytes = req.encode_to_vec();
        assert_eq!(RenderShardRequest::decode(bytes.as_slice()).unwrap(), req);
        let chunk = FileChunk {
            name: "print-00004.pdf".into(),
            data: prost::bytes::Bytes::from_static(b"%PDF"),
            last: true,
        };
        assert_eq!(
            FileChunk::decode(chunk.encode_to_vec().as_slice())
                .unwrap()
                .data,
            chunk.data
        );
    }
}
