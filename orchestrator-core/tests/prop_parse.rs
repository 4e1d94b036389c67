//! Property tests: verification, header parsing and payload parsing never panic on arbitrary
//! input, and a body changed in any byte never verifies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod corpus_support;

use http::{HeaderMap, HeaderName, HeaderValue};
use orchestrator_core::delivery::Delivery;
use orchestrator_core::payload::{EventKind, ParsedEvent};
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{
    SignatureError, SignatureVerifier, WebhookSecret, parse_signature_header,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const EVENTS: &[&str] = &[
    "pull_request",
    "check_run",
    "check_suite",
    "push",
    "ping",
    "installation",
    "installation_repositories",
    "issues",
    "",
];

fn verifier() -> SignatureVerifier {
    SignatureVerifier::new([
        WebhookSecret::new("prop-secret"),
        WebhookSecret::new("second"),
    ])
}

/// Arbitrary JSON values, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("number".to_owned()),
                    Just("id".to_owned()),
                    Just("ref".to_owned()),
                    Just("full_name".to_owned()),
                    Just("pull_requests".to_owned()),
                    Just("head".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A top-level object whose well-known keys hold arbitrary values.
fn payload() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(vec![
            "action",
            "repository",
            "installation",
            "sender",
            "pull_request",
            "check_run",
            "check_suite",
            "ref",
            "commits",
            "zen",
            "hook_id",
            "repositories",
            "repositories_added",
            "deleted",
        ]),
        json_value(),
        0..8,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn signature_header_parser_never_panics(value in prop::collection::vec(any::<u8>(), 0..100)) {
        let _ = parse_signature_header(&value);
    }

    #[test]
    fn near_valid_headers_never_panic(prefix in "(sha256|sha1|SHA256|sha512)?[=:]?", hex in "[0-9a-fA-Fg ]{0,70}") {
        let header = format!("{prefix}{hex}");
        let result = verifier().verify(Some(header.as_bytes()), false, b"body");
        prop_assert!(result.is_err());
    }

    #[test]
    fn verification_never_panics(
        header in prop::option::of(prop::collection::vec(any::<u8>(), 0..80)),
        legacy in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let result = verifier().verify(header.as_deref(), legacy, &body);
        if header.is_none() {
            let expected = if legacy { SignatureError::Sha1Only } else { SignatureError::Missing };
            prop_assert_eq!(result, Err(expected));
        }
    }

    #[test]
    fn a_body_changed_in_any_byte_fails(
        body in prop::collection::vec(any::<u8>(), 1..2048),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let verifier = verifier();
        let header = verifier.sign(&body).unwrap();
        prop_assert_eq!(verifier.verify(Some(header.as_bytes()), false, &body), Ok(()));
        let mut changed = body.clone();
        changed[index.index(body.len())] ^= flip;
        prop_assert_eq!(verifier.verify(Some(header.as_bytes()), false, &changed), Err(SignatureError::Mismatch));
    }

    #[test]
    fn delivery_headers_never_panic(
        pairs in prop::collection::vec(
            (prop::sample::select(vec![
                "x-github-delivery", "x-github-event", "x-github-hook-id",
                "x-github-hook-installation-target-id", "x-github-hook-installation-target-type",
                "content-type", "user-agent", "x-hub-signature-256", "x-hub-signature",
            ]), prop::collection::vec(any::<u8>(), 0..40)),
            0..10,
        ),
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                map.append(HeaderName::from_static(name), value);
            }
        }
        let _ = Delivery::from_headers(&map);
        let _ = Delivery::stored_headers(&map);
        let _ = verifier().verify_headers(&map, b"{}");
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(
        event in prop::sample::select(EVENTS),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Ok(parsed) = ParsedEvent::parse(event, &bytes) {
            let _ = Router::with_default_rules().route(&parsed);
        }
    }

    #[test]
    fn parsing_arbitrary_json_objects_never_panics_and_unrouted_events_are_accepted(
        event in prop::sample::select(EVENTS),
        value in payload(),
    ) {
        let bytes = serde_json::to_vec(&value).unwrap();
        match ParsedEvent::parse(event, &bytes) {
            Ok(parsed) => { let _ = Router::with_default_rules().route(&parsed); }
            Err(e) => {
                // Only the routed events may fail on valid JSON objects, and only for their
                // shape; such a delivery is stored unparsed, so its common fields always read.
                prop_assert!(["pull_request", "check_run", "check_suite", "push"].contains(&event), "{event}: {e}");
                prop_assert_eq!(e.as_str(), "payload_shape");
                let common = ParsedEvent::parse_common(event, &bytes);
                prop_assert!(common.is_ok(), "{event}: {common:?}");
            }
        }
    }

    #[test]
    fn a_corpus_payload_with_a_changed_byte_never_panics(
        file in prop::sample::select(corpus_support::manifest()),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut json = corpus_support::read(&format!("github-payloads/{}", file.0));
        let i = index.index(json.len());
        json[i] = byte;
        if let Ok(parsed) = ParsedEvent::parse(&file.1, &json) {
            let _ = Router::with_default_rules().route(&parsed);
        }
    }

    #[test]
    fn pull_request_actions_and_numbers_round_trip(
        action in "[a-z_]{1,20}",
        number in any::<u64>(),
        extra in json_value(),
    ) {
        let body = json!({"action": action, "pull_request": {"number": number, "new_field": extra},
                          "repository": {"full_name": "o/r"}, "unknown_top_level": extra});
        let parsed = ParsedEvent::parse("pull_request", &serde_json::to_vec(&body).unwrap()).unwrap();
        prop_assert_eq!(parsed.action.as_deref(), Some(action.as_str()));
        let EventKind::PullRequest(pr) = &parsed.kind else { panic!("{:?}", parsed.kind) };
        prop_assert_eq!(pr.number, number);
        let routed = ["opened", "synchronize", "reopened", "ready_for_review"].contains(&action.as_str());
        prop_assert_eq!(Router::with_default_rules().route(&parsed).len(), usize::from(routed));
    }
}
