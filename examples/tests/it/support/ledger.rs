//! What the server stored and ran, read through its API, checked against what the traffic sent
//! and what the stand-ins saw: nothing acknowledged is lost, nothing runs twice.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Server;
use super::standin::{CodegenStand, GitHubStand};
use super::traffic::Sent;

/// Every page of an admin list endpoint (`path` without query).
async fn list_all(server: &Server, path: &str) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let page = server
            .get(&format!("{path}?limit=1000&offset={}", all.len()))
            .await;
        let page = page.as_array().cloned().unwrap_or_default();
        let done = page.len() < 1000;
        all.extend(page);
        if done {
            return all;
        }
    }
}

/// The delivery ids the server has stored.
pub async fn stored_deliveries(server: &Server) -> HashSet<String> {
    list_all(server, "/api/v1/webhooks/events")
        .await
        .iter()
        .filter_map(|e| e["delivery_id"].as_str().map(str::to_owned))
        .collect()
}

/// Every task.
pub async fn tasks(server: &Server) -> Vec<Value> {
    list_all(server, "/api/v1/tasks").await
}

/// Checks that every acknowledged delivery is stored; returns the pull requests of the stored
/// ones (acknowledged or not: a commit whose answer was lost is stored too).
pub async fn assert_acknowledged_stored(server: &Server, sent: &[Sent]) -> BTreeSet<u64> {
    let stored = stored_deliveries(server).await;
    let lost: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.acknowledged() && !stored.contains(&s.delivery_id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:#?}");
    sent.iter()
        .filter(|s| stored.contains(&s.delivery_id))
        .map(|s| s.pr)
        .collect()
}

fn finished(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// Waits until each pull request of `prs` has its analysis and its `codegen_trigger` and every
/// task is finished; returns the tasks.
pub async fn wait_finished(server: &Server, prs: &BTreeSet<u64>, timeout: Duration) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let all = tasks(server).await;
        let mut kinds: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for t in &all {
            if let Some(pr) = t["pr_number"].as_u64() {
                let kind = t["task_type"].as_str().unwrap_or_default().to_owned();
                kinds.entry(pr).or_default().insert(kind);
            }
        }
        let complete = prs
            .iter()
            .all(|pr| kinds.get(pr).is_some_and(|k| k.len() == 2));
        let open: Vec<&Value> = all
            .iter()
            .filter(|t| !finished(t["status"].as_str().unwrap_or_default()))
            .collect();
        if complete && open.is_empty() {
            return all;
        }
        assert!(
            started.elapsed() < timeout,
            "tasks not finished after {timeout:?}: {} pull requests, {} tasks, {} open: {:#?}\nlogs (tail):\n{}",
            prs.len(),
            all.len(),
            open.len(),
            open.iter().take(5).collect::<Vec<_>>(),
            tail(&server.logs(), 60)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every task of `prs` completed and ran exactly once: one completed execution each, GitHub
/// read each pull request's files once (answered 200), and Codegen created exactly one run per
/// `codegen_trigger` task and none for anything else.
pub async fn assert_ran_once(
    server: &Server,
    tasks: &[Value],
    prs: &BTreeSet<u64>,
    github: &GitHubStand,
    codegen: &CodegenStand,
) {
    let not_completed: Vec<&Value> = tasks
        .iter()
        .filter(|t| t["status"] != "completed")
        .collect();
    assert!(
        not_completed.is_empty(),
        "tasks that did not complete: {not_completed:#?}"
    );
    assert_eq!(
        tasks.len(),
        prs.len() * 2,
        "one analysis and one trigger per pull request"
    );
    for task in tasks {
        let id = task["task_id"].as_str().unwrap();
        let detail = server.get(&format!("/api/v1/tasks/{id}")).await;
        let completed = detail["executions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["status"] == "completed")
            .count();
        assert_eq!(
            completed, 1,
            "task ran to completion more than once: {detail:#}"
        );
    }
    let mut reads: BTreeMap<u64, usize> = BTreeMap::new();
    for call in github.calls().iter().filter(|c| c.status == 200) {
        *reads.entry(call.pr).or_default() += 1;
    }
    let expected: BTreeMap<u64, usize> = prs.iter().map(|pr| (*pr, 1)).collect();
    assert_eq!(reads, expected, "GitHub file listings per pull request");
    let triggers: BTreeSet<String> = tasks
        .iter()
        .filter(|t| t["task_type"] == "codegen_trigger")
        .map(|t| t["task_id"].as_str().unwrap().to_owned())
        .collect();
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for task_id in codegen.runs() {
        *runs.entry(task_id).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = triggers.iter().map(|t| (t.clone(), 1)).collect();
    assert_eq!(runs, expected, "Codegen runs per codegen_trigger task");
}
