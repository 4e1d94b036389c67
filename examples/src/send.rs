//! `send`: signs a payload file and posts it the way GitHub does, so a deployment can be tested
//! without GitHub.
//!
//! The file's bytes are sent unchanged (the signature covers the raw body) with
//! `X-Hub-Signature-256`, `X-GitHub-Event`, a fresh `X-GitHub-Delivery` and GitHub's user agent.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::cli::SendArgs;
use crate::config::Config;
use crate::error::ServerError;

/// `sha256=<hex>` of `body` under `secret`, as in `X-Hub-Signature-256`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC would be refused anyway.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// The event name of a corpus file: its folder's name (`.../pull_request/opened.payload.json`).
pub fn event_from_path(path: &Path) -> Option<String> {
    let dir = path.parent()?.file_name()?.to_str()?;
    let valid = !dir.is_empty() && dir.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    valid.then(|| dir.to_owned())
}

/// What the receiver answered.
#[derive(Debug, Clone)]
pub struct SendResult {
    /// The delivery id sent.
    pub delivery_id: String,
    /// HTTP status.
    pub status: u16,
    /// Response body.
    pub body: String,
}

/// Signs and posts `args.file`.
pub async fn send(config: &Config, args: &SendArgs) -> Result<SendResult, ServerError> {
    let body = std::fs::read(&args.file)
        .map_err(|e| ServerError::Usage(format!("cannot read {}: {e}", args.file.display())))?;
    let event = match args.event.clone().or_else(|| event_from_path(&args.file)) {
        Some(e) => e,
        None => {
            return Err(ServerError::Usage(
                "cannot tell the event type from the path: pass --event".into(),
            ));
        }
    };
    let secret = config
        .webhook_secrets
        .first()
        .ok_or_else(|| ServerError::Usage("GITHUB_WEBHOOK_SECRET is not set".into()))?;
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}/api/v1/webhooks/github", config.bind_addr));
    let delivery_id = args
        .delivery_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let signature = sign(secret.expose().as_bytes(), &body);
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/orchestrator-send")
        .header("x-github-event", &event)
        .header("x-github-delivery", &delivery_id)
        .header("x-github-hook-id", "0")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| ServerError::Usage(format!("cannot post to {url}: {e}")))?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Ok(SendResult {
        delivery_id,
        status,
        body,
    })
}

/// Whether the server on `bind_addr` (a wildcard address means this host) answers `/health`
/// with 200 within five seconds.
pub async fn probe(bind_addr: std::net::SocketAddr) -> bool {
    let mut addr = bind_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    matches!(client.get(format!("http://{addr}/health")).send().await, Ok(r) if r.status().is_success())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn signs_githubs_documented_vector() {
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn signs_every_sha256_vector_of_the_corpus() {
        let dir = crate::corpus_dir();
        let tsv = std::fs::read_to_string(dir.join("signature-vectors.tsv")).unwrap();
        let mut checked = 0;
        for line in tsv.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            let Some(expected) = cols
                .get(2)
                .and_then(|c| c.strip_prefix("X-Hub-Signature-256: "))
            else {
                continue;
            };
            let body = match cols[1].split_once(':') {
                Some(("literal", text)) => text.as_bytes().to_vec(),
                Some(("file", path)) => std::fs::read(dir.join(path)).unwrap(),
                _ => continue,
            };
            assert_eq!(sign(cols[0].as_bytes(), &body), expected, "{line}");
            checked += 1;
        }
        assert!(checked >= 2, "only {checked} vectors checked");
    }

    #[test]
    fn the_event_comes_from_the_corpus_folder() {
        assert_eq!(
            event_from_path(Path::new(
                "corpus/github-payloads/pull_request/opened.payload.json"
            ))
            .as_deref(),
            Some("pull_request")
        );
        assert_eq!(event_from_path(Path::new("/tmp/My Files/x.json")), None);
    }
}
