//! Every HTTP error of the API, and the only place where failures become status codes.
//!
//! An [`ApiError`] turns into a response that carries its public message as an extension; the
//! [correlation layer](crate::correlation) then writes the spec's body
//! `{"error", "status_code", "path", "correlation_id"}`, because only it knows the path and the
//! correlation id. Internal details are logged (inside the request's span, so with the
//! correlation id) and never sent: signature failures of every kind share one message, store
//! failures answer a generic 503 or 500.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use orchestrator_core::delivery::DeliveryError;
use orchestrator_core::engine::IngestError;
use orchestrator_core::error::{StoreError, StoreErrorKind};

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: invalid headers, body or parameters.
    #[error("{0}")]
    BadRequest(String),
    /// 401 on the webhook receiver: the signature is missing or wrong (one message for all).
    #[error("missing or invalid webhook signature")]
    InvalidSignature,
    /// 401 on the API: no or a wrong bearer token. The message says what to send, since it is
    /// the first answer a new user meets.
    #[error(
        "missing or invalid bearer token: send the server's ADMIN_TOKEN as \
         `Authorization: Bearer <token>` (without ADMIN_TOKEN set, the API is locked)"
    )]
    Unauthorized,
    /// 404: no such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// 409: a duplicate delivery, or a state that forbids the request.
    #[error("{0}")]
    Conflict(String),
    /// 408: the body did not arrive in time.
    #[error("the request body was not received in time")]
    RequestTimeout,
    /// 413: the body is over the limit.
    #[error("payload larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 429: the client's rate limit is used up.
    #[error("rate limit exceeded; retry in {} s", retry_after_secs(*.retry_after))]
    RateLimited {
        /// How long until one more request is allowed.
        retry_after: Duration,
    },
    /// 503: the body budget is spent (too many uploads in progress); refused before the body
    /// is read, with `Retry-After`.
    #[error("too many request bodies in progress; retry in {} s", retry_after_secs(*.retry_after))]
    Overloaded {
        /// When to try again.
        retry_after: Duration,
    },
    /// 503: the store cannot commit or answer now.
    #[error("service temporarily unavailable")]
    Unavailable,
    /// 500: an unexpected failure (already logged).
    #[error("internal server error")]
    Internal,
}

/// The public message of an error response, read by the correlation layer.
#[derive(Debug, Clone)]
pub(crate) struct ErrorMessage(pub(crate) String);

fn retry_after_secs(d: Duration) -> u64 {
    // Whole seconds, rounded up, never 0 (a Retry-After of 0 invites a tight loop).
    d.as_secs()
        .saturating_add(u64::from(d.subsec_nanos() > 0))
        .max(1)
}

impl ApiError {
    /// The answer when the body budget is spent: 503, retry in a second (uploads in progress
    /// finish or time out within the body read timeout).
    pub fn overloaded() -> Self {
        ApiError::Overloaded {
            retry_after: Duration::from_secs(1),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidSignature | ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } | ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short label for logs and `webhook_errors_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::InvalidSignature => "signature_invalid",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::RequestTimeout => "body_timeout",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded { .. } => "body_budget",
            ApiError::Unavailable => "store_unavailable",
            ApiError::Internal => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        if let ApiError::RateLimited { retry_after } | ApiError::Overloaded { retry_after } = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(retry_after)),
            );
        }
        response
            .extensions_mut()
            .insert(ErrorMessage(self.to_string()));
        response
    }
}

/// A layer turning a panicking handler into a logged, generic 500 (with the error body, since
/// it runs inside the correlation layer) instead of a dropped connection.
pub(crate) fn catch_panic() -> tower_http::catch_panic::CatchPanicLayer<fn(PanicPayload) -> Response>
{
    tower_http::catch_panic::CatchPanicLayer::custom(on_panic as fn(PanicPayload) -> Response)
}

type PanicPayload = Box<dyn std::any::Any + Send + 'static>;

fn on_panic(payload: PanicPayload) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    ApiError::Internal.into_response()
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::Delivery(DeliveryError::TooLarge { limit }) => {
                ApiError::PayloadTooLarge { limit }
            }
            IngestError::Delivery(e) => ApiError::BadRequest(e.to_string()),
            IngestError::Signature(kind) => {
                // The ingestor already logged the delivery; this keeps the kind next to the 401.
                tracing::debug!(reason = kind.as_str(), "webhook signature rejected");
                ApiError::InvalidSignature
            }
            IngestError::Payload(e) => ApiError::BadRequest(e.to_string()),
            // The ingestor logged the store failure with the delivery id.
            IngestError::Store(_) => ApiError::Unavailable,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err.kind() {
            StoreErrorKind::Unavailable => {
                tracing::error!(error = %err, "store unavailable");
                ApiError::Unavailable
            }
            StoreErrorKind::Conflict | StoreErrorKind::Internal => {
                tracing::error!(error = %err, "store failure");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::signature::SignatureError;

    #[test]
    fn ingest_errors_map_to_the_spec_codes() {
        let cases: Vec<(IngestError, StatusCode)> = vec![
            (
                DeliveryError::TooLarge { limit: 1 }.into(),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                DeliveryError::MissingHeader("x").into(),
                StatusCode::BAD_REQUEST,
            ),
            (SignatureError::Mismatch.into(), StatusCode::UNAUTHORIZED),
            (SignatureError::Missing.into(), StatusCode::UNAUTHORIZED),
            (
                StoreError::new(StoreErrorKind::Internal, "x").into(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(ApiError::from(err).status(), status);
        }
    }

    #[test]
    fn signature_failures_share_one_message() {
        let a = ApiError::from(IngestError::from(SignatureError::Missing)).to_string();
        let b = ApiError::from(IngestError::from(SignatureError::Mismatch)).to_string();
        assert_eq!(a, b);
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
