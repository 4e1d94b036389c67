//! End-to-end load benchmark: drives the real `orchestrator-server` binary over HTTP/1.1
//! keep-alive with signed corpus deliveries and reports what a GitHub-facing deployment sees.
//!
//! ```sh
//! cargo build --release -p orchestrator-server
//! cargo bench -p orchestrator-benches --bench load                       # SQLite (temp file)
//! LOAD_DATABASE_URL=postgres://postgres@127.0.0.1:5432/load \
//!     cargo bench -p orchestrator-benches --bench load                   # PostgreSQL
//! LOAD_TARGET_URL=http://127.0.0.1:9000/ cargo bench -p orchestrator-benches --bench load  # any receiver
//! ```
//!
//! Each of `LOAD_CONNECTIONS` (32) connections sends one request at a time on its own
//! keep-alive connection for `LOAD_SECONDS` (10, after 1 s of warm-up): the 28 KiB
//! `pull_request/opened` corpus body, signed once (the signature covers the body only), with a
//! fresh `X-GitHub-Delivery` per request. It reports throughput, p50/p99/max latency, the
//! non-2xx count and the server's peak RSS (`VmHWM`), then lists the stored events through the
//! public API and checks that every delivery answered 2xx is in the database.
//!
//! Variables named `SERVER_<NAME>` are passed to the server as `<NAME>` (e.g.
//! `SERVER_SQLITE_SYNCHRONOUS=normal`, `SERVER_LOG_LEVEL=info`).
//!
//! The HTTP client is a few lines over a `TcpStream` (request bytes out, status line and
//! `Content-Length` body in), so the generator costs as little CPU as possible on the cores it
//! shares with the server.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use orchestrator_benches::driver::{
    BoxError, LoadSummary, Plan, cpu_seconds, env_or, exchange, get_request, peak_rss_kib,
    spawn_connections, start_server,
};
use tokio::net::TcpStream;

/// Lists every stored event's delivery id through the public API.
async fn stored_delivery_ids(addr: SocketAddr) -> Result<HashSet<String>, BoxError> {
    let mut ids = HashSet::new();
    let mut stream = TcpStream::connect(addr).await?;
    let host = addr.to_string();
    let mut buf = Vec::new();
    let mut offset = 0usize;
    loop {
        let req = get_request(
            &host,
            &format!("/api/v1/webhooks/events?limit=1000&offset={offset}"),
        );
        let (status, body) = exchange(&mut stream, &req, &mut buf).await?;
        if status != 200 {
            return Err(format!(
                "listing events: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        let page: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
        for event in &page {
            if let Some(id) = event.get("delivery_id").and_then(|v| v.as_str()) {
                ids.insert(id.to_owned());
            }
        }
        if page.len() < 1000 {
            return Ok(ids);
        }
        offset += page.len();
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; nothing to parse.
    let connections: usize = env_or("LOAD_CONNECTIONS", 32);
    let seconds: u64 = env_or("LOAD_SECONDS", 10);
    let body = orchestrator_benches::payload("pull_request/opened.payload.json")?;
    let body_len = body.len();

    let external = std::env::var("LOAD_TARGET_URL").ok();
    let (server, addr, path) = match &external {
        Some(url) => {
            let rest = url
                .strip_prefix("http://")
                .ok_or("LOAD_TARGET_URL must be http://host:port/path")?;
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            (None, host.parse::<SocketAddr>()?, format!("/{path}"))
        }
        None => {
            let role = std::env::var("LOAD_ROLE").unwrap_or_else(|_| "api".into());
            let server = start_server(&role, std::env::var("LOAD_DATABASE_URL").ok(), &[]).await?;
            let addr = server.addr;
            (Some(server), addr, "/api/v1/webhooks/github".to_owned())
        }
    };

    let plan = Arc::new(Plan::new(addr, path, body)?);
    let tasks = spawn_connections(&plan, connections);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.as_ref().map(|s| s.child.id());
    let cpu_before = pid.and_then(cpu_seconds);
    plan.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    plan.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu_used = pid
        .and_then(cpu_seconds)
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    plan.stop.store(true, Ordering::Relaxed);

    let summary = LoadSummary::collect(tasks).await?;
    let latencies = &summary.latencies_us;
    let measured = latencies.len() as f64;
    let rss = server.as_ref().and_then(|s| peak_rss_kib(s.child.id()));
    println!(
        "load: target={} connections={connections} body={}B duration={:.1}s",
        external.as_deref().unwrap_or("orchestrator-server"),
        body_len,
        elapsed.as_secs_f64()
    );
    println!(
        "load: throughput={:.0}/s requests={} p50={:.2}ms p99={:.2}ms max={:.2}ms non_2xx={} errors={} peak_rss={}",
        measured / elapsed.as_secs_f64(),
        latencies.len(),
        summary.percentile_ms(50.0),
        summary.percentile_ms(99.0),
        summary.percentile_ms(100.0),
        summary.non_2xx,
        summary.errors,
        rss.map(|k| format!("{:.1}MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into()),
    );
    if let Some(cpu) = cpu_used {
        println!(
            "load: server cpu={:.0}% of one core",
            100.0 * cpu / elapsed.as_secs_f64()
        );
    }
    if server.is_some() {
        let stored = stored_delivery_ids(addr).await?;
        let missing = summary
            .accepted
            .iter()
            .filter(|id| !stored.contains(*id))
            .count();
        println!(
            "load: durability: {} deliveries answered 2xx, {} stored, {missing} missing",
            summary.accepted.len(),
            stored.len()
        );
        if missing > 0 {
            return Err(
                format!("{missing} acknowledged deliveries are not in the database").into(),
            );
        }
    }
    drop(server);
    Ok(())
}
