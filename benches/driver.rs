//! The load driver shared by the end-to-end benchmarks (`load/`, `bulk/`): starting the real
//! `orchestrator-server` binary, a minimal HTTP/1.1 client over a `TcpStream`, and keep-alive
//! connections that send signed deliveries while latencies are recorded.
//!
//! The client is a few lines (request bytes out, status line and `Content-Length` body in), so
//! the generator costs as little CPU as possible on the cores it shares with the server.

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

/// Any error of a benchmark run.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The webhook secret the started servers verify.
pub const SECRET: &str = "load-benchmark-secret";
/// The admin token of the started servers.
pub const ADMIN_TOKEN: &str = "load-benchmark-admin-token";

/// `name` parsed, or `default` when unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server binary: `ORCHESTRATOR_SERVER_BIN`, else beside this benchmark's target directory.
pub fn server_binary() -> Result<PathBuf, BoxError> {
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

/// `sha256=<hex>` of `body` under [`SECRET`].
pub fn sign(body: &[u8]) -> Result<String, BoxError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes())?;
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Sends `request` and reads one response: status and body.
pub async fn exchange(
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

/// A signed `pull_request` delivery.
pub fn delivery_request(
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

/// An authenticated `GET`.
pub fn get_request(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n")
        .into_bytes()
}

/// An authenticated `POST` of a JSON body.
pub fn post_json_request(host: &str, path: &str, json: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    )
    .into_bytes()
}

/// One request on a fresh connection, the body parsed as JSON; an error unless `expect`ed.
pub async fn call_json(
    addr: SocketAddr,
    request: &[u8],
    expect: u16,
) -> Result<serde_json::Value, BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut buf = Vec::new();
    let (status, body) = exchange(&mut stream, request, &mut buf).await?;
    if status != expect {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(serde_json::from_slice(&body)?)
}

/// What one connection measured.
#[derive(Debug, Default)]
pub struct ConnResult {
    /// Latency of each measured request, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Measured answers outside 2xx.
    pub non_2xx: u64,
    /// Connection errors (each followed by a reconnect).
    pub errors: u64,
    /// Delivery ids answered 2xx (warm-up included).
    pub accepted: Vec<String>,
}

/// What every connection of a load run shares.
#[derive(Debug)]
pub struct Plan {
    /// The receiver.
    pub addr: SocketAddr,
    /// Its path.
    pub path: String,
    /// Makes this run's delivery ids unique.
    pub run: u32,
    /// The delivery body.
    pub body: Vec<u8>,
    /// Its `X-Hub-Signature-256`.
    pub signature: String,
    /// Latencies are recorded while set.
    pub measuring: AtomicBool,
    /// The connections stop when set.
    pub stop: AtomicBool,
}

impl Plan {
    /// A plan for `body` signed with [`SECRET`], not yet measuring.
    pub fn new(addr: SocketAddr, path: String, body: Vec<u8>) -> Result<Self, BoxError> {
        let run = std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as u32);
        Ok(Self {
            addr,
            path,
            run,
            signature: sign(&body)?,
            body,
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        })
    }
}

/// One keep-alive connection sending one delivery at a time until `plan.stop`.
pub async fn drive(plan: Arc<Plan>, conn: usize) -> ConnResult {
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
                }
                if (200..300).contains(&status) {
                    out.accepted.push(delivery);
                } else if counted {
                    out.non_2xx += 1;
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

/// The connections' results together.
#[derive(Debug, Default)]
pub struct LoadSummary {
    /// Every measured latency, sorted, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Measured answers outside 2xx.
    pub non_2xx: u64,
    /// Connection errors.
    pub errors: u64,
    /// Delivery ids answered 2xx.
    pub accepted: Vec<String>,
}

impl LoadSummary {
    /// Waits for the connections and merges what they measured.
    pub async fn collect(
        tasks: Vec<tokio::task::JoinHandle<ConnResult>>,
    ) -> Result<Self, BoxError> {
        let mut out = Self::default();
        for t in tasks {
            let r = t.await?;
            out.latencies_us.extend(r.latencies_us);
            out.non_2xx += r.non_2xx;
            out.errors += r.errors;
            out.accepted.extend(r.accepted);
        }
        out.latencies_us.sort_unstable();
        Ok(out)
    }

    /// The `p`th percentile latency in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p)
    }
}

/// Starts `connections` connections driving `plan`.
pub fn spawn_connections(
    plan: &Arc<Plan>,
    connections: usize,
) -> Vec<tokio::task::JoinHandle<ConnResult>> {
    (0..connections)
        .map(|conn| tokio::spawn(drive(plan.clone(), conn)))
        .collect()
}

/// `VmHWM` (peak resident set) of `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) `pid` has used, in seconds (Linux clock ticks of 1/100 s).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The `p`th percentile of `sorted` microseconds, in milliseconds.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// A started server process, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `serve --role <role>` on `database_url` (a SQLite file in a temporary directory when
/// `None`) with `env` added, and waits until `/health` answers 200. Variables named
/// `SERVER_<NAME>` of this process are passed as `<NAME>`.
pub async fn start_server(
    role: &str,
    database_url: Option<String>,
    env: &[(&str, &str)],
) -> Result<Server, BoxError> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("orchestrator-load-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let database_url =
        database_url.unwrap_or_else(|| format!("sqlite://{}/load.db?mode=rwc", dir.display()));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let child = Command::new(server_binary()?)
        .args(["serve", "--role", role])
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
        .envs(env.iter().copied())
        .envs(
            std::env::vars()
                .filter(|(k, _)| k.starts_with("SERVER_"))
                .map(|(k, v)| (k["SERVER_".len()..].to_owned(), v)),
        )
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let server = Server { child, addr, dir };
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
