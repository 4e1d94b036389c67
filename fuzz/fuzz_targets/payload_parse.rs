//! Payload parsing and routing on arbitrary bytes, as JSON and as a form body; a shape error
//! (stored unparsed by the receiver) always leaves the common fields readable.
//!
//! Input layout: first byte picks the event name, the rest is the body.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use orchestrator_core::delivery::BodyFormat;
use orchestrator_core::payload::{ParsedEvent, PayloadError, json_body};
use orchestrator_core::routing::Router;

const EVENTS: &[&str] = &[
    "pull_request",
    "check_run",
    "check_suite",
    "push",
    "ping",
    "installation",
    "installation_repositories",
    "issue_comment",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let event = EVENTS[usize::from(pick) % EVENTS.len()];
    let router = Router::with_default_rules();
    match ParsedEvent::parse(event, body) {
        Ok(parsed) => {
            assert_eq!(parsed.name, event);
            let _ = router.route(&parsed);
        }
        // A JSON object whose typed view fails is stored unparsed, never refused: its common
        // fields must always read.
        Err(PayloadError::Shape { .. }) => {
            let common = ParsedEvent::parse_common(event, body);
            assert!(common.is_ok(), "{event}: {common:?}");
        }
        Err(_) => {}
    }
    let body = Bytes::copy_from_slice(body);
    if let Ok(json) = json_body(BodyFormat::Form, &body) {
        if let Ok(parsed) = ParsedEvent::parse(event, &json) {
            let _ = router.route(&parsed);
        }
    }
});
