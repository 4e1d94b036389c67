//! `X-Hub-Signature-256` parsing and verification on arbitrary header bytes and bodies.
//!
//! Input layout: first byte = length of the header part (mod 128), then the header, then the
//! body. Whatever the input, nothing panics, and a header that parses is only accepted when it
//! is the real MAC of the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret, parse_signature_header};

fuzz_target!(|data: &[u8]| {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(len % 128).min(rest.len());
    let (header, body) = rest.split_at(split);

    let parsed = parse_signature_header(header);
    let verifier =
        SignatureVerifier::new([WebhookSecret::new("fuzz"), WebhookSecret::new("other")]);
    let verified = verifier.verify(Some(header), data.len() % 2 == 0, body);
    if parsed.is_err() {
        assert!(verified.is_err(), "an unparsable header verified");
    }
    // Our own signature of the body always verifies, and never for a different body.
    let ours = verifier.sign(body).unwrap_or_default();
    assert!(verifier.verify(Some(ours.as_bytes()), false, body).is_ok());
    if !header.is_empty() {
        assert!(
            verifier
                .verify(Some(ours.as_bytes()), false, header)
                .is_ok()
                == (header == body)
        );
    }
});
