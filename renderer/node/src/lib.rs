//! The renderer's service layer over `pressrun-engine`: the command-line options of a run
//! (shared with the dispatcher), the stateless gRPC renderer node, and the conversions
//! between the wire contracts (`pressrun-proto`) and the engine's plain data.
//!
//! - [`args`]: `RunArgs`, the flags of `renderer render` and `dispatcher run`;
//! - [`cli`]: exit codes, logging, the progress line and signal handling both CLIs share;
//! - [`node`]: the `Renderer` gRPC service;
//! - [`wire`]: proto ⇄ engine conversions and the shard stream's framing.

pub mod args;
pub mod cli;
pub mod node;
pub mod wire;
