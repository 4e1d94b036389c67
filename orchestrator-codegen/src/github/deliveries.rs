//! GitHub's webhook delivery log through [`GitHubClient`], for the core's recovery
//! ([`DeliveryLog`]).
//!
//! - The App's own hook (`/app/hook/deliveries`) is read with the App JWT (its own quota);
//!   repository and organization hooks with the token (a personal token, else a cached
//!   installation token).
//! - A listing is one page of `per_page=100`; the next page's `cursor` is read from the
//!   `Link: rel="next"` header (only the cursor value is taken, so no URL from an answer is
//!   ever followed with a credential).
//! - Every call goes through the client's quota floor, breaker and `Retry-After` pause, like the
//!   handlers' calls.

use async_trait::async_trait;
use orchestrator_core::error::{ClientError, ClientErrorKind};
use orchestrator_core::recovery::{
    DeliveryLog, DeliveryPage, DeliveryRequest, DeliverySummary, HookRef,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::client::{GitHubClient, decode, next_link};
use super::rate_limit::QuotaKey;
use crate::config::Secret;

/// The App JWT's quota (installation ids are positive, so 0 is free for it).
const APP_QUOTA: QuotaKey = Some(0);
/// GitHub's largest page of deliveries.
const PER_PAGE: &str = "100";

/// `GET .../deliveries/{id}`: the summary plus the request.
#[derive(Deserialize)]
struct WireDelivery {
    #[serde(flatten)]
    summary: DeliverySummary,
    request: WireRequest,
}

#[derive(Deserialize)]
struct WireRequest {
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    #[serde(default)]
    payload: Value,
}

impl GitHubClient {
    /// The credential and quota for calls on `hook`'s log.
    async fn hook_credential(
        &self,
        hook: &HookRef,
        endpoint: &str,
    ) -> Result<(QuotaKey, Option<Secret>), ClientError> {
        match hook {
            HookRef::App => match self.app_jwt() {
                Some(jwt) => Ok((APP_QUOTA, Some(jwt?))),
                None => Err(ClientError::new(
                    ClientErrorKind::Permanent,
                    None,
                    format!("GitHub {endpoint}: the app hook needs GitHub App credentials"),
                )),
            },
            _ => self.credential(None).await,
        }
    }

    async fn hook_call(
        &self,
        endpoint: &str,
        method: Method,
        hook: &HookRef,
        tail: &[&str],
        query: &[(&str, &str)],
    ) -> Result<super::client::Answer, ClientError> {
        let (key, auth) = self.hook_credential(hook, endpoint).await?;
        let base = hook.deliveries_path();
        let segments: Vec<&str> = base
            .iter()
            .map(String::as_str)
            .chain(tail.iter().copied())
            .collect();
        let mut url = self.url(&segments);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        self.send(endpoint, method, url, auth.as_ref(), key, None, None)
            .await
    }
}

#[async_trait]
impl DeliveryLog for GitHubClient {
    async fn list_deliveries(
        &self,
        hook: &HookRef,
        cursor: Option<&str>,
    ) -> Result<DeliveryPage, ClientError> {
        const ENDPOINT: &str = "hooks.deliveries";
        let mut query = vec![("per_page", PER_PAGE)];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        let answer = self
            .hook_call(ENDPOINT, Method::GET, hook, &[], &query)
            .await?;
        let deliveries: Vec<DeliverySummary> = decode(ENDPOINT, &answer.body)?;
        let next_cursor = next_link(&answer.headers).and_then(|next| {
            next.query_pairs()
                .find(|(name, _)| name == "cursor")
                .map(|(_, value)| value.into_owned())
                .filter(|value| !value.is_empty())
        });
        Ok(DeliveryPage {
            deliveries,
            next_cursor,
        })
    }

    async fn get_delivery(
        &self,
        hook: &HookRef,
        delivery_id: i64,
    ) -> Result<DeliveryRequest, ClientError> {
        const ENDPOINT: &str = "hooks.delivery";
        let id = delivery_id.to_string();
        let answer = self
            .hook_call(ENDPOINT, Method::GET, hook, &[&id], &[])
            .await?;
        let wire: WireDelivery = decode(ENDPOINT, &answer.body)?;
        let headers = wire
            .request
            .headers
            .into_iter()
            .filter_map(|(name, value)| match value {
                Value::String(v) => Some((name, v)),
                Value::Number(n) => Some((name, n.to_string())),
                _ => None,
            })
            .collect();
        Ok(DeliveryRequest {
            summary: wire.summary,
            headers,
            payload: wire.request.payload,
        })
    }

    async fn redeliver(&self, hook: &HookRef, delivery_id: i64) -> Result<(), ClientError> {
        const ENDPOINT: &str = "hooks.redeliver";
        let id = delivery_id.to_string();
        self.hook_call(ENDPOINT, Method::POST, hook, &[&id, "attempts"], &[])
            .await
            .map(|_| ())
    }
}
