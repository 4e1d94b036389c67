//! Test helpers: a real Redis with a unique key prefix per test (keys deleted on drop), a
//! private `redis-server` for tests that flush it, a store and a manual clock, and a TCP proxy
//! that can cut the line to Redis.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::event::NewEvent;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::TaskRef;
use orchestrator_core::store::{EventStore, IngestOutcome};
use orchestrator_core::task::{NewTask, TaskSpec, TaskType};
use orchestrator_redis::{QueueConfig, RedisConfig, RedisConnection, RedisQueue};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The Redis the tests use.
pub(crate) fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// One test's slice of Redis: every key it writes starts with `prefix`; dropped -> deleted.
pub(crate) struct TestRedis {
    pub(crate) url: String,
    pub(crate) prefix: String,
}

impl TestRedis {
    /// Checks Redis is reachable (fails the test loudly when it is not) and picks a prefix.
    pub(crate) fn new() -> Self {
        let url = redis_url();
        let reachable = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if let Err(err) = reachable {
            let ci = if std::env::var_os("CI").is_some() {
                " (CI is set)"
            } else {
                ""
            };
            panic!("Redis at {url} is unreachable{ci}: {err}. Start Redis or set TEST_REDIS_URL.");
        }
        Self::on(url)
    }

    /// A fresh prefix on the Redis at `url` (a [`PrivateRedis`] the test started).
    pub(crate) fn on(url: String) -> Self {
        let prefix = format!("test-{}", Uuid::new_v4().simple());
        Self { url, prefix }
    }

    /// Connection settings for this test (named after the prefix, fast backoff).
    pub(crate) fn config(&self) -> RedisConfig {
        RedisConfig {
            url: self.url.clone(),
            prefix: self.prefix.clone(),
            client_name: Some(self.prefix.clone()),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..RedisConfig::default()
        }
    }

    /// A connection for this test.
    pub(crate) fn connection(&self) -> RedisConnection {
        RedisConnection::new(self.config()).unwrap()
    }

    /// A plain synchronous connection for checks from the test itself.
    pub(crate) fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Kills every connection named after this test's prefix; how many.
    pub(crate) fn kill_own_clients(&self) -> usize {
        let mut raw = self.raw();
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut raw).unwrap();
        let ids: Vec<String> = list
            .lines()
            .filter(|line| {
                line.split(' ')
                    .any(|f| f == format!("name={}", self.prefix))
            })
            .filter_map(|line| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix("id="))
                    .map(str::to_owned)
            })
            .collect();
        for id in &ids {
            let _: redis::RedisResult<()> = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query(&mut raw);
        }
        ids.len()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let pattern = format!("{}:*", self.prefix);
        let mut cursor: u64 = 0;
        loop {
            let reply: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn);
            let Ok((next, keys)) = reply else { return };
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// A queue, its store and clock, for one test.
pub(crate) struct Harness {
    pub(crate) redis: TestRedis,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) queue: Arc<RedisQueue>,
}

/// Queue settings for tests: short visibility timeout, takeover scans at every claim, short block.
pub(crate) fn fast_config() -> QueueConfig {
    QueueConfig {
        visibility_timeout: Duration::from_millis(100),
        reclaim_interval: Duration::ZERO,
        block: Duration::from_millis(20),
        ..QueueConfig::default()
    }
}

impl Harness {
    /// A harness with `config` over a fresh prefix.
    pub(crate) fn new(config: QueueConfig) -> Self {
        Self::on(TestRedis::new(), config)
    }

    /// A harness with `config` over `redis`.
    pub(crate) fn on(redis: TestRedis, config: QueueConfig) -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::default());
        let queue = Arc::new(
            RedisQueue::new(
                redis.connection(),
                config,
                store.clone(),
                store.clone(),
                clock.clone() as Arc<dyn Clock>,
            )
            .unwrap(),
        );
        Self {
            redis,
            store,
            clock,
            queue,
        }
    }

    /// Another queue instance (another process) over the same keys and store.
    pub(crate) fn another_instance(&self, config: QueueConfig) -> Arc<RedisQueue> {
        Arc::new(
            RedisQueue::new(
                self.redis.connection(),
                config,
                self.store.clone(),
                self.store.clone(),
                self.clock.clone() as Arc<dyn Clock>,
            )
            .unwrap(),
        )
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Commits `n` tasks due now in one delivery (without publishing them); their refs.
    pub(crate) async fn commit(&self, n: usize) -> Vec<TaskRef> {
        commit_tasks(self.store.as_ref(), n, self.now()).await
    }

    /// Length of a key's stream.
    pub(crate) fn xlen(&self, key: &str) -> u64 {
        redis::cmd("XLEN")
            .arg(key)
            .query(&mut self.redis.raw())
            .unwrap()
    }
}

/// Commits `n` tasks due at `now` in one delivery to `store`; their refs.
pub(crate) async fn commit_tasks(
    store: &dyn EventStore,
    n: usize,
    now: DateTime<Utc>,
) -> Vec<TaskRef> {
    let tasks: Vec<NewTask> = (0..n)
        .map(|_| NewTask::new(TaskSpec::new(TaskType::PUSH_ANALYSIS), 3, now))
        .collect();
    let event = NewEvent {
        delivery_id: Uuid::new_v4().to_string(),
        event_type: "push".into(),
        action: None,
        source: "github".into(),
        repository: Some("octo/repo".into()),
        installation_id: None,
        payload: Bytes::from_static(b"{}"),
        headers: Vec::new(),
        received_at: now,
        parse_error: None,
        prepared: Default::default(),
    };
    match store.ingest(event, tasks).await.unwrap() {
        IngestOutcome::Accepted { task_ids, .. } => task_ids
            .into_iter()
            .map(|task_id| TaskRef {
                task_id,
                run_at: now,
            })
            .collect(),
        IngestOutcome::Duplicate { .. } => panic!("fresh delivery id reported duplicate"),
    }
}

/// A TCP proxy in front of Redis that can be taken down (connections cut, port closed) and
/// brought back on the same port: a Redis restart as the clients see it.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    target: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A running proxy to the test Redis.
    pub(crate) async fn start() -> Self {
        let url = url::Url::parse(&redis_url()).unwrap();
        let target = format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(6379)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut proxy = Self {
            addr,
            target,
            tasks: Arc::default(),
            acceptor: None,
        };
        proxy.accept_on(listener);
        proxy
    }

    /// `redis://` URL of the proxy.
    pub(crate) fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn accept_on(&mut self, listener: TcpListener) {
        let (target, tasks) = (self.target.clone(), self.tasks.clone());
        self.acceptor = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(handle);
            }
        }));
    }

    /// Cuts every connection and closes the port.
    pub(crate) fn down(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.abort();
        }
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Opens the port again.
    pub(crate) async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.accept_on(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// A `redis-server` of the test's own on a free port, without persistence, killed on drop. Tests
/// that flush or restart Redis use it: the shared Redis serves other tests at the same time.
pub(crate) struct PrivateRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The server binary (`REDIS_SERVER_BIN`, default `redis-server` on the `PATH`).
fn redis_server_bin() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

/// Starts `redis-server` on `port`, keeping its (unused) files in `dir`.
fn spawn_redis_server(port: u16, dir: &std::path::Path) -> std::io::Result<Child> {
    Command::new(redis_server_bin())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

impl PrivateRedis {
    /// Starts one and waits until it answers. Without a `redis-server` binary it returns `None`
    /// after saying so, unless `CI` is set: then the test fails loudly.
    pub(crate) fn start() -> Option<Self> {
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            let child = match spawn_redis_server(port, dir.path()) {
                Ok(child) => child,
                Err(err) if std::env::var_os("CI").is_some() => {
                    panic!("cannot start {} (CI is set): {err}", redis_server_bin())
                }
                Err(err) => {
                    eprintln!(
                        "SKIPPED: cannot start {}: {err}; install redis-server or set REDIS_SERVER_BIN",
                        redis_server_bin()
                    );
                    return None;
                }
            };
            let mut redis = Self { child, port, dir };
            if redis.wait_ready() {
                return Some(redis);
            }
            // Probably lost the port to another process between picking and binding: again.
        }
        panic!(
            "{} did not start on a free port in 3 tries",
            redis_server_bin()
        );
    }

    /// Kills the server and starts a new one on the same port: a restart without persistence.
    pub(crate) fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_redis_server(self.port, self.dir.path()).unwrap();
        assert!(
            self.wait_ready(),
            "redis-server did not come back on {}",
            self.port
        );
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            let ping = redis::Client::open(self.url().as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ping.is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
    /// Its `redis://` URL.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain synchronous connection to it.
    pub(crate) fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url().as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// `FLUSHDB`: what a restart without persistence leaves.
    pub(crate) fn flush(&self) {
        let _: () = redis::cmd("FLUSHDB").query(&mut self.raw()).unwrap();
    }

    /// Waits until a client is blocked in `XREADGROUP`.
    pub(crate) fn wait_for_blocked_read(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query(&mut self.raw())
                .unwrap();
            if list
                .lines()
                .any(|l| l.contains("cmd=xreadgroup") && l.contains("flags=b"))
            {
                return;
            }
            assert!(Instant::now() < deadline, "no read blocked: {list}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
