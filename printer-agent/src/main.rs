//! The `printer-agent` binary. Its commands (`serve`, `simulate-inserter`) are not built
//! yet: so far the crate holds the PIL/1 host protocol library (`printer_agent::pil`).

fn main() {
    eprintln!(
        "printer-agent: the serve and simulate-inserter commands are not built yet (only the PIL/1 protocol library is)"
    );
    std::process::exit(2);
}
