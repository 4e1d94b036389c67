//! The `orchestrator-server` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use orchestrator_server::cli::{Cli, Command};
use orchestrator_server::{Config, Purpose};
use orchestrator_server::{Orchestrator, ServerError, send, shutdown, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("orchestrator-server: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, ServerError> {
    match cli.command() {
        Command::Serve { role } => {
            let builder = Orchestrator::builder().role(role).from_env()?;
            let telemetry = telemetry::init(&builder.current_config().telemetry)?;
            let addr = builder.current_config().bind_addr;
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                ServerError::Usage(format!("cannot listen on BIND_ADDR {addr}: {e}"))
            })?;
            let served = match builder.build().await {
                Ok(orchestrator) => orchestrator.serve(listener, shutdown::signal()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &served {
                tracing::error!(error = %e, "server stopped with an error");
            }
            telemetry.shutdown();
            served.map(|()| ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let config = Config::from_env(Purpose::Migrate)?;
            let _telemetry = telemetry::init(&config.telemetry)?;
            orchestrator_server::migrate(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Send(args) => {
            let config = Config::from_env(Purpose::Send)?;
            let result = send::send(&config, &args).await?;
            println!(
                "delivery {} -> HTTP {}\n{}",
                result.delivery_id, result.status, result.body
            );
            Ok(if (200..300).contains(&result.status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Recover(args) => {
            let config = Config::from_env(Purpose::Probe)?;
            let base = args
                .url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.bind_addr));
            let token = std::env::var("ADMIN_TOKEN")
                .or_else(|_| std::env::var("SECRET_KEY"))
                .ok();
            let result =
                orchestrator_server::recover::recover(&base, token.as_deref(), &args).await?;
            println!("HTTP {}\n{}", result.status, result.body);
            Ok(if (200..300).contains(&result.status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Probe => {
            let config = Config::from_env(Purpose::Probe)?;
            Ok(if send::probe(config.bind_addr).await {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
