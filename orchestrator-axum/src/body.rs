//! Reading a request body under a size limit, without ever buffering more than the limit.
//!
//! A declared `Content-Length` over the limit is refused before a byte is read; the body is then
//! read through [`http_body_util::Limited`], which stops at `limit + 1` bytes whatever the
//! `Content-Length` said (a chunked body or a lying header changes nothing). The whole read has
//! a deadline, so a client that stalls its upload cannot hold the request open.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ApiError;

/// Reads `body`, refusing more than `limit` bytes with 413 and a body still incomplete after
/// `timeout` with 408.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let read = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    let Ok(read) = read else {
        return Err(ApiError::RequestTimeout);
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if is_length_error(err.as_ref()) => Err(ApiError::PayloadTooLarge { limit }),
        Err(err) => {
            tracing::warn!(error = %err, "could not read the request body");
            Err(ApiError::BadRequest(
                "could not read the request body".into(),
            ))
        }
    }
}

fn is_length_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures::{StreamExt, stream};
    use http::HeaderValue;

    const SECOND: Duration = Duration::from_secs(1);

    fn chunked(chunks: usize, size: usize) -> Body {
        let items =
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; size])));
        Body::from_stream(stream::iter(items))
    }

    #[tokio::test]
    async fn a_body_at_the_limit_is_read_whole() {
        let bytes = read_limited(&HeaderMap::new(), chunked(4, 25), 100, SECOND)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 100);
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_refused() {
        let err = read_limited(&HeaderMap::new(), chunked(5, 25), 100, SECOND)
            .await
            .unwrap_err();
        assert_eq!(err, ApiError::PayloadTooLarge { limit: 100 });
    }

    #[tokio::test]
    async fn a_small_content_length_does_not_lift_the_limit() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        let err = read_limited(&headers, chunked(5, 25), 100, SECOND)
            .await
            .unwrap_err();
        assert_eq!(err, ApiError::PayloadTooLarge { limit: 100 });
    }

    #[tokio::test]
    async fn a_large_content_length_is_refused_before_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("101"));
        let err = read_limited(&headers, Body::empty(), 100, SECOND)
            .await
            .unwrap_err();
        assert_eq!(err, ApiError::PayloadTooLarge { limit: 100 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_refused_with_408_when_the_deadline_passes() {
        // One chunk arrives, then the client goes quiet for good.
        let first = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{\"a\":"))]);
        let stalled = first.chain(stream::pending());
        let err = read_limited(&HeaderMap::new(), Body::from_stream(stalled), 100, SECOND)
            .await
            .unwrap_err();
        assert_eq!(err, ApiError::RequestTimeout);
        assert_eq!(err.status(), http::StatusCode::REQUEST_TIMEOUT);
    }
}
