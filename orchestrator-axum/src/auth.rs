//! Bearer-token authentication of the administrative API (`/api/v1/*` except the receiver).
//!
//! The token is compared in constant time. Without a configured token the API is locked
//! (every request is 401) rather than open: the earlier implementation's admin endpoints had
//! no authentication at all.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// Whether `candidate` is the configured admin token (constant time); false when none is
/// configured.
pub(crate) fn token_matches(state: &AppState, candidate: &str) -> bool {
    state
        .config()
        .admin_token
        .as_ref()
        .is_some_and(|expected| bool::from(candidate.as_bytes().ct_eq(expected.as_bytes())))
}

/// Whether `headers` carry `Authorization: Bearer <admin token>`.
pub(crate) fn is_authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && token_matches(state, token.trim())
}

/// The 401 answer, with the `WWW-Authenticate` challenge.
pub(crate) fn unauthorized() -> Response {
    let mut response = ApiError::Unauthorized.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Middleware: refuses requests without the admin token.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if is_authorized(&state, req.headers()) {
        next.run(req).await
    } else {
        tracing::warn!("request without a valid bearer token");
        unauthorized()
    }
}
