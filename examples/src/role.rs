//! [`Role`]: which parts of the service one process runs.

/// Which parts of the service a process runs (`serve --role`, [`crate::OrchestratorBuilder::role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Role {
    /// HTTP API and workers in one process (the default).
    #[default]
    All,
    /// Only the HTTP API (receiver, query and admin endpoints).
    Api,
    /// Only the task workers and the background services (the scheduled cleanup, ...); its
    /// HTTP server answers only `/health`, `/health/live` and `/metrics`.
    Worker,
}

impl Role {
    /// Whether this role serves the HTTP API.
    pub fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }

    /// Whether this role runs task workers.
    pub fn runs_workers(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }

    /// The role's name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
}
