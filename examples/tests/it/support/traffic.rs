//! Steady signed traffic: tasks that post deliveries one after another, each a pull request of
//! its own (a fresh number and head SHA), and record every answer with its delivery id.
//!
//! Each sender waits for its answer before sending the next, so the rate follows the server
//! (a slow answer slows the traffic, as with GitHub's one delivery per event). A request that
//! gets no answer within [`ANSWER_TIMEOUT`] (GitHub gives up after 10 s) or whose connection
//! breaks is recorded with no status: not acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{SECRET, corpus};

/// How long a sender waits for an answer (GitHub waits 10 s).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One delivery sent and what came back.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// The pull request number in the payload (unique per delivery).
    pub pr: u64,
    /// When it was sent, since the traffic started.
    pub sent: Duration,
    /// When the answer (or the failure) came, since the traffic started.
    pub answered: Duration,
    /// The HTTP status; `None` when no answer came.
    pub status: Option<u16>,
}

impl Sent {
    /// Answered 2xx: the server acknowledged it.
    pub fn acknowledged(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A `pull_request` `opened` payload for pull request `pr` (its own head SHA too), from the
/// corpus payload that asks for a Codegen run.
pub struct PullRequests {
    template: Value,
}

impl PullRequests {
    /// Reads the corpus payload once.
    pub fn new() -> Self {
        let template = serde_json::from_slice(&corpus("pull_request/opened.payload.json")).unwrap();
        Self { template }
    }

    /// The payload of pull request `pr`.
    pub fn body(&self, pr: u64) -> Vec<u8> {
        let mut payload = self.template.clone();
        payload["number"] = pr.into();
        payload["pull_request"]["number"] = pr.into();
        payload["pull_request"]["head"]["sha"] = format!("{pr:040x}").into();
        serde_json::to_vec(&payload).unwrap()
    }
}

/// Running senders.
pub struct Traffic {
    target: Arc<RwLock<String>>,
    records: Arc<Mutex<Vec<Sent>>>,
    stop: CancellationToken,
    senders: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Traffic {
    /// `senders` tasks posting to `base`, each pausing `pause` between answer and next send;
    /// pull request numbers start at `first_pr`.
    pub fn start(base: &str, senders: usize, pause: Duration, first_pr: u64) -> Self {
        let target = Arc::new(RwLock::new(base.to_owned()));
        let records = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let started = Instant::now();
        let next_pr = Arc::new(AtomicU64::new(first_pr));
        let payloads = Arc::new(PullRequests::new());
        let client = reqwest::Client::builder()
            .timeout(ANSWER_TIMEOUT)
            .build()
            .unwrap();
        let senders = (0..senders)
            .map(|_| {
                let sender = Sender {
                    client: client.clone(),
                    target: target.clone(),
                    records: records.clone(),
                    next_pr: next_pr.clone(),
                    payloads: payloads.clone(),
                    started,
                };
                let stop = stop.clone();
                tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        sender.send_one().await;
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                })
            })
            .collect();
        Self {
            target,
            records,
            stop,
            senders,
            started,
        }
    }

    /// Time since the traffic started (the clock of [`Sent::sent`] and [`Sent::answered`]).
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Sends to `base` from now on (a restarted server on another port).
    pub fn retarget(&self, base: &str) {
        *self.target.write().unwrap() = base.to_owned();
    }

    /// What was answered so far.
    pub fn records(&self) -> Vec<Sent> {
        self.records.lock().unwrap().clone()
    }

    /// Stops sending, waits for the answers in flight, and returns every record.
    pub async fn stop(self) -> Vec<Sent> {
        self.stop.cancel();
        for sender in self.senders {
            sender.await.unwrap();
        }
        let mut records = self.records.lock().unwrap().clone();
        records.sort_by_key(|r| r.sent);
        records
    }
}

struct Sender {
    client: reqwest::Client,
    target: Arc<RwLock<String>>,
    records: Arc<Mutex<Vec<Sent>>>,
    next_pr: Arc<AtomicU64>,
    payloads: Arc<PullRequests>,
    started: Instant,
}

impl Sender {
    async fn send_one(&self) {
        let pr = self.next_pr.fetch_add(1, Ordering::Relaxed);
        let body = self.payloads.body(pr);
        let delivery_id = uuid::Uuid::new_v4().to_string();
        let base = self.target.read().unwrap().clone();
        let sent = self.started.elapsed();
        let answer = self
            .client
            .post(format!("{base}/api/v1/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", &delivery_id)
            .header(
                "x-hub-signature-256",
                orchestrator_server::send::sign(SECRET.as_bytes(), &body),
            )
            .body(body)
            .send()
            .await;
        let status = answer.ok().map(|r| r.status().as_u16());
        self.records.lock().unwrap().push(Sent {
            delivery_id,
            pr,
            sent,
            answered: self.started.elapsed(),
            status,
        });
    }
}
