//! Request plumbing shared by both clients: URL building, `Retry-After`, and the mapping of
//! transport failures and HTTP statuses onto the core's error kinds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_core::breaker::CircuitBreaker;
use orchestrator_core::error::{ClientError, ClientErrorKind};
use reqwest::header::HeaderMap;
use url::Url;

use crate::config::Timeouts;
use crate::error::Error;

/// A reqwest client with bounded connect and total time, no redirects across hosts.
pub(crate) fn build_client(user_agent: &str, timeouts: Timeouts) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        // A redirect could carry the Authorization header to another host; API calls never need one.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(Error::HttpClient)
}

/// Checks that `base` can take path segments, and makes it end with `/` so joins keep its path
/// (GitHub Enterprise roots are `https://host/api/v3`).
pub(crate) fn normalize_base(mut base: Url) -> Result<Url, Error> {
    if base.cannot_be_a_base() {
        return Err(Error::InvalidBaseUrl(base.to_string()));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

/// `base` + `segments`, each percent-encoded as one path segment.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A request that got no response (connect failure, timeout, broken body): retryable.
pub(crate) fn transport_error(service: &str, what: &str, err: reqwest::Error) -> ClientError {
    let cause = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    ClientError::new(
        ClientErrorKind::Retryable { retry_after: None },
        None,
        format!("{service} {what}: request {cause}"),
    )
    .with_source(err)
}

/// Reads the `message` of an error body, shortened, for error messages (bodies never carry
/// our credentials).
pub(crate) fn error_message(body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    let mut short: String = message.chars().take(200).collect();
    if message.chars().count() > 200 {
        short.push_str("...");
    }
    short
}

/// A failed call's error once the breaker has counted the failure. When the breaker is open
/// now (this failure reached the threshold, or it was the half-open probe), the dependency is
/// judged down rather than the task at fault: a retryable error becomes `CircuitOpen`, so the
/// task waits for the breaker like the calls it refuses, without using an attempt. Otherwise
/// (and for every other kind) `err` is returned as it is.
pub(crate) fn judged(breaker: &CircuitBreaker, err: ClientError) -> ClientError {
    match (err.kind(), breaker.open_for()) {
        (ClientErrorKind::Retryable { retry_after }, Some(open_for)) => ClientError::new(
            ClientErrorKind::CircuitOpen {
                retry_after: open_for.max(retry_after.unwrap_or_default()),
            },
            err.status(),
            format!("{err} (the {} circuit breaker is open now)", breaker.name()),
        ),
        _ => err,
    }
}

/// Whether the dependency looks unhealthy, which is what a breaker counts: 5xx and 429.
pub(crate) fn counts_against_breaker(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Permission from a breaker to make one call. Whatever happens to the call, the breaker hears
/// about it: [`success`](Self::success) / [`failure`](Self::failure), and a permit dropped
/// without either (the call's future was cancelled) counts as a failure, so a half-open probe
/// can never stay "in flight" forever.
pub(crate) struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    reported: bool,
}

impl<'a> BreakerPermit<'a> {
    /// Asks `breaker`; `CircuitOpen` (nothing sent) when it refuses.
    pub(crate) fn acquire(breaker: &'a CircuitBreaker) -> Result<Self, ClientError> {
        breaker.acquire().map_err(|open| {
            ClientError::new(
                ClientErrorKind::CircuitOpen {
                    retry_after: open.retry_after,
                },
                None,
                format!("{} circuit breaker is open; nothing sent", breaker.name()),
            )
        })?;
        Ok(Self {
            breaker,
            reported: false,
        })
    }

    /// The dependency answered sanely.
    pub(crate) fn success(mut self) {
        self.reported = true;
        self.breaker.on_success();
    }

    /// The dependency looks unhealthy.
    pub(crate) fn failure(mut self) {
        self.reported = true;
        self.breaker.on_failure();
    }

    /// Reports by HTTP status: 5xx and 429 are failures, everything else a healthy answer.
    pub(crate) fn status(self, status: u16) {
        if counts_against_breaker(status) {
            self.failure()
        } else {
            self.success()
        }
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.on_failure();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_the_base_path_and_encodes_segments() {
        let base = normalize_base(Url::parse("https://ghe.example/api/v3").unwrap()).unwrap();
        let url = endpoint(&base, &["repos", "o", "a b", "pulls"]);
        assert_eq!(
            url.as_str(),
            "https://ghe.example/api/v3/repos/o/a%20b/pulls"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = (now + chrono::Duration::seconds(90)).to_rfc2822();
        h.insert("retry-after", later.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(90)));
    }

    #[test]
    fn error_message_prefers_the_json_message() {
        assert_eq!(
            error_message(r#"{"message":"Not Found","status_code":404}"#),
            "Not Found"
        );
        assert_eq!(error_message("plain"), "plain");
        assert_eq!(error_message(&"x".repeat(300)).len(), 203);
    }
}
