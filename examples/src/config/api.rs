//! The HTTP side: `BIND_ADDR`, `GITHUB_WEBHOOK_SECRET` (+ `_PREVIOUS`), `MAX_PAYLOAD_BYTES`,
//! `ADMIN_TOKEN` / `SECRET_KEY`, `RATE_LIMIT_*`, `TRUSTED_PROXY_HEADER`,
//! `DUPLICATE_DELIVERY_STATUS`, `METRICS_REQUIRE_TOKEN`.

use std::time::Duration;

use orchestrator_axum::AdminToken;
use orchestrator_axum::DuplicatePolicy;

use super::read::Reader;
use super::{Config, Purpose};
use crate::role::Role;

pub(super) fn read(r: &mut Reader<'_>, purpose: Purpose, c: &mut Config) {
    c.bind_addr = r.parse(
        "BIND_ADDR",
        c.bind_addr,
        "a socket address such as 0.0.0.0:8080",
    );
    let needs_secret = matches!(
        purpose,
        Purpose::Serve(Role::All | Role::Api) | Purpose::Send
    );
    match r.secret("GITHUB_WEBHOOK_SECRET") {
        Some(s) => c.webhook_secrets.push(s),
        None if needs_secret => r.problem(
            "GITHUB_WEBHOOK_SECRET",
            "required: the secret configured on the GitHub webhook (every delivery is verified with it)",
        ),
        None => {}
    }
    if let Some(s) = r.secret("GITHUB_WEBHOOK_SECRET_PREVIOUS") {
        c.webhook_secrets.push(s);
    }
    let limits = &mut c.delivery_limits;
    limits.max_body_bytes = r.parse(
        "MAX_PAYLOAD_BYTES",
        limits.max_body_bytes,
        "a size in bytes",
    );
    if limits.max_body_bytes == 0 {
        r.problem("MAX_PAYLOAD_BYTES", "must be greater than 0");
    }
    admin_token(r, c);
    rate_limits(r, c);
    c.api.trusted_proxy_header = r.get("TRUSTED_PROXY_HEADER").and_then(|h| {
        let h = h.to_ascii_lowercase();
        let name = http::HeaderName::from_bytes(h.as_bytes()).ok();
        if name.is_none() {
            r.problem(
                "TRUSTED_PROXY_HEADER",
                format!("{h:?} is not a header name"),
            );
        }
        name
    });
    c.api.duplicate_policy = r.choice(
        "DUPLICATE_DELIVERY_STATUS",
        c.api.duplicate_policy,
        &[
            ("409", DuplicatePolicy::Conflict),
            ("200", DuplicatePolicy::Acknowledge),
        ],
    );
    c.api.metrics_require_token = r.bool("METRICS_REQUIRE_TOKEN", c.api.metrics_require_token);
}

/// `ADMIN_TOKEN`, else `SECRET_KEY`; each at least 16 characters.
fn admin_token(r: &mut Reader<'_>, c: &mut Config) {
    let admin_token = r.get("ADMIN_TOKEN");
    let secret_key = r.get("SECRET_KEY");
    for (name, value) in [("ADMIN_TOKEN", &admin_token), ("SECRET_KEY", &secret_key)] {
        if value.as_ref().is_some_and(|s| s.len() < 16) {
            r.problem(name, "too short: use at least 16 characters");
        }
    }
    c.api.admin_token = admin_token.or(secret_key).and_then(AdminToken::new);
}

/// `RATE_LIMIT_WEBHOOK_PER_SECOND` / `_BURST` and `RATE_LIMIT_API_PER_MINUTE` / `_BURST`; a
/// zero rate turns the limit off, a zero burst is refused while it is on.
fn rate_limits(r: &mut Reader<'_>, c: &mut Config) {
    let limits = &mut c.api.rate_limits;
    let off = "a whole number (0 turns the limit off)";
    let webhook = &mut limits.webhook;
    webhook.requests = r.parse("RATE_LIMIT_WEBHOOK_PER_SECOND", webhook.requests, off);
    webhook.burst = r.parse("RATE_LIMIT_WEBHOOK_BURST", webhook.burst, "a whole number");
    webhook.period = Duration::from_secs(1);
    let api = &mut limits.api;
    api.requests = r.parse("RATE_LIMIT_API_PER_MINUTE", api.requests, off);
    api.burst = r.parse("RATE_LIMIT_API_BURST", api.burst, "a whole number");
    api.period = Duration::from_secs(60);
    for (name, limit) in [
        ("RATE_LIMIT_WEBHOOK_BURST", limits.webhook),
        ("RATE_LIMIT_API_BURST", limits.api),
    ] {
        if limit.is_enabled() && limit.burst == 0 {
            r.problem(name, "must be at least 1 while the limit is on");
        }
    }
}
