//! SIGKILL of an API process while deliveries are being committed (the worker side of a crash
//! is `crash.rs`).

use std::collections::HashSet;
use std::time::Duration;

use crate::support::ledger::{
    assert_acknowledged_stored, assert_ran_once, stored_deliveries, wait_finished,
};
use crate::support::standin::{CodegenStand, GitHubStand};
use crate::support::traffic::{PullRequests, Traffic};
use crate::support::*;

#[tokio::test]
async fn sigkill_of_an_api_process_mid_commit_loses_nothing_acknowledged() {
    let db = TestDb::postgres().await;
    let (github_mock, github) = GitHubStand::start().await;
    let (codegen_mock, codegen) = CodegenStand::start().await;
    let env = [("WORKER_CONCURRENCY", "8")];
    let worker = Server::start(&db, &github_mock, &codegen_mock, "worker", &env).await;
    let mut api = Server::start(&db, &github_mock, &codegen_mock, "api", &env).await;
    // Senders that never pause: there are always deliveries being committed.
    let traffic = Traffic::start(&api.base, 3, Duration::ZERO, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    api.crash();
    // The senders run on this test's thread: on a loaded machine the answers to the requests in
    // flight may all have reached the client's socket before the kill. Keep sending for a moment
    // so that requests are cut off for sure (in flight at the kill, or refused after it).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = traffic.stop().await;

    // The kill cut requests off: nothing was answered for them.
    let cut_off: Vec<_> = sent.iter().filter(|s| s.status.is_none()).collect();
    assert!(!cut_off.is_empty(), "no request was cut off by the kill");
    let refused: Vec<_> = sent
        .iter()
        .filter(|s| s.status.is_some() && !s.acknowledged())
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");

    let api = Server::start(&db, &github_mock, &codegen_mock, "api", &env).await;
    assert_acknowledged_stored(&api, &sent).await;
    // GitHub's redelivery of each cut-off delivery (same id) is stored exactly once: it either
    // was committed before the kill (409) or is stored now (200).
    let stored_before = stored_deliveries(&api).await;
    let payloads = PullRequests::new();
    for s in &cut_off {
        let status = api
            .post_delivery("pull_request", &s.delivery_id, &payloads.body(s.pr), None)
            .await;
        let expected = if stored_before.contains(&s.delivery_id) {
            409
        } else {
            200
        };
        assert_eq!(status, Some(expected), "{s:?}");
    }
    let stored = stored_deliveries(&api).await;
    let all: HashSet<String> = sent.iter().map(|s| s.delivery_id.clone()).collect();
    assert!(
        all.is_subset(&stored),
        "every delivery is stored after redelivery"
    );
    let prs = sent.iter().map(|s| s.pr).collect();
    let tasks = wait_finished(&api, &prs, Duration::from_secs(90)).await;
    assert_ran_once(&api, &tasks, &prs, &github, &codegen).await;
    drop((worker, api));
    db.drop_db().await;
}
