//! The reporter (issue 17) as a background service: in the worker role (`all`, `worker`), one
//! [`Reporter::tick`] every `ReportConfig::interval`, through the GitHub client (its breaker,
//! quota floor and `Retry-After`). Several worker processes may run it: the store's lease lets
//! one report at a time. `REPORT_TO_GITHUB=off` (or no GitHub credentials) starts nothing.
//! [`with_report_rules`] adds the routing side: our own checks are never analysed, and their
//! buttons start work.

use async_trait::async_trait;
use orchestrator_core::report::{ReportConfig, ReportMode, Reporter};
use orchestrator_core::routing::{OwnChecks, ReportButtonsRule, Router};
use tokio_util::sync::CancellationToken;

use crate::background::BackgroundService;
use crate::components::Components;
use crate::config::Config;

/// `rules` ready for reporting: when reports go to GitHub, deliveries about our own checks reach
/// no analysis rule (no loop), and their buttons (Re-run, "Ask Codegen to fix") become tasks
/// ([`ReportButtonsRule`], unless the embedder replaced it).
pub(crate) fn with_report_rules(config: &Config, mut rules: Router) -> Router {
    if config.report_mode() == ReportMode::Off {
        return rules;
    }
    let own = OwnChecks {
        check_name: config.report.check_name.clone(),
        app_id: config.github.app.as_ref().map(|app| app.app_id),
    };
    rules.ignore_own_checks(own.clone());
    if !rules.rule_names().contains(&ReportButtonsRule::NAME) {
        rules.add(ReportButtonsRule { own });
    }
    rules
}

/// Sends task state to GitHub until shutdown.
#[derive(Debug, Clone)]
pub(crate) struct ReportService {
    config: ReportConfig,
}

impl ReportService {
    /// The service for `config`, or `None` when reporting is off.
    pub(crate) fn configured(config: &Config) -> Option<Self> {
        let mode = config.report_mode();
        if mode == ReportMode::Off {
            return None;
        }
        let mut report = config.report.clone();
        report.mode = mode;
        tracing::info!(
            mode = mode.as_str(),
            check_name = %report.check_name,
            pr_comment = report.pr_comment,
            "reporting back on pull requests"
        );
        Some(Self { config: report })
    }
}

#[async_trait]
impl BackgroundService for ReportService {
    fn name(&self) -> &str {
        "report"
    }

    async fn run(&self, components: Components, shutdown: CancellationToken) {
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7());
        let reporter = Reporter::new(
            components.reports().clone(),
            components.tasks().clone(),
            components.github().clone(),
            components.observer().clone(),
            self.config.clone(),
            holder,
        );
        let period = self
            .config
            .interval
            .max(std::time::Duration::from_millis(10));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            let now = components.clock().now();
            if let Err(e) = reporter.tick(now).await {
                tracing::warn!(error = %e, "reporting tick failed; trying again next tick");
            }
        }
    }
}
