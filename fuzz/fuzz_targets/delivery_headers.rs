//! `Delivery::from_headers` and signature header lookup on a `HeaderMap` built from fuzz bytes.
//!
//! Input layout: records of `[name index][value length][value bytes]`; the name index picks one
//! of the headers GitHub sends (or an arbitrary one), the value is any bytes `http` accepts.

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use orchestrator_core::delivery::{Delivery, DeliveryLimits};
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};

const NAMES: &[&str] = &[
    "x-github-delivery",
    "x-github-event",
    "x-github-hook-id",
    "x-github-hook-installation-target-type",
    "x-github-hook-installation-target-id",
    "x-hub-signature-256",
    "x-hub-signature",
    "content-type",
    "user-agent",
    "x-github-enterprise-host",
    "content-length",
    "authorization",
];

fuzz_target!(|data: &[u8]| {
    let mut map = HeaderMap::new();
    let mut rest = data;
    while let [index, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (value, next) = tail.split_at(len);
        rest = next;
        let name = HeaderName::from_static(NAMES[usize::from(*index) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.append(name, value);
        }
    }
    if let Ok(delivery) = Delivery::from_headers(&map) {
        assert!(!delivery.delivery_id.is_empty() && delivery.delivery_id.len() <= 128);
        assert!(!delivery.event.is_empty() && delivery.event.len() <= 64);
    }
    let stored = Delivery::stored_headers(&map);
    assert!(stored.iter().all(|(name, _)| name != "authorization"));
    let _ = DeliveryLimits::default().check_size(data.len());
    let verifier = SignatureVerifier::new([WebhookSecret::new("fuzz")]);
    let _ = verifier.verify_headers(&map, data);
});
