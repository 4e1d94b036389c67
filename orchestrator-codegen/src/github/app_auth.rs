//! GitHub App authentication: an RS256 JWT (issuer = App id, valid ~10 minutes) proves the App;
//! `POST /app/installations/{id}/access_tokens` exchanges it for an installation token (valid one
//! hour), cached per installation until shortly before it expires. The HTTP exchange itself lives
//! in the client, so it goes through the same breaker, quota and metrics as every other call.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orchestrator_core::error::{ClientError, ClientErrorKind};
use serde::{Deserialize, Serialize};

use crate::config::{GitHubAppConfig, Secret};
use crate::error::Error;

/// Renew a cached installation token this long before GitHub says it expires.
const RENEW_BEFORE: Duration = Duration::minutes(5);

/// The JWT claims GitHub expects.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AppClaims {
    /// Issued at: 60 s in the past, to allow for clock drift.
    pub(crate) iat: i64,
    /// Expiry: 9 minutes ahead (GitHub allows at most 10).
    pub(crate) exp: i64,
    /// The App id.
    pub(crate) iss: String,
}

/// Answer of the token exchange. `Debug` leaves the token out.
#[derive(Deserialize)]
pub(crate) struct InstallationToken {
    pub(crate) token: String,
    pub(crate) expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationToken")
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

struct Cached {
    token: Secret,
    expires_at: DateTime<Utc>,
}

/// Signs App JWTs and caches installation tokens.
pub(crate) struct AppAuth {
    app_id: u64,
    key: EncodingKey,
    cache: Mutex<HashMap<i64, Cached>>,
}

impl std::fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppAuth")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl AppAuth {
    /// Parses the App's private key.
    pub(crate) fn new(config: &GitHubAppConfig) -> Result<Self, Error> {
        let key = EncodingKey::from_rsa_pem(config.private_key_pem.expose().as_bytes())
            .map_err(Error::InvalidAppKey)?;
        Ok(Self {
            app_id: config.app_id,
            key,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// A JWT for App-level calls, valid from a minute ago for nine minutes.
    pub(crate) fn jwt(&self, now: DateTime<Utc>) -> Result<Secret, ClientError> {
        let claims = AppClaims {
            iat: (now - Duration::seconds(60)).timestamp(),
            exp: (now + Duration::minutes(9)).timestamp(),
            iss: self.app_id.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map(Secret::new)
            .map_err(|e| {
                ClientError::new(
                    ClientErrorKind::NotConfigured,
                    None,
                    "could not sign the GitHub App JWT",
                )
                .with_source(e)
            })
    }

    /// The cached token of `installation`, unless it is about to expire.
    pub(crate) fn cached(&self, installation: i64, now: DateTime<Utc>) -> Option<Secret> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&installation)
            .filter(|c| now + RENEW_BEFORE < c.expires_at)
            .map(|c| c.token.clone())
    }

    /// Caches a freshly exchanged token.
    pub(crate) fn store(&self, installation: i64, token: InstallationToken) -> Secret {
        let secret = Secret::new(token.token);
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            installation,
            Cached {
                token: secret.clone(),
                expires_at: token.expires_at,
            },
        );
        secret
    }

    /// Forgets a token GitHub refused (revoked, App uninstalled).
    pub(crate) fn invalidate(&self, installation: i64) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&installation);
    }

    /// Any installation with a cached, still valid token (for `/rate_limit` without a task).
    pub(crate) fn any_cached(&self, now: DateTime<Utc>) -> Option<(i64, Secret)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .iter()
            .filter(|(_, c)| now + RENEW_BEFORE < c.expires_at)
            .min_by_key(|(id, _)| **id)
            .map(|(id, c)| (*id, c.token.clone()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_installation_token_never_shows_in_debug_output() {
        let token: InstallationToken = serde_json::from_str(
            r#"{"token":"ghs_secretinstallationtoken","expires_at":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains("ghs_secret"), "{shown}");
        assert!(shown.contains("2030"), "{shown}");
    }
}
