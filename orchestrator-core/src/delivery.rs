//! The delivery envelope: GitHub's `X-GitHub-*` headers, typed and checked.
//!
//! Missing or invalid required headers are [`DeliveryError`]s, which the HTTP layer answers with
//! 400. The size limit is checked before anything else ([`DeliveryLimits::check_size`]).

use http::HeaderMap;

/// Header names GitHub sends (lower case, as `http` stores them).
pub mod headers {
    /// The delivery GUID; the same on a redelivery.
    pub const DELIVERY: &str = "x-github-delivery";
    /// The event name.
    pub const EVENT: &str = "x-github-event";
    /// The webhook's id.
    pub const HOOK_ID: &str = "x-github-hook-id";
    /// `repository`, `organization`, `integration`, ...
    pub const TARGET_TYPE: &str = "x-github-hook-installation-target-type";
    /// The id of that target.
    pub const TARGET_ID: &str = "x-github-hook-installation-target-id";
    /// HMAC-SHA256 signature.
    pub const SIGNATURE_256: &str = "x-hub-signature-256";
    /// Legacy HMAC-SHA1 signature (never accepted on its own).
    pub const SIGNATURE_SHA1: &str = "x-hub-signature";
    /// GitHub Enterprise Server version.
    pub const ENTERPRISE_VERSION: &str = "x-github-enterprise-version";
    /// GitHub Enterprise Server host.
    pub const ENTERPRISE_HOST: &str = "x-github-enterprise-host";
}

/// Receiver limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryLimits {
    /// Largest body accepted, in bytes (default 1 MiB).
    pub max_body_bytes: usize,
}

impl Default for DeliveryLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl DeliveryLimits {
    /// Refuses a body (or a declared length) over the limit.
    pub fn check_size(&self, len: usize) -> Result<(), DeliveryError> {
        if len > self.max_body_bytes {
            Err(DeliveryError::TooLarge {
                limit: self.max_body_bytes,
            })
        } else {
            Ok(())
        }
    }
}

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json` (also assumed when no content type is sent).
    Json,
    /// `application/x-www-form-urlencoded` with the JSON in a `payload` field.
    Form,
}

/// Why a delivery's envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The body is larger than the limit.
    #[error("payload larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A required header is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present but unusable.
    #[error("invalid {0} header")]
    InvalidHeader(&'static str),
    /// The content type is neither JSON nor form-encoded.
    #[error("unsupported content type {0:?}")]
    UnsupportedContentType(String),
}

impl DeliveryError {
    /// Short label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryError::TooLarge { .. } => "payload_too_large",
            DeliveryError::MissingHeader(_) => "header_missing",
            DeliveryError::InvalidHeader(_) => "header_invalid",
            DeliveryError::UnsupportedContentType(_) => "content_type_unsupported",
        }
    }
}

/// The envelope of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `X-GitHub-Delivery`: 1-128 characters of `[A-Za-z0-9-_.:]` (a GUID in practice).
    pub delivery_id: String,
    /// `X-GitHub-Event`: 1-64 characters of `[a-z0-9_]`.
    pub event: String,
    /// `X-GitHub-Hook-ID`, when sent.
    pub hook_id: Option<i64>,
    /// `X-GitHub-Hook-Installation-Target-Type`, when sent.
    pub target_type: Option<String>,
    /// `X-GitHub-Hook-Installation-Target-ID`, when sent.
    pub target_id: Option<i64>,
    /// `User-Agent`, when sent.
    pub user_agent: Option<String>,
    /// GitHub Enterprise Server host, when sent.
    pub enterprise_host: Option<String>,
    /// Body encoding.
    pub format: BodyFormat,
}

impl Delivery {
    /// Reads and checks the envelope headers.
    pub fn from_headers(map: &HeaderMap) -> Result<Self, DeliveryError> {
        let delivery_id = required(map, headers::DELIVERY)?;
        if delivery_id.len() > 128
            || !delivery_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(DeliveryError::InvalidHeader(headers::DELIVERY));
        }
        let event = required(map, headers::EVENT)?;
        if !is_event_name(event) {
            return Err(DeliveryError::InvalidHeader(headers::EVENT));
        }
        Ok(Self {
            delivery_id: delivery_id.to_owned(),
            event: event.to_owned(),
            hook_id: optional_int(map, headers::HOOK_ID)?,
            target_type: optional(map, headers::TARGET_TYPE)?.map(str::to_owned),
            target_id: optional_int(map, headers::TARGET_ID)?,
            user_agent: optional(map, http::header::USER_AGENT.as_str())?.map(str::to_owned),
            enterprise_host: optional(map, headers::ENTERPRISE_HOST)?.map(str::to_owned),
            format: body_format(map)?,
        })
    }

    /// The headers worth storing with the event (never the signatures' secrets: there are none
    /// in headers, but authorisation-like headers are left out all the same).
    pub fn stored_headers(map: &HeaderMap) -> Vec<(String, String)> {
        map.iter()
            .filter(|(name, _)| {
                let n = name.as_str();
                n.starts_with("x-github-")
                    || n.starts_with("x-hub-")
                    || n == "user-agent"
                    || n == "content-type"
                    || n == "content-length"
            })
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect()
    }
}

/// Whether `name` can be an `X-GitHub-Event`: 1-64 characters of `[a-z0-9_]`.
pub fn is_event_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn optional<'a>(map: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, DeliveryError> {
    match map.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim()))
            .map_err(|_| DeliveryError::InvalidHeader(name)),
    }
}

fn required<'a>(map: &'a HeaderMap, name: &'static str) -> Result<&'a str, DeliveryError> {
    match optional(map, name)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(DeliveryError::MissingHeader(name)),
    }
}

fn optional_int(map: &HeaderMap, name: &'static str) -> Result<Option<i64>, DeliveryError> {
    match optional(map, name)? {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| DeliveryError::InvalidHeader(name)),
    }
}

fn body_format(map: &HeaderMap) -> Result<BodyFormat, DeliveryError> {
    let Some(value) = optional(map, http::header::CONTENT_TYPE.as_str())? else {
        return Ok(BodyFormat::Json);
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "" | "application/json" => Ok(BodyFormat::Json),
        "application/x-www-form-urlencoded" => Ok(BodyFormat::Form),
        m if m.ends_with("+json") => Ok(BodyFormat::Json),
        _ => Err(DeliveryError::UnsupportedContentType(value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    const GUID: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        m
    }

    fn with(extra: &[(&str, &[u8])]) -> Result<Delivery, DeliveryError> {
        let mut pairs: Vec<(&str, &[u8])> = vec![
            ("x-github-delivery", GUID.as_bytes()),
            ("x-github-event", b"pull_request"),
        ];
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend_from_slice(extra);
        Delivery::from_headers(&map(&pairs))
    }

    #[test]
    fn a_full_github_envelope_is_read() {
        let d = with(&[
            ("x-github-hook-id", b"292430182"),
            ("x-github-hook-installation-target-type", b"integration"),
            ("x-github-hook-installation-target-id", b"79929171"),
            ("user-agent", b"GitHub-Hookshot/044aadd"),
            ("x-github-enterprise-host", b"ghe.example.com"),
            ("content-type", b"application/json; charset=utf-8"),
        ])
        .unwrap();
        assert_eq!(d.delivery_id, GUID);
        assert_eq!(d.event, "pull_request");
        assert_eq!((d.hook_id, d.target_id), (Some(292430182), Some(79929171)));
        assert_eq!(d.target_type.as_deref(), Some("integration"));
        assert_eq!(d.user_agent.as_deref(), Some("GitHub-Hookshot/044aadd"));
        assert_eq!(d.enterprise_host.as_deref(), Some("ghe.example.com"));
        assert_eq!(d.format, BodyFormat::Json);
    }

    #[test]
    fn missing_or_invalid_delivery_id_and_event_are_refused() {
        let only_event = map(&[("x-github-event", b"push")]);
        assert_eq!(
            Delivery::from_headers(&only_event),
            Err(DeliveryError::MissingHeader(headers::DELIVERY))
        );
        let only_id = map(&[("x-github-delivery", GUID.as_bytes())]);
        assert_eq!(
            Delivery::from_headers(&only_id),
            Err(DeliveryError::MissingHeader(headers::EVENT))
        );
        assert_eq!(
            with(&[("x-github-delivery", b"  ")]),
            Err(DeliveryError::MissingHeader(headers::DELIVERY))
        );
        let too_long = "a".repeat(129);
        for bad in [
            &b"has space"[..],
            b"semi;colon",
            b"slash/",
            too_long.as_bytes(),
            b"\xff",
        ] {
            assert_eq!(
                with(&[("x-github-delivery", bad)]),
                Err(DeliveryError::InvalidHeader(headers::DELIVERY))
            );
        }
        assert!(with(&[("x-github-delivery", "a".repeat(128).as_bytes())]).is_ok());
        assert_eq!(
            with(&[("x-github-delivery", &[0xff, b'a'])]),
            Err(DeliveryError::InvalidHeader(headers::DELIVERY))
        );
        for bad in [
            &b"Push"[..],
            b"pull-request",
            b"../x",
            "e".repeat(65).as_bytes(),
        ] {
            assert_eq!(
                with(&[("x-github-event", bad)]),
                Err(DeliveryError::InvalidHeader(headers::EVENT))
            );
        }
        assert_eq!(
            with(&[("x-github-event", b"")]),
            Err(DeliveryError::MissingHeader(headers::EVENT))
        );
        assert_eq!(
            DeliveryError::MissingHeader(headers::EVENT).as_str(),
            "header_missing"
        );
        assert_eq!(
            DeliveryError::InvalidHeader(headers::EVENT).as_str(),
            "header_invalid"
        );
    }

    #[test]
    fn numeric_headers_must_be_numbers_when_present() {
        assert_eq!(
            with(&[("x-github-hook-id", b"12a")]),
            Err(DeliveryError::InvalidHeader(headers::HOOK_ID))
        );
        assert_eq!(
            with(&[("x-github-hook-id", b"-")]),
            Err(DeliveryError::InvalidHeader(headers::HOOK_ID))
        );
        assert_eq!(
            with(&[("x-github-hook-installation-target-id", b"1e3")]),
            Err(DeliveryError::InvalidHeader(headers::TARGET_ID))
        );
        assert_eq!(with(&[("x-github-hook-id", b"")]).unwrap().hook_id, None);
        assert_eq!(with(&[]).unwrap().hook_id, None);
    }

    #[test]
    fn content_types_select_the_body_format() {
        for (ct, format) in [
            (&b"application/json"[..], BodyFormat::Json),
            (b"Application/JSON; charset=UTF-8", BodyFormat::Json),
            (b"application/vnd.github+json", BodyFormat::Json),
            (b"application/x-www-form-urlencoded", BodyFormat::Form),
            (
                b"application/x-www-form-urlencoded; charset=utf-8",
                BodyFormat::Form,
            ),
        ] {
            assert_eq!(
                with(&[("content-type", ct)]).unwrap().format,
                format,
                "{ct:?}"
            );
        }
        assert_eq!(with(&[]).unwrap().format, BodyFormat::Json);
        for ct in [
            &b"text/plain"[..],
            b"multipart/form-data; boundary=x",
            b"application/xml",
        ] {
            let err = with(&[("content-type", ct)]).unwrap_err();
            assert!(
                matches!(err, DeliveryError::UnsupportedContentType(_)),
                "{ct:?}"
            );
            assert_eq!(err.as_str(), "content_type_unsupported");
        }
    }

    #[test]
    fn the_size_limit_is_inclusive() {
        let limits = DeliveryLimits::default();
        assert_eq!(limits.max_body_bytes, 1024 * 1024);
        assert_eq!(limits.check_size(1024 * 1024), Ok(()));
        let err = limits.check_size(1024 * 1024 + 1).unwrap_err();
        assert_eq!(err, DeliveryError::TooLarge { limit: 1024 * 1024 });
        assert_eq!(err.as_str(), "payload_too_large");
        assert_eq!(DeliveryLimits { max_body_bytes: 0 }.check_size(0), Ok(()));
    }

    #[test]
    fn stored_headers_keep_github_headers_only() {
        let m = map(&[
            ("x-github-delivery", GUID.as_bytes()),
            ("x-hub-signature-256", b"sha256=00"),
            ("authorization", b"Bearer secret-token"),
            ("cookie", b"a=b"),
            ("content-type", b"application/json"),
        ]);
        let stored = Delivery::stored_headers(&m);
        let names: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["x-github-delivery", "x-hub-signature-256", "content-type"]
        );
    }
}
