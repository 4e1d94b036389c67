//! `X-Hub-Signature-256` verification throughput (one secret, and the last of three secrets).
//!
//! Two measurements: wall time (criterion's default, group names `verify`, ...) and the
//! benchmark thread's CPU time (`cpu/...`, `CLOCK_THREAD_CPUTIME_ID` via `cpu-time`). CPU time is
//! what `openssl speed` reports by default (user CPU time), so `cpu/...` is the figure to set
//! against it on a machine shared with other work.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orchestrator_benches::body_of_len;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use support::ThreadCpuTime;

/// The same verification sizes, timed in thread CPU time.
fn verify_cpu(c: &mut Criterion<ThreadCpuTime>) {
    let verifier = SignatureVerifier::new([WebhookSecret::new("bench-secret")]);
    let mut group = c.benchmark_group("cpu/verify");
    for (label, len) in [("16KiB", 16 * 1024), ("28KiB", 28 * 1024)] {
        let body = body_of_len(len);
        let header = verifier.sign(&body).unwrap();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &body, |b, body| {
            b.iter(|| {
                verifier
                    .verify(black_box(Some(header.as_bytes())), false, black_box(body))
                    .unwrap()
            });
        });
    }
    group.finish();
}

fn verify(c: &mut Criterion) {
    let verifier = SignatureVerifier::new([WebhookSecret::new("bench-secret")]);
    let mut group = c.benchmark_group("verify");
    for (label, len) in [
        ("1KiB", 1024),
        ("16KiB", 16 * 1024),
        ("28KiB", 28 * 1024),
        ("1MiB", 1024 * 1024),
    ] {
        let body = body_of_len(len);
        let header = verifier.sign(&body).unwrap();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &body, |b, body| {
            b.iter(|| {
                verifier
                    .verify(black_box(Some(header.as_bytes())), false, black_box(body))
                    .unwrap()
            });
        });
    }
    group.finish();

    // Rotation: the matching secret is the last of three, so three MACs are computed.
    let signer = SignatureVerifier::new([WebhookSecret::new("current")]);
    let rotated = SignatureVerifier::new(["old-1", "old-2", "current"].map(WebhookSecret::new));
    let body = body_of_len(28 * 1024);
    let header = signer.sign(&body).unwrap();
    let mut group = c.benchmark_group("verify_rotation_3_secrets");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("28KiB", |b| {
        b.iter(|| {
            rotated
                .verify(black_box(Some(header.as_bytes())), false, black_box(&body))
                .unwrap()
        });
    });
    group.finish();
}

/// What verification costs on top of the hash: raw SHA-256 of the same bytes, and an HMAC keyed
/// per call (what `verify` avoids by cloning a pre-keyed state).
fn baselines(c: &mut Criterion) {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    let body = body_of_len(28 * 1024);
    let mut group = c.benchmark_group("baseline");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("sha256_28KiB", |b| {
        b.iter(|| Sha256::digest(black_box(&body)))
    });
    group.bench_function("hmac_rekeyed_28KiB", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"bench-secret").unwrap();
            mac.update(black_box(&body));
            mac.finalize().into_bytes()
        });
    });
    group.finish();
}

criterion_group!(benches, verify, baselines);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = verify_cpu
}
criterion_main!(benches, cpu);
