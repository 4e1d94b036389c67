//! The crate's error: what can go wrong while building a client. Failures of calls are the
//! core's [`ClientError`](orchestrator_core::error::ClientError) (with the reqwest error as its
//! source), and handler failures the core's [`TaskError`](orchestrator_core::error::TaskError).

/// A client could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The GitHub App private key is not an RSA PEM key.
    #[error("invalid GitHub App private key: {0}")]
    InvalidAppKey(#[source] jsonwebtoken::errors::Error),
    /// The HTTP client could not be built (TLS set-up).
    #[error("could not build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The base URL cannot have paths appended (e.g. `mailto:`).
    #[error("base URL {0} cannot be used as an API root")]
    InvalidBaseUrl(String),
}
