//! Recovery from GitHub's delivery log, end to end: the server binary, GitHub's API mocked with
//! wiremock (three pages chained by `Link` cursors, a secondary limit on the third), on SQLite
//! and on PostgreSQL + Redis, in both modes:
//! - a GUID whose failed attempt was followed by an OK redelivery (stored here): nothing to do;
//!   failed-only, and OK at GitHub but absent here: recovered; one stored here: nothing to do;
//! - the 403 secondary limit interrupts the run, which a later tick resumes from its cursor
//!   (page 3), never from page 1;
//! - `fetch`: recovered events are stored as `recovered` and their tasks run like any other; a
//!   live delivery racing its own recovery is stored once; `redeliver`: one POST per missing
//!   GUID, nothing stored by the run itself, GitHub's redeliveries verified as usual;
//! - with Redis, the runner holds `<prefix>:lock:recovery` while it runs;
//! - two server processes racing the scheduled run at start: their runs never overlap, and
//!   every missing delivery is fetched once.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

const LOG_PATH: &str = "/repos/octo/repo/hooks/42/deliveries";
const HOOK: &str = "repo:octo/repo:42";

/// One attempt in the mocked log.
struct Attempt {
    id: i64,
    guid: &'static str,
    minutes_ago: i64,
    code: u16,
}

const fn attempt(id: i64, guid: &'static str, minutes_ago: i64, code: u16) -> Attempt {
    Attempt {
        id,
        guid,
        minutes_ago,
        code,
    }
}

/// Page 1, page 2, page 3 (newest first).
const PAGES: [&[Attempt]; 3] = [
    &[
        attempt(107, "g-redelivered", 5, 200), // the OK redelivery of a failed attempt
        attempt(106, "g-failed", 10, 502),
    ],
    &[
        attempt(105, "g-lost", 20, 200), // OK at GitHub, absent here
        attempt(104, "g-racer", 25, 502),
        attempt(103, "g-redelivered", 30, 502),
        attempt(102, "g-live", 40, 200), // stored here
    ],
    &[attempt(101, "g-after-limit", 50, 502)],
];

/// The GUIDs the run must recover, and their attempt ids.
const MISSING: [(&str, i64); 4] = [
    ("g-failed", 106),
    ("g-lost", 105),
    ("g-racer", 104),
    ("g-after-limit", 101),
];

/// The corpus pull request, numbered after the GUID (so no two deliveries supersede each other).
fn payload(guid: &str) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&corpus("pull_request/opened.payload.json")).unwrap();
    let guids = [
        "g-redelivered",
        "g-failed",
        "g-lost",
        "g-racer",
        "g-live",
        "g-after-limit",
    ];
    let number = 100 + guids.iter().position(|g| *g == guid).unwrap() as u64;
    body["number"] = json!(number);
    body["pull_request"]["number"] = json!(number);
    body["pull_request"]["head"]["sha"] = json!(format!("{:040x}", number));
    serde_json::to_vec(&body).unwrap()
}

fn summary(a: &Attempt, now: DateTime<Utc>) -> Value {
    json!({
        "id": a.id, "guid": a.guid,
        "delivered_at": (now - chrono::Duration::minutes(a.minutes_ago)).to_rfc3339(),
        "redelivery": a.id == 107, "duration": 0.2,
        "status": if a.code == 200 { "OK" } else { "Invalid HTTP Response: 502" },
        "status_code": a.code, "event": "pull_request", "action": "opened",
        "installation_id": null, "repository_id": 1296269,
    })
}

fn link(github: &MockServer, cursor: &str) -> String {
    format!(
        "<{}{LOG_PATH}?per_page=100&cursor={cursor}>; rel=\"next\"",
        github.uri()
    )
}

/// The hook's log: three pages (the third answered with a secondary limit first, when
/// `limit`), each attempt's request, and redelivery. `g-racer`'s request is answered after
/// `racer_delay`.
async fn mount_log(github: &MockServer, now: DateTime<Utc>, limit: bool, racer_delay: Duration) {
    let page = |i: usize| Value::Array(PAGES[i].iter().map(|a| summary(a, now)).collect());
    Mock::given(method("GET"))
        .and(path(LOG_PATH))
        .and(query_param_is_missing("cursor"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(page(0))
                .insert_header("link", link(github, "p2")),
        )
        .mount(github)
        .await;
    Mock::given(method("GET"))
        .and(path(LOG_PATH))
        .and(query_param("cursor", "p2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(page(1))
                .insert_header("link", link(github, "p3")),
        )
        .mount(github)
        .await;
    if limit {
        Mock::given(method("GET"))
            .and(path(LOG_PATH))
            .and(query_param("cursor", "p3"))
            .respond_with(
                ResponseTemplate::new(403)
                    .insert_header("retry-after", "1")
                    .set_body_json(json!({"message": "You have exceeded a secondary rate limit"})),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(github)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(LOG_PATH))
        .and(query_param("cursor", "p3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(2)))
        .mount(github)
        .await;
    for a in PAGES.iter().flat_map(|p| p.iter()) {
        let headers = json!({
            "Accept": "*/*", "Content-Type": "application/json",
            "X-GitHub-Delivery": a.guid, "X-GitHub-Event": "pull_request",
            "X-GitHub-Hook-ID": "42", "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": "1296269",
        });
        let payload: Value = serde_json::from_slice(&payload(a.guid)).unwrap();
        let mut detail = summary(a, now);
        detail["request"] = json!({"headers": headers, "payload": payload});
        detail["response"] = json!({"headers": {}, "payload": ""});
        let delay = if a.guid == "g-racer" {
            racer_delay
        } else {
            Duration::ZERO
        };
        Mock::given(method("GET"))
            .and(path(format!("{LOG_PATH}/{}", a.id)))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(detail)
                    .set_delay(delay),
            )
            .mount(github)
            .await;
    }
    Mock::given(method("POST"))
        .and(path_regex(format!(r"^{LOG_PATH}/\d+/attempts$")))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({})))
        .mount(github)
        .await;
}

/// The log's requests so far: `list <cursor>`, `get <id>`, `post <id>`.
async fn log_requests(github: &MockServer) -> Vec<String> {
    let requests = github.received_requests().await.unwrap();
    requests
        .iter()
        .filter(|r| r.url.path().starts_with(LOG_PATH))
        .map(|r| {
            let tail = r.url.path()[LOG_PATH.len()..]
                .trim_start_matches('/')
                .to_owned();
            if r.method.as_str() == "POST" {
                format!("post {}", tail.trim_end_matches("/attempts"))
            } else if tail.is_empty() {
                let cursor = r.url.query_pairs().find(|(k, _)| k == "cursor");
                format!(
                    "list {}",
                    cursor.map(|(_, v)| v.into_owned()).unwrap_or("-".into())
                )
            } else {
                format!("get {tail}")
            }
        })
        .collect()
}

async fn start_run(server: &Server, mode: &str) -> String {
    let (status, body) = server
        .post_admin(
            "/api/v1/admin/recover",
            &json!({"hooks": [HOOK], "mode": mode}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "recovery_started");
    body["run_id"].as_str().unwrap().to_owned()
}

/// The run once it is no longer pending or running.
async fn ended(server: &Server, run_id: &str) -> Value {
    let started = Instant::now();
    loop {
        let run = server.get(&format!("/api/v1/admin/recover/{run_id}")).await;
        if !matches!(run["status"].as_str(), Some("pending" | "running")) {
            return run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "run {run_id} never ended: {run:#}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stored events: delivery id -> source, each id once.
async fn events(server: &Server) -> Vec<(String, String)> {
    let list = server.get("/api/v1/webhooks/events?limit=1000").await;
    let mut out = Vec::new();
    for e in list.as_array().unwrap() {
        let detail = server
            .get(&format!("/api/v1/webhooks/events/{}", e["id"]))
            .await;
        out.push((
            detail["delivery_id"].as_str().unwrap().to_owned(),
            detail["source"].as_str().unwrap().to_owned(),
        ));
    }
    out.sort();
    out
}

/// Waits until every task is completed and there are `want` of them.
async fn all_tasks_completed(server: &Server, want: usize) {
    server
        .wait_for("every task completed", Duration::from_secs(90), |tasks| {
            let tasks = tasks.as_array()?;
            (tasks.len() == want && tasks.iter().all(|t| t["status"] == "completed")).then_some(())
        })
        .await;
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn recover_end_to_end(db: &TestDb, mode: &str, redis: Option<&TestRedis>) {
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let now = Utc::now();
    mount_log(&github, now, true, Duration::from_secs(2)).await;
    let mut extra = vec![("GITHUB_RECOVERY_INTERVAL_SECONDS", "0")];
    if let Some(redis) = redis {
        extra.push(("REDIS_URL", redis.url.as_str()));
        extra.push(("REDIS_KEY_PREFIX", redis.prefix.as_str()));
    }
    let server = Server::start(db, &github, &codegen, "all", &extra).await;
    for guid in ["g-redelivered", "g-live"] {
        let status = server
            .post_delivery("pull_request", guid, &payload(guid), None)
            .await;
        assert_eq!(status, Some(200), "{}", server.logs());
    }

    let run_id = start_run(&server, mode).await;
    if mode == "fetch" {
        // While the recovery fetches g-racer's request, the live delivery of it arrives.
        let started = Instant::now();
        while !log_requests(&github).await.contains(&"get 104".to_owned()) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "g-racer never fetched"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = server
            .post_delivery("pull_request", "g-racer", &payload("g-racer"), None)
            .await;
        assert_eq!(status, Some(200));
        if let Some(redis) = redis {
            let key = format!("{}:lock:recovery", redis.prefix);
            let holder = redis_cli(&redis.url, &["get", &key]);
            assert!(
                !holder.is_empty(),
                "the runner holds the Redis lock while it runs"
            );
        }
    }
    let first = ended(&server, &run_id).await;
    assert_eq!(first["status"], "interrupted", "{first:#}");
    assert_eq!(first["cursor"], "p3", "{first:#}");
    assert!(
        first["last_error"]
            .as_str()
            .unwrap()
            .contains("secondary rate limit"),
        "{first:#}"
    );
    assert_eq!(first["recovered"], 3, "{first:#}");

    // After the limit's Retry-After, the next tick (here: another run asked for) resumes it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second_id = start_run(&server, mode).await;
    // One tick finishes the interrupted run, then the new one: wait for the new one's end.
    let second = ended(&server, &second_id).await;
    let first = ended(&server, &run_id).await;
    assert_eq!(first["status"], "succeeded", "{first:#}");
    assert_eq!(
        (first["listed"].clone(), first["recovered"].clone()),
        (json!(7), json!(4))
    );
    assert_eq!(second["status"], "succeeded", "{second:#}");

    let requests = log_requests(&github).await;
    let lists: Vec<&String> = requests.iter().filter(|r| r.starts_with("list")).collect();
    assert_eq!(
        lists,
        [
            "list -", "list p2", "list p3", "list p3", "list -", "list p2", "list p3"
        ],
        "the interrupted run resumed at page 3; the second run read everything"
    );
    let verb = if mode == "fetch" { "get" } else { "post" };
    for (guid, id) in MISSING {
        let asked = requests
            .iter()
            .filter(|r| **r == format!("{verb} {id}"))
            .count();
        assert_eq!(asked, 1, "{guid} ({verb} {id}) in {requests:?}");
    }
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("get ") || r.starts_with("post "))
            .count(),
        4,
        "nothing asked for what is stored here: {requests:?}"
    );

    if mode == "fetch" {
        assert_eq!(
            events(&server).await,
            owned(&[
                ("g-after-limit", "recovered"),
                ("g-failed", "recovered"),
                ("g-live", "github"),
                ("g-lost", "recovered"),
                ("g-racer", "github"),
                ("g-redelivered", "github"),
            ])
        );
        assert_eq!(
            server
                .metric(r#"webhook_deliveries_recovered_total{mode="fetch"}"#)
                .await,
            Some(4.0)
        );
    } else {
        // Nothing stored by the run; GitHub's redeliveries arrive signed as usual.
        assert_eq!(events(&server).await.len(), 2);
        for (guid, _) in MISSING {
            let status = server
                .post_delivery("pull_request", guid, &payload(guid), None)
                .await;
            assert_eq!(status, Some(200));
        }
        assert_eq!(events(&server).await.len(), 6);
    }
    // Every event's tasks ran like any other: a pull request's analysis and its Codegen run.
    all_tasks_completed(&server, 12).await;
    if let Some(redis) = redis {
        let key = format!("{}:lock:recovery", redis.prefix);
        assert_eq!(
            redis_cli(&redis.url, &["exists", &key]),
            "0",
            "released after the runs"
        );
    }
}

fn redis_cli(url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", url])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_fetch_on_sqlite() {
    recover_end_to_end(&TestDb::sqlite(), "fetch", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_redeliver_on_sqlite() {
    recover_end_to_end(&TestDb::sqlite(), "redeliver", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_fetch_on_postgres_with_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    recover_end_to_end(&db, "fetch", Some(&redis)).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_redeliver_on_postgres_with_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    recover_end_to_end(&db, "redeliver", Some(&redis)).await;
    db.drop_db().await;
}

/// Two processes start together and both run the schedule at start.
async fn two_servers_race(db: &TestDb, redis: Option<&TestRedis>) {
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let now = Utc::now();
    // g-racer's request takes 3 s: the first runner is still at it when the other process
    // starts its own first tick.
    mount_log(&github, now, false, Duration::from_secs(3)).await;
    let mut extra = vec![
        ("GITHUB_RECOVERY_HOOKS", HOOK),
        ("GITHUB_RECOVERY_INTERVAL_SECONDS", "3600"),
    ];
    if let Some(redis) = redis {
        extra.push(("REDIS_URL", redis.url.as_str()));
        extra.push(("REDIS_KEY_PREFIX", redis.prefix.as_str()));
    }
    // The database schema first, so the two processes do not both migrate a fresh one.
    let seed = Server::start(
        db,
        &github,
        &codegen,
        "api",
        &[("GITHUB_RECOVERY_INTERVAL_SECONDS", "0")],
    )
    .await;
    for guid in ["g-redelivered", "g-live"] {
        assert_eq!(
            seed.post_delivery("pull_request", guid, &payload(guid), None)
                .await,
            Some(200)
        );
    }
    drop(seed);
    let (one, two) = tokio::join!(
        Server::start(db, &github, &codegen, "all", &extra),
        Server::start(db, &github, &codegen, "all", &extra),
    );
    let started = Instant::now();
    let runs = loop {
        let runs = one.get("/api/v1/admin/recover").await;
        let list = runs.as_array().unwrap();
        let done = list.iter().all(|r| r["status"] == "succeeded");
        if !list.is_empty() && done && events(&one).await.len() == 6 {
            break runs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "runs: {runs:#}\n{}\n{}",
            one.logs(),
            two.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Never two at once: a second scheduled run (the later process's tick once the first one
    // finished) starts after the first ended and finds nothing missing.
    let time =
        |r: &Value, field: &str| -> DateTime<Utc> { r[field].as_str().unwrap().parse().unwrap() };
    let list = runs.as_array().unwrap();
    let mut spans: Vec<_> = list
        .iter()
        .map(|r| (time(r, "started_at"), time(r, "finished_at")))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "runs overlapped: {runs:#}");
    }
    assert_eq!(
        list.iter()
            .map(|r| r["recovered"].as_u64().unwrap())
            .sum::<u64>(),
        4,
        "{runs:#}"
    );
    let requests = log_requests(&github).await;
    for (guid, id) in MISSING {
        let fetched = requests
            .iter()
            .filter(|r| **r == format!("get {id}"))
            .count();
        assert_eq!(fetched, 1, "{guid} fetched {fetched} times: {requests:?}");
    }
    assert!(events(&one).await.iter().all(|(guid, source)| {
        source
            == if MISSING.iter().any(|(g, _)| g == guid) {
                "recovered"
            } else {
                "github"
            }
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_racing_run_recovery_once_on_sqlite() {
    two_servers_race(&TestDb::sqlite(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_racing_run_recovery_once_on_postgres_with_redis() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    two_servers_race(&db, Some(&redis)).await;
    db.drop_db().await;
}
