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
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SECRET: &str = "load-benchmark-secret";
const ADMIN_TOKEN: &str = "load-benchmark-admin-token";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn corpus_dir() -> PathBuf {
    std::env::var_os("WEBHOOK_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// The server binary: `ORCHESTRATOR_SERVER_BIN`, else beside this benchmark's target directory.
fn server_binary() -> Result<PathBuf, BoxError> {
    if let Some(path) = std::env::var_os("ORCHESTRATOR_SERVER_BIN") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("no target directory")?;
    let bin = dir.join("orchestrator-server");
    if !bin.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release -p orchestrator-server` first",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

/// One response: status and body.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(u16, Vec<u8>), BoxError> {
    stream.write_all(request).await?;
    buf.clear();
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..header_end])?;
    let status: u16 = head.get(9..12).ok_or("bad status line")?.parse()?;
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .ok_or("response without content-length")?;
    while buf.len() < header_end + length {
        let mut chunk = vec![0u8; header_end + length - buf.len()];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed in body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, buf[header_end..header_end + length].to_vec()))
}

fn delivery_request(
    host: &str,
    path: &str,
    body: &[u8],
    signature: &str,
    delivery: &str,
) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: GitHub-Hookshot/load\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: pull_request\r\nX-GitHub-Delivery: {delivery}\r\nX-GitHub-Hook-ID: 1\r\n\
         X-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn get_request(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n")
        .into_bytes()
}

/// What one connection measured.
#[derive(Default)]
struct ConnResult {
    latencies_us: Vec<u32>,
    non_2xx: u64,
    errors: u64,
    accepted: Vec<String>,
}

/// What every connection shares.
struct Plan {
    addr: SocketAddr,
    path: String,
    run: u32,
    body: Vec<u8>,
    signature: String,
    measuring: AtomicBool,
    stop: AtomicBool,
}

async fn drive(plan: Arc<Plan>, conn: usize) -> ConnResult {
    let Plan {
        addr,
        path,
        run,
        body,
        signature,
        measuring,
        stop,
    } = &*plan;
    let (addr, run) = (*addr, *run);
    let mut out = ConnResult::default();
    let host = addr.to_string();
    let mut buf = Vec::with_capacity(8192);
    let mut stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(_) => {
            out.errors += 1;
            return out;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let delivery = format!("{run:08x}-{conn:04x}-4000-8000-{seq:012x}");
        let request = delivery_request(&host, path, body, signature, &delivery);
        let started = Instant::now();
        let result = exchange(&mut stream, &request, &mut buf).await;
        let elapsed = started.elapsed();
        let counted = measuring.load(Ordering::Relaxed);
        match result {
            Ok((status, _)) => {
                if counted {
                    out.latencies_us
                        .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                    if (200..300).contains(&status) {
                        out.accepted.push(delivery);
                    } else {
                        out.non_2xx += 1;
                    }
                } else if (200..300).contains(&status) {
                    out.accepted.push(delivery);
                }
            }
            Err(_) => {
                out.errors += 1;
                match TcpStream::connect(addr).await {
                    Ok(s) => stream = s,
                    Err(_) => return out,
                }
            }
        }
    }
    out
}

/// `VmHWM` (peak resident set) of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) `pid` has used, in seconds (Linux clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_server(database_url: Option<String>) -> Result<Server, BoxError> {
    let dir = std::env::temp_dir().join(format!("orchestrator-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let database_url =
        database_url.unwrap_or_else(|| format!("sqlite://{}/load.db?mode=rwc", dir.display()));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let role = std::env::var("LOAD_ROLE").unwrap_or_else(|_| "api".into());
    let child = Command::new(server_binary()?)
        .args(["serve", "--role", &role])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GITHUB_WEBHOOK_SECRET", SECRET)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("DATABASE_URL", &database_url)
        .env("BIND_ADDR", addr.to_string())
        .env("RATE_LIMIT_WEBHOOK_PER_SECOND", "0")
        .env("RATE_LIMIT_API_PER_MINUTE", "0")
        .env("GITHUB_API_URL", "http://127.0.0.1:9/")
        .env("CODEGEN_API_URL", "http://127.0.0.1:9/")
        .env("LOG_LEVEL", "warn")
        .env("LOG_FORMAT", "json")
        .env("ENABLE_TRACING", "false")
        .envs(
            std::env::vars()
                .filter(|(k, _)| k.starts_with("SERVER_"))
                .map(|(k, v)| (k["SERVER_".len()..].to_owned(), v)),
        )
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let server = Server {
        child,
        addr,
        _dir: dir,
    };
    let host = addr.to_string();
    for _ in 0..300 {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let mut buf = Vec::new();
            let req = format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
            if let Ok((200, _)) = exchange(&mut s, &req, &mut buf).await {
                return Ok(server);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the server did not become healthy within 30 s".into())
}

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
    let body =
        std::fs::read(corpus_dir().join("github-payloads/pull_request/opened.payload.json"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes())?;
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
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
            let server = start_server(std::env::var("LOAD_DATABASE_URL").ok()).await?;
            let addr = server.addr;
            (Some(server), addr, "/api/v1/webhooks/github".to_owned())
        }
    };

    let run = std::process::id()
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as u32);
    let plan = Arc::new(Plan {
        addr,
        path,
        run,
        body,
        signature,
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let tasks: Vec<_> = (0..connections)
        .map(|conn| tokio::spawn(drive(plan.clone(), conn)))
        .collect();
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

    let mut latencies = Vec::new();
    let (mut non_2xx, mut errors) = (0u64, 0u64);
    let mut accepted = Vec::new();
    for t in tasks {
        let r = t.await?;
        latencies.extend(r.latencies_us);
        non_2xx += r.non_2xx;
        errors += r.errors;
        accepted.extend(r.accepted);
    }
    latencies.sort_unstable();
    let measured = latencies.len() as f64;
    let rss = server.as_ref().and_then(|s| peak_rss_kib(s.child.id()));
    println!(
        "load: target={} connections={connections} body={}B duration={:.1}s",
        external.as_deref().unwrap_or("orchestrator-server"),
        body_len,
        elapsed.as_secs_f64()
    );
    println!(
        "load: throughput={:.0}/s requests={} p50={:.2}ms p99={:.2}ms max={:.2}ms non_2xx={non_2xx} errors={errors} peak_rss={}",
        measured / elapsed.as_secs_f64(),
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
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
        let missing = accepted.iter().filter(|id| !stored.contains(*id)).count();
        println!(
            "load: durability: {} deliveries answered 2xx, {} stored, {missing} missing",
            accepted.len(),
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
