//! Starting the binary, a database per test, the GitHub and Codegen stand-ins, signed deliveries.
//! The fault tests add a cuttable TCP proxy ([`proxy`]), steady traffic ([`traffic`]), stand-ins
//! that misbehave on demand ([`standin`]) and the checks of what was stored and run ([`ledger`]).

pub mod ledger;
pub mod proxy;
pub mod small_fs;
pub mod standin;
pub mod traffic;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const SECRET: &str = "e2e-webhook-secret-value";
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";
pub const CODEGEN_TOKEN: &str = "e2e-codegen-token-value";
pub const GITHUB_TOKEN: &str = "ghp_e2e_github_token_value";
pub const ORG_ID: u64 = 77;
pub const RUN_URL: &str = "https://codegen.com/agent/trace/4242";

/// A database for one test: a SQLite file in a temporary directory, or a PostgreSQL database
/// created for the test and dropped afterwards.
pub struct TestDb {
    pub url: String,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> Self {
        Self::sqlite_with(tempfile::tempdir().unwrap())
    }

    /// A SQLite file in a new directory under `parent` (e.g. a small filesystem).
    pub fn sqlite_in(parent: &Path) -> Self {
        Self::sqlite_with(tempfile::tempdir_in(parent).unwrap())
    }

    fn sqlite_with(dir: tempfile::TempDir) -> Self {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("e2e.db").display());
        Self { url, dir, pg: None }
    }

    pub async fn postgres() -> Self {
        let admin = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => panic!("PostgreSQL at {admin} is unreachable (set TEST_DATABASE_URL): {e}"),
        };
        // A UUID in hex: safe to splice into the statement (identifiers cannot be bound).
        let name = format!("e2e_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        let url = format!("{base}/{name}");
        Self {
            url,
            dir: tempfile::tempdir().unwrap(),
            pg: Some((admin, name)),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Drops the PostgreSQL database now (also done on drop, so a failed test cleans up too).
    pub async fn drop_db(mut self) {
        if let Some((admin, name)) = self.pg.take() {
            drop_pg(admin, name).await;
        }
    }
}

async fn drop_pg(admin: String, name: String) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Dropped outside an async context (e.g. while a failed test unwinds): a runtime of its own.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_pg(admin, name));
                }
            })
            .join();
        }
    }
}

/// One running server process.
pub struct Server {
    child: Child,
    pub base: String,
    log: PathBuf,
    /// Holds the log file; not beside the database, whose filesystem a test may fill.
    _log_dir: tempfile::TempDir,
    client: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `serve --role <role>` and waits until `/health` answers.
    pub async fn start(
        db: &TestDb,
        github: &MockServer,
        codegen: &MockServer,
        role: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join(format!("server-{port}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orchestrator-server"));
        cmd.args(["serve", "--role", role])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GITHUB_WEBHOOK_SECRET", SECRET)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("DATABASE_URL", &db.url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("GITHUB_API_URL", github.uri())
            .env("GITHUB_TOKEN", GITHUB_TOKEN)
            .env("CODEGEN_API_URL", codegen.uri())
            .env("CODEGEN_TOKEN", CODEGEN_TOKEN)
            .env("CODEGEN_ORG_ID", ORG_ID.to_string())
            .env("CODEGEN_POLL_SECONDS", "1")
            .env("RETRY_BASE_DELAY_SECONDS", "1")
            .env("RATE_LIMIT_WEBHOOK_PER_SECOND", "0")
            .env("RATE_LIMIT_API_PER_MINUTE", "0")
            // Codegen's limit of 10 run creations per minute would make the tests that create
            // many runs wait; the agent budget's own tests (tests/it/agent_budget.rs) set it.
            .env("AGENT_BUDGET_PER_MINUTE", "0")
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "debug")
            // Reporting back on the PR is opted into by the tests of it (tests/it/report.rs),
            // so the other tests' GitHub mocks see only the calls they are about.
            .env("REPORT_TO_GITHUB", "off")
            .current_dir(db.dir())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _log_dir: log_dir,
            client: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            if let Ok(r) = server
                .client
                .get(format!("{}/health", server.base))
                .send()
                .await
                && r.status().as_u16() == 200
            {
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server did not start:\n{}",
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id (for `/proc/<pid>/...`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: a crash, nothing is cleaned up.
    pub fn crash(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the process to exit; its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }

    /// SIGTERM, then waits up to `limit` for the process to exit; its exit status, or `None`
    /// when it is still running then.
    pub fn terminate_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits up to `limit` for the process to exit on its own; its exit status, or `None`.
    pub fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Posts `body` as GitHub would, signed with [`SECRET`], under a fresh delivery id.
    pub async fn deliver(&self, event: &str, body: &[u8]) -> (u16, Value) {
        let signature = orchestrator_server::send::sign(SECRET.as_bytes(), body);
        let r = self
            .client
            .post(format!("{}/api/v1/webhooks/github", self.base))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
            .header("x-hub-signature-256", signature)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Posts `body` signed under `delivery_id` (a redelivery reuses the id), optionally as
    /// coming from `client` (`X-Forwarded-For`, for a server that trusts it); the status, or
    /// `None` when no answer came.
    pub async fn post_delivery(
        &self,
        event: &str,
        delivery_id: &str,
        body: &[u8],
        client: Option<&str>,
    ) -> Option<u16> {
        let signature = orchestrator_server::send::sign(SECRET.as_bytes(), body);
        let mut request = self
            .client
            .post(format!("{}/api/v1/webhooks/github", self.base))
            .timeout(Duration::from_secs(10))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery_id)
            .header("x-hub-signature-256", signature)
            .body(body.to_vec());
        if let Some(client) = client {
            request = request.header("x-forwarded-for", client);
        }
        request.send().await.ok().map(|r| r.status().as_u16())
    }

    /// `/health`: status and body.
    pub async fn health(&self) -> (u16, Value) {
        let (status, body) = self.get_public("/health").await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// The value of one series of `/metrics` (its name with labels, as printed), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get_public("/metrics").await;
        text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    /// GET with the admin token; the JSON body.
    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// POST `body` with the admin token; the status and the JSON body.
    pub async fn post_admin(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GET without a token; status and text.
    pub async fn get_public(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Polls the task list until `pick` finds something, or fails after `timeout`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        let started = Instant::now();
        loop {
            let tasks = self.get("/api/v1/tasks?limit=1000").await;
            if let Some(found) = pick(&tasks) {
                return found;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out waiting for {what}; tasks: {tasks:#}\nlogs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The task of `task_type` in a task list, if any.
pub fn task_of<'a>(tasks: &'a Value, task_type: &str) -> Option<&'a Value> {
    tasks
        .as_array()?
        .iter()
        .find(|t| t["task_type"] == task_type)
}

/// A `pull_request.opened` payload for pull request `number` at its own head SHA.
pub fn pull_request(number: u64) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&corpus("pull_request/opened.payload.json")).unwrap();
    body["number"] = number.into();
    body["pull_request"]["number"] = number.into();
    body["pull_request"]["head"]["sha"] = format!("{number:040x}").into();
    serde_json::to_vec(&body).unwrap()
}

pub fn corpus(rel: &str) -> Vec<u8> {
    std::fs::read(
        orchestrator_server::corpus_dir()
            .join("github-payloads")
            .join(rel),
    )
    .unwrap()
}

/// GitHub: the pull request's changed files (code, so a Codegen run is asked for), answered
/// after `delay`.
pub async fn github_mock(delay: Duration) -> MockServer {
    let github = MockServer::start().await;
    mount_files(&github, delay).await;
    github
}

pub async fn mount_files(github: &MockServer, delay: Duration) {
    let files = json!([
        {"filename": "src/lib.rs", "status": "modified", "additions": 40, "deletions": 3, "changes": 43},
        {"filename": "tests/lib_test.rs", "status": "added", "additions": 20, "deletions": 0, "changes": 20}
    ]);
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/[^/]+/[^/]+/pulls/\d+/files$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(files)
                .set_delay(delay),
        )
        .mount(github)
        .await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(github)
        .await;
}

/// Codegen: a run is created (ACTIVE) and reads back COMPLETE.
pub async fn codegen_mock() -> MockServer {
    let codegen = MockServer::start().await;
    let run = |status: &str| {
        json!({"id": 4242, "organization_id": ORG_ID, "status": status, "web_url": RUN_URL,
               "created_at": "2026-11-28T10:00:00Z", "result": null, "summary": null})
    };
    Mock::given(method("POST"))
        .and(path(format!("/v1/organizations/{ORG_ID}/agent/run")))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Bearer {CODEGEN_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(run("ACTIVE")))
        .mount(&codegen)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/organizations/{ORG_ID}/agent/run/4242")))
        .respond_with(ResponseTemplate::new(200).set_body_json(run("COMPLETE")))
        .mount(&codegen)
        .await;
    codegen
}

/// A Redis key prefix for one test; its keys are deleted on drop.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub fn new() -> Self {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let pong = Command::new("redis-cli")
            .args(["-u", &url, "ping"])
            .output();
        match pong {
            Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "PONG" => {}
            other => panic!("Redis at {url} is unreachable (set TEST_REDIS_URL): {other:?}"),
        }
        Self {
            url,
            prefix: format!("e2e-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn keys(&self) -> Vec<String> {
        let out = Command::new("redis-cli")
            .args([
                "-u",
                &self.url,
                "--scan",
                "--pattern",
                &format!("{}*", self.prefix),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn key_count(&self) -> usize {
        self.keys().len()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let _ = Command::new("redis-cli")
                .args(["-u", &self.url, "del"])
                .args(&keys)
                .output();
        }
    }
}

/// A `redis-server` of the test's own (free port, no persistence), killed on drop: for tests
/// that flush Redis, which must never touch the shared one. Without the binary the test is
/// skipped with a message, unless `CI` is set: then it fails.
pub struct PrivateRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub fn start() -> Option<Self> {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let binary = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let spawned = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("cannot start {binary} (CI is set): {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot start {binary}: {e}");
                return None;
            }
        };
        let redis = Self {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while redis.cli(&["ping"]) != "PONG" {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against it; its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
