//! The outbound clients: GitHub and Codegen, each behind its own circuit breaker, and the
//! breaker set that `/health` and `/metrics` show.

use std::sync::Arc;

use orchestrator_codegen::{CodegenClient, GitHubClient};
use orchestrator_core::breaker::BreakerSet;
use orchestrator_core::clock::Clock;
use orchestrator_core::observe::Observer;

use crate::config::Config;
use crate::error::ServerError;

/// The two clients and their breakers.
pub(crate) struct Clients {
    pub(crate) github: Arc<GitHubClient>,
    pub(crate) codegen: Arc<CodegenClient>,
    pub(crate) breakers: BreakerSet,
}

/// Builds both clients from the configuration; warns once when Codegen runs will be skipped.
pub(crate) fn build(
    config: &Config,
    clock: &Arc<dyn Clock>,
    observer: &Arc<dyn Observer>,
) -> Result<Clients, ServerError> {
    let github = GitHubClient::new(config.github.clone(), clock.clone(), observer.clone())
        .map_err(|e| ServerError::Usage(format!("GitHub client: {e}")))?;
    let codegen = CodegenClient::new(config.codegen.clone(), clock.clone(), observer.clone())
        .map_err(|e| ServerError::Usage(format!("Codegen client: {e}")))?;
    if config.codegen.token.is_none() || config.codegen.org_id.is_none() {
        tracing::warn!(
            "CODEGEN_TOKEN and CODEGEN_ORG_ID are not set: Codegen runs are skipped (codegen_trigger tasks complete with status \"skipped\")"
        );
    }
    let breakers = BreakerSet::new();
    breakers.add(github.breaker());
    breakers.add(codegen.breaker());
    Ok(Clients {
        github: Arc::new(github),
        codegen: Arc::new(codegen),
        breakers,
    })
}
