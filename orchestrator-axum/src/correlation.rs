//! Correlation ids: one per request, in a response header, in every log line and error body.
//!
//! [`CorrelationLayer`] takes the id from `X-Request-Id` (1-128 visible ASCII characters) or
//! from the trace id of a W3C `traceparent`, and generates a UUID otherwise. It runs the request
//! inside a `request` span carrying the id, returns it as `X-Request-Id`, and writes the spec's
//! error body for every error response (see [`crate::error`]).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::Response;
use futures::future::BoxFuture;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::dto::ErrorBody;
use crate::error::ErrorMessage;

/// The header carrying the correlation id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const TRACEPARENT: &str = "traceparent";

/// A request's correlation id (also an extractor for handlers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(Arc<str>);

impl CorrelationId {
    /// The id from `X-Request-Id` or `traceparent`, or a new one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let from_request_id = headers
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()));
        if let Some(id) = from_request_id {
            return Self(id.into());
        }
        if let Some(trace_id) = headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(trace_id)
        {
            return Self(trace_id.into());
        }
        Self(uuid::Uuid::new_v4().to_string().into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The trace id of `version-traceid-spanid-flags`, when it is well formed and not all zeros.
fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(version, 2) && hex(trace, 32) && hex(span, 16) && trace.bytes().any(|b| b != b'0'))
        .then_some(trace)
}

/// The `traceparent` header of a request, when it is well formed.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    trace_id(value).map(|_| value.trim().to_owned())
}

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<CorrelationId>()
            .cloned()
            .unwrap_or_else(|| CorrelationId::from_headers(&parts.headers)))
    }
}

/// Adds correlation ids, request spans and spec error bodies to a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct CorrelationLayer;

impl<S> Layer<S> for CorrelationLayer {
    type Service = CorrelationService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CorrelationService { inner }
    }
}

/// The service of [`CorrelationLayer`].
#[derive(Debug, Clone)]
pub struct CorrelationService<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for CorrelationService<S>
where
    S: Service<Request<Body>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let id = req
            .extensions()
            .get::<CorrelationId>()
            .cloned()
            .unwrap_or_else(|| CorrelationId::from_headers(req.headers()));
        let path = req.uri().path().to_owned();
        let span = tracing::info_span!(
            "request",
            correlation_id = %id,
            method = %req.method(),
            path = %path,
        );
        req.extensions_mut().insert(id.clone());
        let future = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Box::pin(
            async move {
                let started = Instant::now();
                let mut response = future.await?;
                finish(&mut response, &path, &id);
                let status = response.status().as_u16();
                let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                // Probes and scrapes arrive every few seconds: keep them out of info logs
                // unless they fail.
                if response.status().is_success() && (path == "/health" || path == "/metrics") {
                    tracing::debug!(status, elapsed_ms, "request finished");
                } else {
                    tracing::info!(status, elapsed_ms, "request finished");
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// Sets the id header and writes the error body of an error response.
fn finish(response: &mut Response, path: &str, id: &CorrelationId) {
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status();
    let message = match response.extensions_mut().remove::<ErrorMessage>() {
        Some(ErrorMessage(message)) => message,
        None if is_error(status) && !is_json(response.headers()) => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
        None => return,
    };
    let body = ErrorBody {
        error: message,
        status_code: status.as_u16(),
        path: path.to_owned(),
        correlation_id: id.to_string(),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.remove(header::CONTENT_LENGTH);
    *response.body_mut() = Body::from(bytes);
}

fn is_error(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                *k,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        map
    }

    #[test]
    fn request_id_wins_over_traceparent() {
        let h = headers(&[
            ("x-request-id", "abc-123"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ]);
        assert_eq!(CorrelationId::from_headers(&h).as_str(), "abc-123");
    }

    #[test]
    fn traceparent_gives_the_trace_id() {
        let h = headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]);
        assert_eq!(
            CorrelationId::from_headers(&h).as_str(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn invalid_inputs_generate_a_fresh_id() {
        let long = "x".repeat(129);
        for h in [
            headers(&[("x-request-id", long.as_str())]),
            headers(&[(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )]),
            headers(&[("traceparent", "garbage")]),
            HeaderMap::new(),
        ] {
            let id = CorrelationId::from_headers(&h);
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok(), "{id}");
        }
    }
}
