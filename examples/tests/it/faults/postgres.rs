//! PostgreSQL unreachable for 10 s (connections refused and reset) under steady traffic.

use std::time::Duration;

use super::sleep_until;
use crate::support::ledger::{assert_acknowledged_stored, assert_ran_once, wait_finished};
use crate::support::proxy::Proxy;
use crate::support::standin::{CodegenStand, GitHubStand};
use crate::support::traffic::Traffic;
use crate::support::*;

const OUTAGE: Duration = Duration::from_secs(10);

/// `url` with its host and port replaced by `addr`.
pub(super) fn through(url: &str, addr: std::net::SocketAddr) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    url.set_ip_host(addr.ip()).unwrap();
    url.set_port(Some(addr.port())).unwrap();
    url.to_string()
}

/// `host:port` of a URL.
pub(super) fn target(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap_or(5432)
    )
}

#[tokio::test]
async fn postgres_unreachable_answers_503_then_accepts_again_without_restart() {
    let db = TestDb::postgres().await;
    let proxy = Proxy::start(&target(&db.url)).await;
    let url = through(&db.url, proxy.addr());
    let (github_mock, github) = GitHubStand::start().await;
    let (codegen_mock, codegen) = CodegenStand::start().await;
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("WORKER_CONCURRENCY", "8"),
        // Longer than the outage: an attempt that ends while the database is away is recorded
        // when it returns, before its lease runs out (else the task would run again).
        ("WORKER_LEASE_SECONDS", "20"),
    ];
    let server = Server::start(&db, &github_mock, &codegen_mock, "all", &env).await;
    // Six senders: while the database is away each answer takes the pool's 5 s acquire
    // timeout, and the outage should still see a dozen deliveries.
    let traffic = Traffic::start(&server.base, 6, Duration::from_millis(300), 1);
    tokio::time::sleep(Duration::from_secs(3)).await;

    proxy.cut().await;
    let cut = traffic.now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, health) = server.health().await;
    assert_eq!(status, 503, "{health:#}");
    assert_eq!(health["status"], "unhealthy", "{health:#}");
    assert_eq!(health["checks"]["database"], "unhealthy", "{health:#}");
    let why = health["reasons"]["database"].as_str().unwrap_or_default();
    assert!(why.contains("database"), "/health says why: {health:#}");
    sleep_until(&traffic, cut + OUTAGE).await;

    proxy.restore().await;
    let back = traffic.now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let sent = traffic.stop().await;

    // During the outage every delivery is refused with 503 (an answer within a second of the
    // cut may still carry a commit made just before it).
    let during: Vec<_> = sent
        .iter()
        .filter(|s| s.answered > cut + Duration::from_secs(1) && s.answered < back)
        .collect();
    assert!(
        during.len() >= 5,
        "traffic during the outage ({cut:?}..{back:?}): {:?}",
        sent.iter()
            .map(|s| (s.sent.as_millis(), s.answered.as_millis(), s.status))
            .collect::<Vec<_>>()
    );
    let wrong: Vec<_> = during.iter().filter(|s| s.status != Some(503)).collect();
    assert!(
        wrong.is_empty(),
        "answered other than 503 while PostgreSQL was away: {wrong:#?}"
    );
    let unanswered: Vec<_> = sent.iter().filter(|s| s.status.is_none()).collect();
    assert!(
        unanswered.is_empty(),
        "no answer within 10 s: {unanswered:#?}"
    );
    // Within 2 s of its return deliveries are accepted again, by the same process.
    let after: Vec<_> = sent
        .iter()
        .filter(|s| s.sent >= back + Duration::from_secs(2))
        .collect();
    assert!(after.len() >= 5, "traffic after the outage: {after:#?}");
    let refused: Vec<_> = after.iter().filter(|s| !s.acknowledged()).collect();
    assert!(
        refused.is_empty(),
        "refused after PostgreSQL returned: {refused:#?}"
    );
    let logs = server.logs();
    assert!(logs.contains("delivery could not be stored"), "{logs}");

    let prs = assert_acknowledged_stored(&server, &sent).await;
    let tasks = wait_finished(&server, &prs, Duration::from_secs(90)).await;
    assert_ran_once(&server, &tasks, &prs, &github, &codegen).await;
    drop(server);
    db.drop_db().await;
}
