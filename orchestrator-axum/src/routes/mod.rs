//! The handlers, one file per group of the spec's endpoints, and what they share.

pub(crate) mod admin;
pub(crate) mod cancel;
pub(crate) mod events;
pub(crate) mod operations;
pub(crate) mod pause;
pub(crate) mod recovery;
pub(crate) mod system;
pub(crate) mod tasks;
pub(crate) mod webhook;

use axum::extract::rejection::QueryRejection;
use orchestrator_core::store::Page;

use crate::error::ApiError;

/// Largest `limit` of a list request.
pub(crate) const MAX_LIMIT: i64 = 1000;

/// Validates `limit` (1..=1000, default 50) and `offset` (>= 0, default 0).
pub(crate) fn page(limit: Option<i64>, offset: Option<i64>) -> Result<Page, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    let offset = offset.unwrap_or(0);
    let offset = u64::try_from(offset)
        .map_err(|_| ApiError::BadRequest(format!("offset must be 0 or more, got {offset}")))?;
    let limit = u32::try_from(limit).map_err(|_| ApiError::BadRequest("invalid limit".into()))?;
    Ok(Page { limit, offset })
}

/// A query string that does not parse (`limit=abc`) is a 400 with the error body.
pub(crate) fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}

/// The answer for routes that do not exist.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_offsets_are_validated() {
        assert_eq!(
            page(None, None),
            Ok(Page {
                limit: 50,
                offset: 0
            })
        );
        assert_eq!(
            page(Some(1000), Some(7)),
            Ok(Page {
                limit: 1000,
                offset: 7
            })
        );
        for (limit, offset) in [
            (Some(0), None),
            (Some(1001), None),
            (Some(-1), None),
            (None, Some(-1)),
        ] {
            assert!(matches!(page(limit, offset), Err(ApiError::BadRequest(_))));
        }
    }
}
