//! GitHub and Codegen stand-ins that a test can make misbehave, and that record every call.
//!
//! - [`GitHubStand`]: lists two changed files of any pull request (so an agent run is asked
//!   for); [`GitHubStand::secondary_limit`] makes it answer every call with GitHub's secondary
//!   rate limit (`403` + `Retry-After`) for a window that starts at the next call.
//! - [`CodegenStand`]: creates runs with fresh ids, remembering which task asked
//!   (`metadata.task_id`), reads every run back as `COMPLETE` and lists them (newest first, with
//!   their metadata, for the orchestrator's look-up of a run whose answer was lost);
//!   [`CodegenStand::fail`] makes every call answer `500` until it is turned off.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::ORG_ID;

/// One call to the GitHub stand-in's file listing.
#[derive(Debug, Clone)]
pub struct GitHubCall {
    /// When it arrived.
    pub at: Instant,
    /// The pull request asked about.
    pub pr: u64,
    /// What was answered.
    pub status: u16,
}

#[derive(Default)]
struct GitHubState {
    calls: Vec<GitHubCall>,
    /// A limit to start at the next call: its length.
    armed: Option<Duration>,
    /// The limit in force: calls before this instant get 403.
    limited_until: Option<Instant>,
}

/// The GitHub stand-in (cheap to clone; clones share the record).
#[derive(Clone, Default)]
pub struct GitHubStand {
    state: Arc<Mutex<GitHubState>>,
}

impl GitHubStand {
    /// A running stand-in.
    pub async fn start() -> (MockServer, Self) {
        let server = MockServer::start().await;
        let stand = Self::default();
        Mock::given(method("GET"))
            .and(path_regex(r"^/repos/[^/]+/[^/]+/pulls/\d+/files$"))
            .respond_with(stand.clone())
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .mount(&server)
            .await;
        (server, stand)
    }

    /// From the next call on, every call for `window` gets a secondary rate limit answer.
    pub fn secondary_limit(&self, window: Duration) {
        self.state.lock().unwrap().armed = Some(window);
    }

    /// When the limit started, once a call started it.
    pub fn limit_started(&self) -> Option<Instant> {
        let state = self.state.lock().unwrap();
        state.calls.iter().find(|c| c.status == 403).map(|c| c.at)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<GitHubCall> {
        self.state.lock().unwrap().calls.clone()
    }
}

impl Respond for GitHubStand {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let pr = request
            .url
            .path_segments()
            .and_then(|mut s| s.nth(4))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        if let Some(window) = state.armed.take() {
            state.limited_until = Some(now + window);
        }
        let limited = state.limited_until.filter(|until| now < *until);
        let (status, response) = match limited {
            Some(until) => {
                let left = (until - now).as_secs_f64().ceil() as u64;
                let body = json!({
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                });
                let response = ResponseTemplate::new(403)
                    .insert_header("retry-after", left.to_string().as_str())
                    .insert_header("x-ratelimit-remaining", "4000")
                    .set_body_json(body);
                (403, response)
            }
            None => {
                let files = json!([
                    {"filename": "src/lib.rs", "status": "modified", "additions": 40, "deletions": 3, "changes": 43},
                    {"filename": "tests/lib_test.rs", "status": "added", "additions": 20, "deletions": 0, "changes": 20}
                ]);
                (200, ResponseTemplate::new(200).set_body_json(files))
            }
        };
        state.calls.push(GitHubCall {
            at: now,
            pr,
            status,
        });
        response
    }
}

#[derive(Default)]
struct CodegenState {
    failing: bool,
    next_id: i64,
    /// `metadata.task_id` of each run created.
    runs: Vec<String>,
    /// Each run created as the list shows it, oldest first.
    listed: Vec<Value>,
    /// When each refused creation arrived.
    refused: Vec<Instant>,
}

/// The Codegen stand-in (cheap to clone; clones share the record).
#[derive(Clone, Default)]
pub struct CodegenStand {
    state: Arc<Mutex<CodegenState>>,
}

fn run(id: i64, status: &str) -> Value {
    json!({"id": id, "organization_id": ORG_ID, "status": status,
           "web_url": format!("https://codegen.com/agent/trace/{id}"),
           "created_at": "2026-11-28T10:00:00Z", "result": null, "summary": null})
}

impl CodegenStand {
    /// A running stand-in.
    pub async fn start() -> (MockServer, Self) {
        let server = MockServer::start().await;
        let stand = Self::default();
        Mock::given(method("POST"))
            .and(path(format!("/v1/organizations/{ORG_ID}/agent/run")))
            .respond_with(stand.clone())
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(format!(
                r"^/v1/organizations/{ORG_ID}/agent/(run/\d+|runs)$"
            )))
            .respond_with(stand.clone())
            .mount(&server)
            .await;
        (server, stand)
    }

    /// While `on`, every call answers 500.
    pub fn fail(&self, on: bool) {
        self.state.lock().unwrap().failing = on;
    }

    /// The task of each run created so far (`metadata.task_id`).
    pub fn runs(&self) -> Vec<String> {
        self.state.lock().unwrap().runs.clone()
    }

    /// When each refused (500) run creation arrived.
    pub fn refused(&self) -> Vec<Instant> {
        self.state.lock().unwrap().refused.clone()
    }
}

impl Respond for CodegenStand {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        let creates = request.method.as_str() == "POST";
        if state.failing {
            if creates {
                state.refused.push(Instant::now());
            }
            return ResponseTemplate::new(500)
                .set_body_json(json!({"message": "internal error", "status_code": 500}));
        }
        if request.url.path().ends_with("/runs") {
            // Newest first, all on one page (the tests create far fewer than a page).
            let items: Vec<Value> = state.listed.iter().rev().cloned().collect();
            let total = items.len();
            return ResponseTemplate::new(200).set_body_json(
                json!({"items": items, "total": total, "page": 1, "size": 100, "pages": 1}),
            );
        }
        if !creates {
            let id = request
                .url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .and_then(|id| id.parse().ok())
                .unwrap_or(0);
            return ResponseTemplate::new(200).set_body_json(run(id, "COMPLETE"));
        }
        state.next_id += 1;
        let id = 1000 + state.next_id;
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let task_id = body["metadata"]["task_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        state.runs.push(task_id);
        let mut listed = run(id, "ACTIVE");
        listed["created_at"] = chrono::Utc::now().to_rfc3339().into();
        listed["metadata"] = body["metadata"].clone();
        state.listed.push(listed);
        ResponseTemplate::new(200).set_body_json(run(id, "ACTIVE"))
    }
}
