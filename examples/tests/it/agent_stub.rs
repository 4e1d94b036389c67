//! A Codegen stand-in with memory: every run creation gets its own id and keeps the metadata it
//! was sent with; runs read back COMPLETE (or the status [`StubState::end_runs_with`] gave them); the run list (newest first, `skip` / `limit`) shows
//! them with their metadata, so a server can find a run whose creation answer it lost. Creations
//! are answered after a delay, so a worker can be killed while one is in flight.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::ORG_ID;

/// A run the stand-in created.
#[derive(Debug, Clone)]
pub struct StubRun {
    pub id: i64,
    pub metadata: Value,
    pub created_at: String,
    /// The status it reads back with.
    pub status: String,
}

impl StubRun {
    pub fn web_url(&self) -> String {
        format!("https://codegen.com/agent/trace/{}", self.id)
    }

    fn body(&self, status: &str) -> Value {
        json!({"id": self.id, "organization_id": ORG_ID, "status": status,
               "web_url": self.web_url(), "created_at": self.created_at,
               "result": null, "summary": null, "metadata": self.metadata})
    }
}

/// What the stand-in saw.
#[derive(Debug, Default)]
pub struct StubState {
    runs: Mutex<Vec<StubRun>>,
    /// The statuses of the next runs created, in order; later runs end COMPLETE.
    endings: Mutex<std::collections::VecDeque<String>>,
}

impl StubState {
    /// Every run created, oldest first.
    pub fn runs(&self) -> Vec<StubRun> {
        self.runs.lock().unwrap().clone()
    }

    /// The next runs created read back with these statuses, in order (then COMPLETE).
    pub fn end_runs_with(&self, statuses: &[&str]) {
        let mut endings = self.endings.lock().unwrap();
        endings.extend(statuses.iter().map(|s| (*s).to_owned()));
    }
}

struct Create(Arc<StubState>, Duration);

impl Respond for Create {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = request.body_json().unwrap_or(Value::Null);
        let status = self.0.endings.lock().unwrap().pop_front();
        let mut runs = self.0.runs.lock().unwrap();
        let run = StubRun {
            id: 5000 + runs.len() as i64,
            metadata: body["metadata"].clone(),
            created_at: chrono::Utc::now().to_rfc3339(),
            status: status.unwrap_or_else(|| "COMPLETE".to_owned()),
        };
        runs.push(run.clone());
        ResponseTemplate::new(200)
            .set_body_json(run.body("ACTIVE"))
            .set_delay(self.1)
    }
}

struct Read(Arc<StubState>);

impl Respond for Read {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id: i64 = request
            .url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        let runs = self.0.runs.lock().unwrap();
        match runs.iter().find(|r| r.id == id) {
            Some(run) => ResponseTemplate::new(200).set_body_json(run.body(&run.status)),
            None => ResponseTemplate::new(404),
        }
    }
}

struct List(Arc<StubState>);

impl Respond for List {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let param = |name: &str, default: usize| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(default)
        };
        let (skip, limit) = (param("skip", 0), param("limit", 100));
        let runs = self.0.runs.lock().unwrap();
        let items: Vec<Value> = runs
            .iter()
            .rev()
            .skip(skip)
            .take(limit)
            .map(|r| r.body(&r.status))
            .collect();
        let pages = runs.len().div_ceil(limit.max(1)).max(1);
        ResponseTemplate::new(200).set_body_json(json!({"items": items, "total": runs.len(),
            "page": skip / limit.max(1) + 1, "size": limit, "pages": pages}))
    }
}

/// Starts the stand-in; creations are answered after `create_delay`.
pub async fn codegen_stub(create_delay: Duration) -> (MockServer, Arc<StubState>) {
    let server = MockServer::start().await;
    let state = Arc::new(StubState::default());
    let org = format!("/v1/organizations/{ORG_ID}");
    Mock::given(method("POST"))
        .and(path(format!("{org}/agent/run")))
        .respond_with(Create(state.clone(), create_delay))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{org}/agent/runs")))
        .respond_with(List(state.clone()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(format!(r"^{org}/agent/run/\d+$")))
        .respond_with(Read(state.clone()))
        .mount(&server)
        .await;
    (server, state)
}
