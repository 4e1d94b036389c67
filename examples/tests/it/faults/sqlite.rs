//! SQLite on a disk that fills up under steady traffic, then gets space back.

use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::support::ledger::{assert_acknowledged_stored, assert_ran_once, tail, wait_finished};
use crate::support::small_fs::SmallFs;
use crate::support::standin::{CodegenStand, GitHubStand};
use crate::support::traffic::Traffic;
use crate::support::*;

#[tokio::test]
async fn sqlite_on_a_full_disk_answers_503_and_loses_nothing_once_space_returns() {
    let fs = SmallFs::mount(64);
    let db = TestDb::sqlite_in(fs.path());
    let (github_mock, github) = GitHubStand::start().await;
    let (codegen_mock, codegen) = CodegenStand::start().await;
    let env = [("WORKER_CONCURRENCY", "8"), ("WORKER_LEASE_SECONDS", "30")];
    let mut server = Server::start(&db, &github_mock, &codegen_mock, "all", &env).await;
    let traffic = Traffic::start(&server.base, 3, Duration::from_millis(50), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let filler = fs.fill();
    assert!(
        fs.free_bytes() < 64 * 1024,
        "{} bytes left",
        fs.free_bytes()
    );
    // The WAL reuses the room it already has, so writes fail once that is used up.
    let filled = Instant::now();
    let full = loop {
        if let Some(first) = traffic.records().iter().find(|s| s.status == Some(503)) {
            break first.answered;
        }
        assert!(
            filled.elapsed() < Duration::from_secs(40),
            "no write failed on the full disk:\n{}",
            tail(&server.logs(), 40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    std::fs::remove_file(&filler).unwrap();
    let freed = traffic.now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent = traffic.stop().await;

    let refused = sent.iter().filter(|s| s.status == Some(503)).count();
    let odd: Vec<_> = sent
        .iter()
        .filter(|s| !matches!(s.status, Some(200 | 503)))
        .collect();
    assert!(odd.is_empty(), "answered other than 200 or 503: {odd:#?}");
    assert!(
        refused >= 3,
        "{refused} refused while the disk was full (from {full:?})"
    );
    let after: Vec<_> = sent
        .iter()
        .filter(|s| s.sent >= freed + Duration::from_secs(2))
        .collect();
    assert!(
        after.len() >= 5 && after.iter().all(|s| s.acknowledged()),
        "refused after space returned at {freed:?}: {:?}\n{}",
        after.iter().map(|s| (s.sent, s.status)).collect::<Vec<_>>(),
        tail(&server.logs(), 30)
    );
    // One clear line per refused delivery, with SQLite's own words.
    let logs = server.logs();
    let explained = logs
        .lines()
        .filter(|l| l.contains("delivery could not be stored") && l.contains("disk is full"))
        .count();
    assert!(explained >= 1, "{}", tail(&logs, 40));

    let prs = assert_acknowledged_stored(&server, &sent).await;
    let tasks = wait_finished(&server, &prs, Duration::from_secs(60)).await;
    assert_ran_once(&server, &tasks, &prs, &github, &codegen).await;

    // The file is sound, and holds every acknowledged delivery after a restart.
    assert!(server.terminate().success());
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    conn.close().await.unwrap();
    let server = Server::start(&db, &github_mock, &codegen_mock, "all", &env).await;
    assert_acknowledged_stored(&server, &sent).await;
    drop(server);
    drop(db);
    drop(fs);
}
