//! `ParsedEvent::parse` + `Router::route` (default rules) of corpus payloads.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orchestrator_benches::payload;
use orchestrator_core::payload::ParsedEvent;
use orchestrator_core::routing::Router;
use support::ThreadCpuTime;

const CASES: &[(&str, &str)] = &[
    // The largest routed pull_request payload of the corpus (28,718 bytes, one task).
    (
        "pull_request",
        "pull_request/opened.with-organization.payload.json",
    ),
    ("pull_request", "pull_request/synchronize.payload.json"),
    // The largest payload of the corpus (31,910 bytes), not routed: parsed, no task.
    (
        "pull_request",
        "pull_request/labeled.with-organization.payload.json",
    ),
    ("check_run", "check_run/completed.1.payload.json"),
    ("check_suite", "check_suite/completed.payload.json"),
    ("push", "push/with-new-branch.payload.json"),
    ("issues", "issues/opened.payload.json"),
    ("ping", "ping/payload.json"),
];

fn parse_route(c: &mut Criterion) {
    let router = Router::with_default_rules();
    let mut group = c.benchmark_group("parse_route");
    for (event, file) in CASES {
        let json = payload(file).unwrap();
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(file), &json, |b, json| {
            b.iter(|| {
                let parsed = ParsedEvent::parse(black_box(event), black_box(json)).unwrap();
                black_box(router.route(&parsed))
            });
        });
    }
    group.finish();

    // Baseline: what a full `serde_json::Value` of the largest payload would cost.
    let json = payload("pull_request/opened.with-organization.payload.json").unwrap();
    let mut group = c.benchmark_group("baseline");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function(
        "serde_json_value_pull_request_opened_with_organization",
        |b| {
            b.iter(|| {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(&json)).unwrap())
            });
        },
    );
    group.finish();
}

/// The largest routed pull_request payload again, timed in thread CPU time.
fn parse_route_cpu(c: &mut Criterion<ThreadCpuTime>) {
    let router = Router::with_default_rules();
    let json = payload("pull_request/opened.with-organization.payload.json").unwrap();
    let mut group = c.benchmark_group("cpu/parse_route");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("pull_request/opened.with-organization.payload.json", |b| {
        b.iter(|| {
            let parsed = ParsedEvent::parse(black_box("pull_request"), black_box(&json)).unwrap();
            black_box(router.route(&parsed))
        });
    });
    group.finish();
}

criterion_group!(benches, parse_route);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = parse_route_cpu
}
criterion_main!(benches, cpu);
