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
    #[error("only the legacy sha1 X-Hub-Signature header was sent; X-Hub-Signature-256 is required")]
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
#[derive(Debug, Clone)]
pub struct SignatureVerifier {
    /// Keyed MACs prepared once, cloned per verification (cheaper than re-keying).
    keys: Vec<HmacSha256>,
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
    /// [`SignatureError::Sha1Only`] instead of [`SignatureError::Missing`].
    pub fn verify(
        &self,
        header: Option<&[u8]>,
        legacy_sha1_present: bool,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let digest = parse_header(header, legacy_sha1_present)?;
        if self.keys.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        // Every key is tried (no early exit on the first match would leak which key matched,
        // but the order is fixed and the comparison constant-time, so an early exit is fine).
        for key in &self.keys {
            let mut mac = key.clone();
            mac.update(body);
            if mac.verify_slice(&digest).is_ok() {
                return Ok(());
            }
        }
        Err(SignatureError::Mismatch)
    }

    /// `sha256=<hex>` for `body` under the first secret (for tests, tools and `send`).
    pub fn sign(&self, body: &[u8]) -> Option<String> {
        let mut mac = self.keys.first()?.clone();
        mac.update(body);
        Some(format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
    }
}

/// Parses `sha256=<64 hex>` into the 32 digest bytes.
fn parse_header(header: Option<&[u8]>, legacy_sha1_present: bool) -> Result<[u8; 32], SignatureError> {
    let header = match header {
        None if legacy_sha1_present => return Err(SignatureError::Sha1Only),
        None => return Err(SignatureError::Missing),
        Some(h) => h.trim_ascii(),
    };
    if header.is_empty() {
        return Err(SignatureError::Empty);
    }
    let hex_digest = header
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
