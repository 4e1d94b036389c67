//! The command line: `serve` (the default), `migrate`, `send`, `probe` and `recover`.
//!
//! Everything else is configured through the environment ([`Config`](crate::Config)); the command line
//! only says what this process does.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::role::Role;

/// GitHub webhook orchestrator: receives, stores and processes GitHub deliveries.
#[derive(Debug, Parser)]
#[command(name = "orchestrator-server", version, about)]
pub struct Cli {
    /// What to do (default: `serve --role all`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// A subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the service: the HTTP API, the workers, or both.
    Serve {
        /// `api` and `worker` processes scale separately; `all` runs both in one process.
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Applies the database migrations and exits.
    Migrate,
    /// Signs a payload file with GITHUB_WEBHOOK_SECRET and posts it like GitHub would.
    Send(SendArgs),
    /// Asks this host's server for `/health`; exits 0 when it answers 200 (container health checks).
    Probe,
    /// Asks the running server to reconcile with GitHub's delivery log
    /// (`POST /api/v1/admin/recover` with ADMIN_TOKEN); prints the run, or with `--wait` its end.
    Recover(RecoverArgs),
}

/// Arguments of `recover` (each optional: the server's configuration decides the rest).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RecoverArgs {
    /// Window start (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Window end (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// A hook (`app`, `repo:OWNER/NAME:HOOK_ID`, `org:ORG:HOOK_ID`); repeat for several.
    #[arg(long = "hook")]
    pub hooks: Vec<String>,
    /// `fetch` or `redeliver`.
    #[arg(long)]
    pub mode: Option<String>,
    /// List the missing deliveries, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait for the run to end and print it.
    #[arg(long)]
    pub wait: bool,
    /// The server's base URL; default: http://BIND_ADDR.
    #[arg(long)]
    pub url: Option<String>,
}

/// Arguments of `send`.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// The JSON payload file (its bytes are signed and sent unchanged).
    pub file: PathBuf,
    /// `X-GitHub-Event`; default: the name of the file's folder (the corpus layout).
    #[arg(long)]
    pub event: Option<String>,
    /// The receiver URL; default: http://BIND_ADDR/api/v1/webhooks/github.
    #[arg(long)]
    pub url: Option<String>,
    /// `X-GitHub-Delivery`; default: a fresh UUID (reuse one to test duplicate handling).
    #[arg(long)]
    pub delivery_id: Option<String>,
}

impl Cli {
    /// The command, with `serve --role all` when none was given.
    pub fn command(&self) -> Command {
        match &self.command {
            Some(Command::Serve { role }) => Command::Serve { role: *role },
            Some(Command::Migrate) => Command::Migrate,
            Some(Command::Send(args)) => Command::Send(args.clone()),
            Some(Command::Probe) => Command::Probe,
            Some(Command::Recover(args)) => Command::Recover(args.clone()),
            None => Command::Serve { role: Role::All },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("orchestrator-server").chain(args.iter().copied()))
            .unwrap()
            .command()
    }

    #[test]
    fn no_subcommand_serves_everything() {
        assert!(matches!(parse(&[]), Command::Serve { role: Role::All }));
    }

    #[test]
    fn roles_are_chosen_on_the_command_line() {
        assert!(matches!(
            parse(&["serve", "--role", "api"]),
            Command::Serve { role: Role::Api }
        ));
        assert!(matches!(
            parse(&["serve", "--role", "worker"]),
            Command::Serve { role: Role::Worker }
        ));
        assert!(Cli::try_parse_from(["x", "serve", "--role", "both"]).is_err());
    }

    #[test]
    fn send_takes_a_file_and_optional_overrides() {
        let Command::Send(a) = parse(&["send", "p.json", "--event", "push", "--delivery-id", "d1"])
        else {
            panic!("not send")
        };
        assert_eq!(a.file, PathBuf::from("p.json"));
        assert_eq!(a.event.as_deref(), Some("push"));
        assert_eq!(a.delivery_id.as_deref(), Some("d1"));
        assert!(matches!(parse(&["migrate"]), Command::Migrate));
        let Command::Recover(r) = parse(&[
            "recover",
            "--hook",
            "app",
            "--hook",
            "org:o:1",
            "--dry-run",
            "--since",
            "2026-11-30T00:00:00Z",
        ]) else {
            panic!("not recover")
        };
        assert_eq!(r.hooks, ["app", "org:o:1"]);
        assert!(r.dry_run && !r.wait);
        assert_eq!(r.since.as_deref(), Some("2026-11-30T00:00:00Z"));
    }
}
