//! Redis (queue, replay guard, rate limiter) unreachable for 10 s under steady traffic, with an
//! API process dying in the middle of it.

use std::time::{Duration, Instant};

use super::postgres::target;
use super::sleep_until;
use crate::support::ledger::{assert_acknowledged_stored, assert_ran_once, tail, wait_finished};
use crate::support::proxy::Proxy;
use crate::support::standin::{CodegenStand, GitHubStand};
use crate::support::traffic::{PullRequests, Sent, Traffic};
use crate::support::*;

const OUTAGE: Duration = Duration::from_secs(10);

/// Pings sent at once from one client while Redis is away (the fallback limiter's burst is 50).
const BURST: usize = 150;

#[tokio::test]
async fn redis_unreachable_keeps_receiving_and_every_task_runs_once_after_it_returns() {
    let db = TestDb::postgres().await;
    let redis = TestRedis::new();
    let proxy = Proxy::start(&target(&redis.url)).await;
    let redis_url = format!("redis://{}", proxy.addr());
    let (github_mock, github) = GitHubStand::start().await;
    let (codegen_mock, codegen) = CodegenStand::start().await;
    let env = [
        ("REDIS_URL", redis_url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
        // The sweeper finds tasks whose publish was lost 5 s after their last change (5 min
        // by default), so the test sees it at work without waiting minutes.
        ("REDIS_SWEEP_AFTER_SECONDS", "5"),
        ("RATE_LIMIT_WEBHOOK_PER_SECOND", "25"),
        ("RATE_LIMIT_WEBHOOK_BURST", "50"),
        ("TRUSTED_PROXY_HEADER", "x-forwarded-for"),
        ("WORKER_CONCURRENCY", "8"),
        // Workers look for expired leases, and sweep, every lease / 2.
        ("WORKER_LEASE_SECONDS", "10"),
    ];
    let worker = Server::start(&db, &github_mock, &codegen_mock, "worker", &env).await;
    let mut api = Server::start(&db, &github_mock, &codegen_mock, "api", &env).await;
    // A second API process, behind the same load balancer as it were: it takes the traffic
    // over when the first one dies.
    let standby = Server::start(&db, &github_mock, &codegen_mock, "api", &env).await;
    let traffic = Traffic::start(&api.base, 2, Duration::from_millis(100), 1);
    let ping = corpus("ping/payload.json");
    assert_eq!(
        api.post_delivery("ping", "redis-early", &ping, None).await,
        Some(200)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    proxy.cut().await;
    let cut = traffic.now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    fallbacks_while_redis_is_away(&standby, &ping).await;

    // An API process dies while Redis is away: the task references it held in memory for Redis
    // are gone with it, and only a re-publication from the database (the sweeper) brings those
    // tasks back.
    sleep_until(&traffic, cut + OUTAGE / 2).await;
    let crashed = traffic.now();
    api.crash();
    traffic.retarget(&standby.base);
    sleep_until(&traffic, cut + OUTAGE).await;

    proxy.restore().await;
    let back = traffic.now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sent = traffic.stop().await;

    assert_received_throughout(&sent, cut, crashed, back);

    // A delivery stored while the guard was away is still a duplicate once it is back.
    let during = sent
        .iter()
        .find(|s| s.acknowledged() && s.answered > cut && s.answered < crashed)
        .unwrap();
    let body = PullRequests::new().body(during.pr);
    assert_eq!(
        standby
            .post_delivery("pull_request", &during.delivery_id, &body, None)
            .await,
        Some(409)
    );

    let prs = assert_acknowledged_stored(&standby, &sent).await;
    let tasks = wait_finished(&standby, &prs, Duration::from_secs(60)).await;
    assert_ran_once(&standby, &tasks, &prs, &github, &codegen).await;

    // The standby asks the shared limiter again at its next delivery once its Redis connection
    // is back (a reconnection backoff of up to 5 s, longer on a loaded machine): deliver until
    // it says so, for at most 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while !standby.logs().contains("shared rate limiter answers again") && Instant::now() < deadline
    {
        n += 1;
        let id = format!("redis-back-{n}");
        standby.post_delivery("ping", &id, &ping, None).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Each fallback said so in the log of the process that fell back; the crashed process's
    // tasks came back through the worker's sweeper.
    let expected = [
        (&api, "delivery guard unavailable; asking the store"),
        (&standby, "shared rate limiter failed; limiting in-process"),
        (
            &api,
            "publishing tasks failed; the sweeper will publish them",
        ),
        (&standby, "shared rate limiter answers again"),
        // The worker's sweeper ("re-published stale runnable tasks") or its empty-stream check
        // ("... re-published the store's runnable tasks"), whichever notices first.
        (&worker, "re-published"),
    ];
    for (server, line) in expected {
        let logs = server.logs();
        assert!(
            logs.contains(line),
            "{line:?} not logged:\n{}",
            tail(&logs, 40)
        );
    }
    drop((worker, api, standby));
    db.drop_db().await;
}

/// Receiving never stopped while Redis was away (`cut..back`): every delivery was accepted,
/// except those the crash of the first API process (at `crashed`) cut off or that went to it
/// before the traffic moved to the new one; and that process did accept some while Redis was
/// away, whose tasks it alone knew about.
fn assert_received_throughout(sent: &[Sent], cut: Duration, crashed: Duration, back: Duration) {
    let moved = traffic_moved(sent, crashed);
    let lost: Vec<_> = sent
        .iter()
        .filter(|s| !s.acknowledged())
        .filter(|s| !(s.status.is_none() && s.answered >= crashed && s.sent <= moved))
        .collect();
    assert!(lost.is_empty(), "not accepted: {lost:#?}");
    let crashed_api_window = sent
        .iter()
        .filter(|s| s.acknowledged() && s.answered > cut && s.answered < crashed)
        .count();
    assert!(
        crashed_api_window >= 5,
        "deliveries the crashed API accepted while Redis was away: {crashed_api_window}"
    );
    let accepted_during = sent
        .iter()
        .filter(|s| s.acknowledged() && s.answered > cut && s.answered < back)
        .count();
    assert!(
        accepted_during >= 10,
        "accepted while Redis was away: {accepted_during}"
    );
}

/// With Redis away, an API process still answers a redelivery from the database (409), limits
/// a burst from one client in-process (429s, no 5xx), and says it is degraded.
async fn fallbacks_while_redis_is_away(api: &Server, ping: &[u8]) {
    // Replay guard down: the database's unique delivery id still answers the redelivery.
    assert_eq!(
        api.post_delivery("ping", "redis-early", ping, None).await,
        Some(409)
    );
    // Shared rate limiter down: the in-process limiter limits a burst from one client.
    let burst = futures::future::join_all((0..BURST).map(|i| async move {
        let id = format!("burst-{i}");
        api.post_delivery("ping", &id, ping, Some("10.9.9.9")).await
    }))
    .await;
    let limited = burst.iter().filter(|s| **s == Some(429)).count();
    let accepted = burst.iter().filter(|s| **s == Some(200)).count();
    assert!(
        limited > 0 && accepted >= 50 && limited + accepted == BURST,
        "burst while Redis was away: {burst:?}"
    );
    let (status, health) = api.health().await;
    assert_eq!(status, 200, "degraded, still receiving: {health:#}");
    assert_eq!(health["checks"]["celery"], "unhealthy", "{health:#}");
    assert!(health["reasons"]["celery"].is_string(), "{health:#}");
}

/// When the traffic started sending to the new process: the first send after `crashed` that
/// got an answer.
fn traffic_moved(sent: &[Sent], crashed: Duration) -> Duration {
    sent.iter()
        .filter(|s| s.sent >= crashed && s.status.is_some())
        .map(|s| s.sent)
        .min()
        .unwrap_or(Duration::MAX)
}
