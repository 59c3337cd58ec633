//! On-demand latency: one 3-page statement rendered through the dispatcher's gRPC API
//! (`RenderNow`) many times, by one client or several at once (each on its own
//! connection); prints p50, p99 and max.
//!
//! Start a server first (`dispatcher serve --listen 127.0.0.1:50050 --state S`) or use
//! `benches/ondemand.sh`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use pressrun_engine::example_data::{self, Example};
use pressrun_proto::v1::dispatcher_client::DispatcherClient;
use pressrun_proto::v1::{OutputParams, RenderNowRequest, render_document_response};

#[derive(Parser)]
#[command(about = "On-demand latency through the dispatcher's RenderNow (p50, p99)")]
struct Args {
    /// Dispatcher server address.
    #[arg(long, default_value = "127.0.0.1:50050")]
    server: String,
    /// Requests to time.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Pages of the statement to render.
    #[arg(long, default_value_t = 3)]
    pages: u32,
    /// Concurrent clients, each on its own connection, sharing the requests.
    #[arg(long, default_value_t = 1)]
    clients: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let template_dir = pressrun_benches::root()
        .join("examples/statement")
        .display()
        .to_string();
    let mut client = DispatcherClient::connect(format!("http://{}", args.server))
        .await
        .context("cannot reach the dispatcher")?;
    let params = OutputParams {
        run_date: "2026-11-23".into(),
        compression: 1,
        ..Default::default()
    };
    let call = |record: String| RenderNowRequest {
        template: String::new(),
        template_dir: template_dir.clone(),
        params: Some(params.clone()),
        record_json: record,
    };
    // Pick a record that makes a statement of the wanted length.
    let mut record = None;
    for i in 0..500 {
        let r = example_data::record(Example::Statement, 1, i).to_string();
        let answer = client.render_now(call(r.clone())).await?.into_inner();
        if let Some(render_document_response::Result::Document(d)) = answer.result
            && d.entry.is_some_and(|e| e.pages == args.pages)
        {
            record = Some(r);
            break;
        }
    }
    let Some(record) = record else {
        bail!("no example statement has {} pages", args.pages)
    };
    // Warm up, then time: every client on its own connection.
    for _ in 0..200 {
        client.render_now(call(record.clone())).await?;
    }
    let clients = args.clients.max(1);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = DispatcherClient::connect(format!("http://{}", args.server)).await?;
        let n = args.requests / clients + usize::from(c < args.requests % clients);
        let req = call(record.clone());
        tasks.push(tokio::spawn(async move {
            let mut times: Vec<Duration> = Vec::with_capacity(n);
            for _ in 0..n {
                let started = Instant::now();
                let answer = client.render_now(req.clone()).await?.into_inner();
                times.push(started.elapsed());
                if !matches!(
                    answer.result,
                    Some(render_document_response::Result::Document(_))
                ) {
                    bail!("the record was rejected: {answer:?}");
                }
            }
            anyhow::Ok(times)
        }));
    }
    let mut times: Vec<Duration> = Vec::with_capacity(args.requests);
    for t in tasks {
        times.extend(t.await??);
    }
    times.sort();
    let q = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "{{\"requests\":{},\"clients\":{},\"pages\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        times.len(),
        clients,
        args.pages,
        q(0.50).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3
    );
    Ok(())
}
