//! `X-Hub-Signature-256` verification.
//!
//! The HMAC-SHA256 of the raw body bytes, as sent, under each configured secret (several at once,
//! so a secret can be rotated without dropping deliveries), compared in constant time by the
//! `hmac` crate. Every failure has its own kind for logs and metrics; the HTTP layer answers all of
//! them with the same 401 so a caller learns nothing from the difference.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header (and no legacy one either).
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// Only the legacy SHA-1 `X-Hub-Signature` header was sent; it is not accepted.
    #[error(
        "only the legacy sha1 X-Hub-Signature header was sent; X-Hub-Signature-256 is required"
    )]
    Sha1Only,
    /// The header is present but empty.
    #[error("empty X-Hub-Signature-256 header")]
    Empty,
    /// The header does not start with `sha256=` (e.g. `sha1=`, `sha512=`).
    #[error("X-Hub-Signature-256 does not use the sha256= scheme")]
    WrongScheme,
    /// The digest is not hexadecimal.
    #[error("X-Hub-Signature-256 digest is not hexadecimal")]
    Malformed,
    /// The digest is hexadecimal but not 64 characters long.
    #[error("X-Hub-Signature-256 digest has the wrong length")]
    WrongLength,
    /// The digest matches none of the configured secrets.
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
    /// No secret is configured, so nothing can be verified.
    #[error("no webhook secret is configured")]
    NoSecret,
}

impl SignatureError {
    /// Short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Sha1Only => "signature_sha1_only",
            SignatureError::Empty => "signature_empty",
            SignatureError::WrongScheme => "signature_wrong_scheme",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::WrongLength => "signature_wrong_length",
            SignatureError::Mismatch => "signature_mismatch",
            SignatureError::NoSecret => "signature_no_secret",
        }
    }
}

/// A webhook secret. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// Wraps secret bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Verifies signatures against one or more secrets.
#[derive(Clone)]
pub struct SignatureVerifier {
    /// Keyed MACs prepared once, cloned per verification (cheaper than re-keying).
    keys: Vec<HmacSha256>,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("secrets", &self.keys.len())
            .finish()
    }
}

impl SignatureVerifier {
    /// A verifier accepting a signature made with any of `secrets`. Empty secrets are ignored.
    pub fn new(secrets: impl IntoIterator<Item = WebhookSecret>) -> Self {
        let keys = secrets
            .into_iter()
            .filter(|s| !s.0.is_empty())
            .filter_map(|s| HmacSha256::new_from_slice(&s.0).ok())
            .collect();
        Self { keys }
    }

    /// Whether at least one secret is configured.
    pub fn has_secret(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks `header` (the value of `X-Hub-Signature-256`, `None` when absent) against `body`.
    /// `legacy_sha1_present` says whether an `X-Hub-Signature` header was sent, only to report
    /// [`SignatureError::Sha1Only`] instead of [`SignatureError::Missing`]; the SHA-1 value itself
    /// is never checked.
    pub fn verify(
        &self,
        header: Option<&[u8]>,
        legacy_sha1_present: bool,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        if self.keys.is_empty() {
            // A configuration error, reported as such whatever the request carries.
            return Err(SignatureError::NoSecret);
        }
        let digest = match header {
            None if legacy_sha1_present => return Err(SignatureError::Sha1Only),
            None => return Err(SignatureError::Missing),
            Some(value) => parse_signature_header(value)?,
        };
        // The keyed state is cloned (no re-keying per request) and compared in constant time by
        // `verify_slice`. Stopping at the first matching secret reveals only that some secret
        // matched, which the caller learns from the response anyway.
        for key in &self.keys {
            let mut mac = key.clone();
            mac.update(body);
            if mac.verify_slice(&digest).is_ok() {
                return Ok(());
            }
        }
        Err(SignatureError::Mismatch)
    }

    /// [`SignatureVerifier::verify`] reading `X-Hub-Signature-256` and `X-Hub-Signature` from a
    /// request's headers.
    pub fn verify_headers(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let header = headers
            .get(crate::delivery::headers::SIGNATURE_256)
            .map(|v| v.as_bytes());
        let legacy = headers.contains_key(crate::delivery::headers::SIGNATURE_SHA1);
        self.verify(header, legacy, body)
    }

    /// `sha256=<hex>` for `body` under the first secret (for tests, tools and `send`).
    pub fn sign(&self, body: &[u8]) -> Option<String> {
        let mut mac = self.keys.first()?.clone();
        mac.update(body);
        Some(format!(
            "sha256={}",
            hex::encode(mac.finalize().into_bytes())
        ))
    }
}

/// Parses an `X-Hub-Signature-256` value, `sha256=<64 hex digits>` (surrounding whitespace
/// allowed, hex in either case), into the 32 digest bytes.
pub fn parse_signature_header(value: &[u8]) -> Result<[u8; 32], SignatureError> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(SignatureError::Empty);
    }
    let hex_digest = value
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::WrongScheme)?;
    if !hex_digest.iter().all(u8::is_ascii_hexdigit) {
        return Err(SignatureError::Malformed);
    }
    if hex_digest.len() != 64 {
        return Err(SignatureError::WrongLength);
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| SignatureError::Malformed)?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_HEADER: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn verifier(secrets: &[&str]) -> SignatureVerifier {
        SignatureVerifier::new(secrets.iter().map(|s| WebhookSecret::new(*s)))
    }

    #[test]
    fn githubs_documented_vector_verifies_and_signs() {
        let v = verifier(&[DOC_SECRET]);
        assert_eq!(
            v.verify(Some(DOC_HEADER.as_bytes()), false, b"Hello, World!"),
            Ok(())
        );
        assert_eq!(v.sign(b"Hello, World!").as_deref(), Some(DOC_HEADER));
        let upper = DOC_HEADER.replace("757107ea0e", "757107EA0E");
        assert_eq!(
            v.verify(
                Some(format!("  {upper} ").as_bytes()),
                false,
                b"Hello, World!"
            ),
            Ok(())
        );
    }

    #[test]
    fn every_failure_has_its_own_kind() {
        let v = verifier(&[DOC_SECRET]);
        let body = b"Hello, World!";
        let hex64 = &DOC_HEADER[7..];
        let cases: [(Option<String>, bool, SignatureError); 10] = [
            (None, false, SignatureError::Missing),
            (None, true, SignatureError::Sha1Only),
            (Some(String::new()), false, SignatureError::Empty),
            (Some("   ".into()), true, SignatureError::Empty),
            (
                Some(format!("sha1={}", &hex64[..40])),
                false,
                SignatureError::WrongScheme,
            ),
            (
                Some(format!("sha512={hex64}{hex64}")),
                false,
                SignatureError::WrongScheme,
            ),
            (Some(hex64.to_owned()), false, SignatureError::WrongScheme),
            (
                Some(format!("sha256={}zz", &hex64[..62])),
                false,
                SignatureError::Malformed,
            ),
            (
                Some(format!("sha256={}", &hex64[..63])),
                false,
                SignatureError::WrongLength,
            ),
            (
                Some(format!("sha256={}", "0".repeat(64))),
                false,
                SignatureError::Mismatch,
            ),
        ];
        for (header, legacy, expected) in cases {
            assert_eq!(
                v.verify(header.as_deref().map(str::as_bytes), legacy, body),
                Err(expected),
                "{header:?}"
            );
        }
        let labels: std::collections::HashSet<_> = [
            SignatureError::Missing,
            SignatureError::Sha1Only,
            SignatureError::Empty,
            SignatureError::WrongScheme,
            SignatureError::Malformed,
            SignatureError::WrongLength,
            SignatureError::Mismatch,
            SignatureError::NoSecret,
        ]
        .iter()
        .map(|e| e.as_str())
        .collect();
        assert_eq!(labels.len(), 8);
    }

    #[test]
    fn rotation_accepts_any_configured_secret_and_ignores_empty_ones() {
        let old = verifier(&["old"]);
        let new = verifier(&["new"]);
        let both = verifier(&["", "new", "old"]);
        let body = br#"{"zen":"x"}"#;
        for signer in [&old, &new] {
            let header = signer.sign(body).unwrap();
            assert_eq!(both.verify(Some(header.as_bytes()), false, body), Ok(()));
        }
        let header = old.sign(body).unwrap();
        assert_eq!(
            new.verify(Some(header.as_bytes()), false, body),
            Err(SignatureError::Mismatch)
        );
        // `sign` uses the first non-empty secret.
        assert_eq!(both.sign(body), new.sign(body));
    }

    #[test]
    fn no_secret_is_reported_before_anything_else() {
        let v = verifier(&["", ""]);
        assert!(!v.has_secret());
        assert_eq!(v.sign(b"x"), None);
        assert_eq!(v.verify(None, false, b"x"), Err(SignatureError::NoSecret));
        assert_eq!(
            v.verify(Some(DOC_HEADER.as_bytes()), false, b"x"),
            Err(SignatureError::NoSecret)
        );
        assert!(verifier(&["s"]).has_secret());
    }

    #[test]
    fn the_mac_covers_the_raw_bytes_of_any_content_type() {
        let v = verifier(&["k"]);
        let form = b"payload=%7B%22a%22%3A1%7D";
        let json = br#"{"a":1}"#;
        let form_sig = v.sign(form).unwrap();
        assert_eq!(v.verify(Some(form_sig.as_bytes()), false, form), Ok(()));
        // The decoded JSON is not what was signed.
        assert_eq!(
            v.verify(Some(form_sig.as_bytes()), false, json),
            Err(SignatureError::Mismatch)
        );
        // A re-serialised body with the same meaning does not verify either.
        let sig = v.sign(br#"{"a": 1}"#).unwrap();
        assert_eq!(
            v.verify(Some(sig.as_bytes()), false, json),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verify_headers_reads_both_signature_headers() {
        let v = verifier(&[DOC_SECRET]);
        let mut headers = http::HeaderMap::new();
        assert_eq!(
            v.verify_headers(&headers, b"Hello, World!"),
            Err(SignatureError::Missing)
        );
        headers.insert("x-hub-signature", http::HeaderValue::from_static("sha1=00"));
        assert_eq!(
            v.verify_headers(&headers, b"Hello, World!"),
            Err(SignatureError::Sha1Only)
        );
        headers.insert(
            "x-hub-signature-256",
            http::HeaderValue::from_static(DOC_HEADER),
        );
        assert_eq!(v.verify_headers(&headers, b"Hello, World!"), Ok(()));
        assert_eq!(
            v.verify_headers(&headers, b"Hello, World?"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = WebhookSecret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", verifier(&["hunter2"])).contains("hunter2"));
    }
}
