//! The `printer-agent` binary (filled by the print-production issues).

fn main() {
    eprintln!("printer-agent: not built yet");
    std::process::exit(2);
}
