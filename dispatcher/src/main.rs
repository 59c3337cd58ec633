//! The `dispatcher` binary: control plane and operator CLI (filled by the rendering-farm issue).

fn main() {
    eprintln!("dispatcher: not built yet; use `renderer render` for local runs");
    std::process::exit(2);
}
