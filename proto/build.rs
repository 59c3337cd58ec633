//! Compiles the `.proto` contracts with protox (pure Rust, no system `protoc`) and hands
//! the descriptor set to tonic's prost code generator.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "pressrun/v1/common.proto",
        "pressrun/v1/renderer.proto",
        "pressrun/v1/dispatcher.proto",
        "pressrun/v1/agent.proto",
        "pressrun/v1/templates.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .bytes(".pressrun.v1.BundleFile.content")
        .bytes(".pressrun.v1.FileChunk.data")
        .bytes(".pressrun.v1.Chunk.data")
        .bytes(".pressrun.v1.RenderedDocument.pdf")
        .compile_fds(fds)?;
    Ok(())
}
