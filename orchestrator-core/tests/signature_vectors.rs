//! Every row of the corpus's `signature-vectors.tsv` against [`SignatureVerifier`].
//!
//! `X-Hub-Signature-256` rows must verify (and `sign` must reproduce them); every other row
//! (legacy `X-Hub-Signature: sha1=`, `sha512=`) is not a valid `X-Hub-Signature-256`: sent in
//! that header it fails, and sent alone as `X-Hub-Signature` it is reported as `Sha1Only`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod corpus_support;

use http::{HeaderMap, HeaderValue};
use orchestrator_core::signature::{SignatureError, SignatureVerifier, WebhookSecret};

struct Vector {
    line: usize,
    secret: String,
    body: Vec<u8>,
    header_name: String,
    header_value: String,
}

fn vectors() -> Vec<Vector> {
    let text = String::from_utf8(corpus_support::read("signature-vectors.tsv")).unwrap();
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 3, "line {}: {l:?}", i + 1);
            let body = if let Some(text) = cols[1].strip_prefix("literal:") {
                text.as_bytes().to_vec()
            } else if let Some(path) = cols[1].strip_prefix("file:") {
                corpus_support::read(path)
            } else {
                panic!("line {}: unknown body {:?}", i + 1, cols[1]);
            };
            let (name, value) = cols[2].split_once(": ").unwrap();
            Vector {
                line: i + 1,
                secret: cols[0].to_owned(),
                body,
                header_name: name.to_owned(),
                header_value: value.to_owned(),
            }
        })
        .collect()
}

fn verifier(secret: &str) -> SignatureVerifier {
    SignatureVerifier::new([WebhookSecret::new(secret)])
}

#[test]
fn sha256_rows_verify_and_sign_to_the_same_header() {
    let rows: Vec<Vector> = vectors()
        .into_iter()
        .filter(|v| v.header_name == "X-Hub-Signature-256")
        .collect();
    assert_eq!(rows.len(), 8, "sha256 rows in signature-vectors.tsv");
    for v in &rows {
        let verifier = verifier(&v.secret);
        assert_eq!(
            verifier.verify(Some(v.header_value.as_bytes()), false, &v.body),
            Ok(()),
            "line {}",
            v.line
        );
        // A legacy header sent alongside changes nothing.
        assert_eq!(
            verifier.verify(Some(v.header_value.as_bytes()), true, &v.body),
            Ok(())
        );
        assert_eq!(
            verifier.sign(&v.body).as_deref(),
            Some(v.header_value.as_str()),
            "line {}",
            v.line
        );

        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&v.header_value).unwrap(),
        );
        assert_eq!(
            verifier.verify_headers(&headers, &v.body),
            Ok(()),
            "line {}",
            v.line
        );

        // Another secret, or a body one byte longer, does not verify.
        let other = SignatureVerifier::new([WebhookSecret::new(format!("{}x", v.secret))]);
        assert_eq!(
            other.verify(Some(v.header_value.as_bytes()), false, &v.body),
            Err(SignatureError::Mismatch)
        );
        let mut longer = v.body.clone();
        longer.push(b'\n');
        assert_eq!(
            verifier.verify(Some(v.header_value.as_bytes()), false, &longer),
            Err(SignatureError::Mismatch),
            "line {}",
            v.line
        );
        // Rotation: the right secret among others still verifies.
        let rotated =
            SignatureVerifier::new(["old-1", v.secret.as_str(), "new-2"].map(WebhookSecret::new));
        assert_eq!(
            rotated.verify(Some(v.header_value.as_bytes()), false, &v.body),
            Ok(())
        );
    }
}

#[test]
fn bodies_with_json_escapes_verify_only_as_raw_bytes() {
    for v in vectors()
        .iter()
        .filter(|v| v.header_name == "X-Hub-Signature-256")
    {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&v.body) else {
            continue;
        };
        let reserialised = serde_json::to_vec(&value).unwrap();
        if reserialised == v.body {
            continue;
        }
        assert_eq!(
            verifier(&v.secret).verify(Some(v.header_value.as_bytes()), false, &reserialised),
            Err(SignatureError::Mismatch),
            "line {}: a re-serialised body must not verify",
            v.line
        );
    }
}

#[test]
fn other_rows_are_not_a_valid_signature_256() {
    let rows: Vec<Vector> = vectors()
        .into_iter()
        .filter(|v| v.header_name != "X-Hub-Signature-256")
        .collect();
    assert_eq!(
        rows.len(),
        4,
        "legacy / sha512 rows in signature-vectors.tsv"
    );
    for v in &rows {
        assert_eq!(v.header_name, "X-Hub-Signature", "line {}", v.line);
        let verifier = verifier(&v.secret);
        // Its value fed as X-Hub-Signature-256: the scheme is not sha256.
        assert_eq!(
            verifier.verify(Some(v.header_value.as_bytes()), false, &v.body),
            Err(SignatureError::WrongScheme),
            "line {}",
            v.line
        );
        // Its hex digest with a sha256= prefix: wrong length (sha1, sha512) - never a match.
        let hex = v.header_value.split_once('=').unwrap().1;
        let relabelled = format!("sha256={hex}");
        assert_eq!(
            verifier.verify(Some(relabelled.as_bytes()), false, &v.body),
            Err(SignatureError::WrongLength),
            "line {}",
            v.line
        );
        // A delivery carrying only this legacy header.
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature",
            HeaderValue::from_str(&v.header_value).unwrap(),
        );
        assert_eq!(
            verifier.verify_headers(&headers, &v.body),
            Err(SignatureError::Sha1Only),
            "line {}",
            v.line
        );
    }
}

#[test]
fn the_empty_body_is_signed_like_any_other() {
    let body = corpus_support::read("signature-bodies/empty.bin");
    assert!(body.is_empty());
    let verifier = verifier("s");
    let header = verifier.sign(&body).unwrap();
    assert_eq!(
        verifier.verify(Some(header.as_bytes()), false, &body),
        Ok(())
    );
    assert_eq!(
        verifier.verify(Some(header.as_bytes()), false, b" "),
        Err(SignatureError::Mismatch)
    );
}
