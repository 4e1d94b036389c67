//! Reading a request body under a size limit and the body budget, without ever buffering more
//! than either allows.
//!
//! A declared `Content-Length` over the limit is refused (413) before a byte is read. The bytes
//! are reserved in the process-wide [`BodyBudget`] before they are read: the declared length at
//! once, or a first chunk for a body of unknown length and then more as it grows; a reservation
//! the budget cannot give is a 503 with `Retry-After`. The body is read frame by frame into one
//! buffer (no second copy), stopping at `limit + 1` bytes whatever the `Content-Length` said (a
//! chunked body or a lying header changes nothing). The whole read has a deadline, so a client
//! that stalls its upload cannot hold the request open.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::BodyExt;

use crate::budget::{BodyBudget, Reservation};
use crate::error::ApiError;

/// What a body of unknown length reserves before its first byte is read.
const FIRST_CHUNK: usize = 16 * 1024;

/// Reads `body`, refusing more than `limit` bytes with 413, a body the `budget` cannot hold
/// with 503 and a body still incomplete after `timeout` with 408. The bytes come with their
/// reservation in `budget`: hold it as long as the bytes are in use.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
    budget: &BodyBudget,
) -> Result<(Bytes, Reservation), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let first = declared.map_or(FIRST_CHUNK, |len| len as usize).min(limit);
    let reservation = budget.reserve(first).ok_or(ApiError::overloaded())?;
    let read = tokio::time::timeout(timeout, read_frames(body, limit, first, reservation)).await;
    read.unwrap_or(Err(ApiError::RequestTimeout))
}

async fn read_frames(
    mut body: Body,
    limit: usize,
    capacity: usize,
    mut reservation: Reservation,
) -> Result<(Bytes, Reservation), ApiError> {
    let mut buf: Vec<u8> = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            tracing::warn!(error = %err, "could not read the request body");
            ApiError::BadRequest("could not read the request body".into())
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let needed = buf.len() + data.len();
        if needed > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        if needed > buf.capacity() {
            // Grow geometrically (bounded by the limit), paying for it first.
            let target = needed.max(buf.capacity() * 2).min(limit);
            if !reservation.grow_to(target) {
                return Err(ApiError::overloaded());
            }
            buf.reserve_exact(target - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok((Bytes::from(buf), reservation))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures::{StreamExt, stream};
    use http::HeaderValue;

    const SECOND: Duration = Duration::from_secs(1);

    fn budget() -> BodyBudget {
        BodyBudget::new(1 << 20)
    }

    fn chunked(chunks: usize, size: usize) -> Body {
        let items =
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; size])));
        Body::from_stream(stream::iter(items))
    }

    #[tokio::test]
    async fn a_body_at_the_limit_is_read_whole() {
        let (bytes, _held) =
            read_limited(&HeaderMap::new(), chunked(4, 25), 100, SECOND, &budget())
                .await
                .unwrap();
        assert_eq!(bytes.len(), 100);
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_refused() {
        let err = read_limited(&HeaderMap::new(), chunked(5, 25), 100, SECOND, &budget())
            .await
            .unwrap_err();
        assert_eq!(err, ApiError::PayloadTooLarge { limit: 100 });
    }

    #[tokio::test]
    async fn a_small_content_length_does_not_lift_the_limit() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        let err = read_limited(&headers, chunked(5, 25), 100, SECOND, &budget())
            .await
            .unwrap_err();
        assert_eq!(err, ApiError::PayloadTooLarge { limit: 100 });
    }

    #[tokio::test]
    async fn a_large_content_length_is_refused_before_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("101"));
        let err = read_limited(&headers, Body::empty(), 100, SECOND, &budget())
            .await
            .unwrap_err();
        assert_eq!(err, ApiError::PayloadTooLarge { limit: 100 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_refused_with_408_when_the_deadline_passes() {
        // One chunk arrives, then the client goes quiet for good.
        let first = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{\"a\":"))]);
        let stalled = first.chain(stream::pending());
        let err = read_limited(
            &HeaderMap::new(),
            Body::from_stream(stalled),
            100,
            SECOND,
            &budget(),
        )
        .await
        .unwrap_err();
        assert_eq!(err, ApiError::RequestTimeout);
        assert_eq!(err.status(), http::StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn a_spent_budget_refuses_with_503_before_reading() {
        let budget = BodyBudget::new(150);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("100"));
        let held = read_limited(&headers, chunked(4, 25), 100, SECOND, &budget)
            .await
            .unwrap();
        assert_eq!(budget.in_use(), 100);
        // A body that must not be read: polling it would panic.
        let untouched = Body::from_stream(stream::poll_fn(
            |_| -> std::task::Poll<Option<Result<Bytes, std::io::Error>>> {
                panic!("the body was read")
            },
        ));
        let err = read_limited(&headers, untouched, 100, SECOND, &budget)
            .await
            .unwrap_err();
        assert_eq!(err, ApiError::overloaded());
        assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        assert_eq!(budget.in_use(), 0);
        read_limited(&headers, chunked(4, 25), 100, SECOND, &budget)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_chunked_body_grows_its_reservation_and_is_refused_when_it_cannot() {
        // A first chunk of 16 KiB, then 32 KiB.
        let budget = BodyBudget::new(40_000);
        let (bytes, held) = read_limited(
            &HeaderMap::new(),
            chunked(100, 250),
            100_000,
            SECOND,
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(bytes.len(), 25_000);
        assert_eq!(budget.in_use(), 32 * 1024);
        drop((bytes, held));
        // The first chunk fits, the growth does not.
        let other = budget.reserve(20_000).unwrap();
        let err = read_limited(
            &HeaderMap::new(),
            chunked(100, 250),
            100_000,
            SECOND,
            &budget,
        )
        .await
        .unwrap_err();
        assert_eq!(err, ApiError::overloaded());
        drop(other);
        assert_eq!(
            budget.in_use(),
            0,
            "a refused body gives its reservation back"
        );
    }
}
