//! Reading and validating the variables: [`Config::from_lookup`].

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;

use super::*;

/// The longest duration any variable may give: 100 years.
const MAX_SECONDS: u64 = 100 * 365 * 24 * 3600;

/// Reads variables and collects problems.
pub(super) struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
}

impl Reader<'_> {
    /// A set, non-blank value (surrounding whitespace removed).
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn problem(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            variable,
            message: message.into(),
        });
    }

    fn parse<T: FromStr>(&mut self, name: &'static str, default: T, what: &str) -> T {
        match self.get(name) {
            None => default,
            Some(v) => match v.parse() {
                Ok(t) => t,
                Err(_) => {
                    self.problem(name, format!("{v:?} is not {what}"));
                    default
                }
            },
        }
    }

    fn bool(&mut self, name: &'static str, default: bool) -> bool {
        match self.get(name).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => true,
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => false,
            Some(v) => {
                self.problem(name, format!("{v:?} is not a boolean (true/false)"));
                default
            }
        }
    }

    /// A duration in whole `unit`-second steps, at most [`MAX_SECONDS`] (larger values would
    /// overflow timers and date arithmetic later and panic at run time).
    fn duration(&mut self, name: &'static str, default: u64, unit: u64, what: &str) -> Duration {
        let value: u64 = self.parse(name, default, what);
        match value.checked_mul(unit).filter(|s| *s <= MAX_SECONDS) {
            Some(secs) => Duration::from_secs(secs),
            None => {
                self.problem(name, "too large: at most 100 years");
                Duration::from_secs(default.saturating_mul(unit).min(MAX_SECONDS))
            }
        }
    }

    pub(super) fn secs(&mut self, name: &'static str, default: u64) -> Duration {
        self.duration(name, default, 1, "a whole number of seconds")
    }

    fn url(&mut self, name: &'static str, value: &str) -> Option<Url> {
        match Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(u) => {
                self.problem(
                    name,
                    format!("scheme {:?} is not http or https", u.scheme()),
                );
                None
            }
            Err(e) => {
                self.problem(name, format!("not a URL ({e})"));
                None
            }
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(purpose: Purpose) -> Result<Self, ConfigError> {
        Self::from_lookup(purpose, &|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` and validates them for `purpose`.
    pub fn from_lookup(
        purpose: Purpose,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
        };
        let needs_secret = matches!(
            purpose,
            Purpose::Serve(Role::All | Role::Api) | Purpose::Send
        );

        let database_url = r
            .get("DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            r.problem(
                "DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }

        let mut webhook_secrets = Vec::new();
        match r.get("GITHUB_WEBHOOK_SECRET") {
            Some(s) => webhook_secrets.push(Secret(s)),
            None if needs_secret => r.problem(
                "GITHUB_WEBHOOK_SECRET",
                "required: the secret configured on the GitHub webhook (every delivery is verified with it)",
            ),
            None => {}
        }
        if let Some(s) = r.get("GITHUB_WEBHOOK_SECRET_PREVIOUS") {
            webhook_secrets.push(Secret(s));
        }

        let codegen = match (r.get("CODEGEN_TOKEN"), r.get("CODEGEN_ORG_ID")) {
            (Some(token), Some(org)) => match org.parse::<u64>() {
                Ok(org_id) => Some(CodegenCredentials {
                    token: Secret(token),
                    org_id,
                }),
                Err(_) => {
                    r.problem(
                        "CODEGEN_ORG_ID",
                        format!("{org:?} is not a numeric organization id"),
                    );
                    None
                }
            },
            (Some(_), None) => {
                r.problem("CODEGEN_ORG_ID", "required when CODEGEN_TOKEN is set");
                None
            }
            (None, Some(_)) => {
                r.problem("CODEGEN_TOKEN", "required when CODEGEN_ORG_ID is set");
                None
            }
            (None, None) => None,
        };

        let secret_key = r.get("SECRET_KEY").map(Secret);
        let admin_token = r.get("ADMIN_TOKEN").map(Secret);
        for (name, value) in [("ADMIN_TOKEN", &admin_token), ("SECRET_KEY", &secret_key)] {
            if value.as_ref().is_some_and(|s| s.0.len() < 16) {
                r.problem(name, "too short: use at least 16 characters");
            }
        }

        let redis_url = match (r.get("REDIS_URL"), r.get("CELERY_BROKER_URL")) {
            (Some(a), Some(b)) if a != b => {
                r.problem(
                    "CELERY_BROKER_URL",
                    "differs from REDIS_URL; set only one (they are aliases)",
                );
                None
            }
            (Some(a), _) | (None, Some(a)) => Some(a),
            (None, None) => None,
        };
        if let Some(u) = &redis_url
            && !(u.starts_with("redis://") || u.starts_with("rediss://"))
        {
            let name = if r.get("REDIS_URL").is_some() {
                "REDIS_URL"
            } else {
                "CELERY_BROKER_URL"
            };
            r.problem(name, "must start with redis:// or rediss://");
        }

        let github_token = r.get("GITHUB_TOKEN").map(Secret);
        let github_app = match (r.get("GITHUB_APP_ID"), r.get("GITHUB_APP_PRIVATE_KEY")) {
            (Some(id), Some(key)) => {
                let app_id = id.parse::<u64>().ok();
                if app_id.is_none() {
                    r.problem("GITHUB_APP_ID", format!("{id:?} is not a numeric app id"));
                }
                let pem = if key.contains("-----BEGIN") {
                    Some(key.replace("\\n", "\n"))
                } else {
                    match std::fs::read_to_string(&key) {
                        Ok(pem) if pem.contains("-----BEGIN") => Some(pem),
                        Ok(_) => {
                            r.problem(
                                "GITHUB_APP_PRIVATE_KEY",
                                "the file named holds no PEM private key",
                            );
                            None
                        }
                        Err(_) => {
                            r.problem(
                                "GITHUB_APP_PRIVATE_KEY",
                                "neither a PEM private key nor the path of a readable key file",
                            );
                            None
                        }
                    }
                };
                app_id.zip(pem).map(|(app_id, pem)| GitHubApp {
                    app_id,
                    private_key: Secret(pem),
                })
            }
            (Some(_), None) => {
                r.problem(
                    "GITHUB_APP_PRIVATE_KEY",
                    "required when GITHUB_APP_ID is set",
                );
                None
            }
            (None, Some(_)) => {
                r.problem(
                    "GITHUB_APP_ID",
                    "required when GITHUB_APP_PRIVATE_KEY is set",
                );
                None
            }
            (None, None) => None,
        };

        let github_api_url = r
            .get("GITHUB_API_URL")
            .unwrap_or_else(|| DEFAULT_GITHUB_API_URL.into());
        let github_api_url = r.url("GITHUB_API_URL", &github_api_url);
        let codegen_api_url = r
            .get("CODEGEN_API_URL")
            .unwrap_or_else(|| DEFAULT_CODEGEN_API_URL.into());
        let codegen_api_url = r.url("CODEGEN_API_URL", &codegen_api_url);
        let otlp_endpoint = match (
            r.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            r.get("JAEGER_ENDPOINT"),
        ) {
            (Some(u), _) => r.url("OTEL_EXPORTER_OTLP_ENDPOINT", &u),
            (None, Some(u)) => r.url("JAEGER_ENDPOINT", &u),
            (None, None) => None,
        };

        let log_level = r
            .get("LOG_LEVEL")
            .unwrap_or_else(|| "info".into())
            .to_ascii_lowercase();
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            r.problem(
                "LOG_LEVEL",
                format!("{log_level:?} is not a level (error, warn, info, debug, trace) or filter"),
            );
        }
        let log_format = match r
            .get("LOG_FORMAT")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None => {
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    LogFormat::Text
                } else {
                    LogFormat::Json
                }
            }
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                r.problem("LOG_FORMAT", format!("{other:?} is neither json nor text"));
                LogFormat::Json
            }
        };
        let enable_metrics = r.bool("ENABLE_METRICS", true);
        let enable_tracing = r.bool("ENABLE_TRACING", true);
        let default_bind = SocketAddr::from(([127, 0, 0, 1], 8080));
        let bind_addr = r.parse(
            "BIND_ADDR",
            default_bind,
            "a socket address such as 0.0.0.0:8080",
        );
        let max_payload_bytes = r.parse("MAX_PAYLOAD_BYTES", 1024 * 1024, "a size in bytes");
        if max_payload_bytes == 0 {
            r.problem("MAX_PAYLOAD_BYTES", "must be greater than 0");
        }
        let webhook_rate_limit = RateLimit {
            per_period: r.parse(
                "RATE_LIMIT_WEBHOOK_PER_SECOND",
                10,
                "a whole number (0 turns the limit off)",
            ),
            burst: r.parse("RATE_LIMIT_WEBHOOK_BURST", 20, "a whole number"),
        };
        let api_rate_limit = RateLimit {
            per_period: r.parse(
                "RATE_LIMIT_API_PER_MINUTE",
                100,
                "a whole number (0 turns the limit off)",
            ),
            burst: r.parse("RATE_LIMIT_API_BURST", 50, "a whole number"),
        };
        for (name, limit) in [
            ("RATE_LIMIT_WEBHOOK_BURST", webhook_rate_limit),
            ("RATE_LIMIT_API_BURST", api_rate_limit),
        ] {
            if limit.enabled() && limit.burst == 0 {
                r.problem(name, "must be at least 1 while the limit is on");
            }
        }
        let retry_max_retries = r.parse("RETRY_MAX_RETRIES", 3, "a whole number");
        let retry_base_delay = r.secs("RETRY_BASE_DELAY_SECONDS", 1);
        let retry_max_delay = r.secs("RETRY_MAX_DELAY_SECONDS", 300);
        if retry_max_delay < retry_base_delay {
            r.problem(
                "RETRY_MAX_DELAY_SECONDS",
                "must not be less than RETRY_BASE_DELAY_SECONDS",
            );
        }
        let breaker_failure_threshold =
            r.parse("CIRCUIT_BREAKER_FAILURE_THRESHOLD", 5, "a whole number");
        if breaker_failure_threshold == 0 {
            r.problem("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "must be at least 1");
        }
        let breaker_recovery = r.secs("CIRCUIT_BREAKER_RECOVERY_SECONDS", 30);
        let worker_concurrency = r.parse("WORKER_CONCURRENCY", 4, "a whole number");
        if worker_concurrency == 0 && matches!(purpose, Purpose::Serve(Role::All | Role::Worker)) {
            r.problem(
                "WORKER_CONCURRENCY",
                "must be at least 1 for a process that runs workers",
            );
        }
        let shutdown_grace = r.secs("SHUTDOWN_GRACE_SECONDS", 20);
        let cleanup_interval = r.secs("CLEANUP_INTERVAL_SECONDS", 3600);
        let day = 24 * 3600;
        let retention_events =
            r.duration("RETENTION_EVENTS_DAYS", 7, day, "a whole number of days");
        let retention_tasks = r.duration("RETENTION_TASKS_DAYS", 7, day, "a whole number of days");
        let database_max_connections = r.parse("DATABASE_MAX_CONNECTIONS", 10, "a whole number");
        if database_max_connections == 0 {
            r.problem("DATABASE_MAX_CONNECTIONS", "must be at least 1");
        }

        let sqlite_synchronous_full = match r
            .get("SQLITE_SYNCHRONOUS")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("full") => true,
            Some("normal") => false,
            Some(other) => {
                r.problem(
                    "SQLITE_SYNCHRONOUS",
                    format!("{other:?} is neither full nor normal"),
                );
                true
            }
        };
        let worker_lease = r.secs("WORKER_LEASE_SECONDS", 60);
        if worker_lease < Duration::from_secs(1) {
            r.problem("WORKER_LEASE_SECONDS", "must be at least 1");
        }
        let duplicate_conflict = match r.get("DUPLICATE_DELIVERY_STATUS").as_deref() {
            None | Some("409") => true,
            Some("200") => false,
            Some(other) => {
                r.problem(
                    "DUPLICATE_DELIVERY_STATUS",
                    format!("{other:?} is neither 409 nor 200"),
                );
                true
            }
        };
        let trusted_proxy_header = r
            .get("TRUSTED_PROXY_HEADER")
            .map(|h| h.to_ascii_lowercase());
        if let Some(h) = &trusted_proxy_header
            && http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            r.problem(
                "TRUSTED_PROXY_HEADER",
                format!("{h:?} is not a header name"),
            );
        }
        let metrics_require_token = r.bool("METRICS_REQUIRE_TOKEN", false);
        let durable_queue_writes = r.bool("DATABASE_DURABLE_QUEUE_WRITES", false);
        let sqlite_compress_payloads = r.bool("SQLITE_COMPRESS_PAYLOADS", true);
        let ingest_batch_max = r.parse(
            "INGEST_BATCH_MAX",
            64,
            "a whole number (0 turns group commit off)",
        );
        let redis_key_prefix = r
            .get("REDIS_KEY_PREFIX")
            .unwrap_or_else(|| "orchestrator".into());
        if redis_key_prefix.contains(|c: char| c.is_whitespace() || "{}".contains(c)) {
            r.problem("REDIS_KEY_PREFIX", "must contain no spaces or braces");
        }
        let redis_queue = RedisQueueSettings::read(&mut r);
        let codegen_poll = r.secs("CODEGEN_POLL_SECONDS", 30);
        if codegen_poll < Duration::from_secs(1) {
            r.problem("CODEGEN_POLL_SECONDS", "must be at least 1");
        }

        match (r.problems.is_empty(), github_api_url, codegen_api_url) {
            (true, Some(github_api_url), Some(codegen_api_url)) => Ok(Config {
                database_url: Secret(database_url),
                webhook_secrets,
                codegen,
                secret_key,
                admin_token,
                redis_url: redis_url.map(Secret),
                github_token,
                github_app,
                github_api_url,
                codegen_api_url,
                otlp_endpoint,
                log_level,
                log_format,
                enable_metrics,
                enable_tracing,
                bind_addr,
                max_payload_bytes,
                webhook_rate_limit,
                api_rate_limit,
                retry_max_retries,
                retry_base_delay,
                retry_max_delay,
                breaker_failure_threshold,
                breaker_recovery,
                worker_concurrency,
                shutdown_grace,
                cleanup_interval,
                retention_events,
                retention_tasks,
                database_max_connections,
                sqlite_synchronous_full,
                worker_lease,
                duplicate_conflict,
                trusted_proxy_header,
                metrics_require_token,
                durable_queue_writes,
                sqlite_compress_payloads,
                ingest_batch_max,
                redis_key_prefix,
                redis_queue,
                codegen_poll,
            }),
            _ => Err(ConfigError {
                problems: r.problems,
            }),
        }
    }

    /// The admin endpoints' bearer token: `ADMIN_TOKEN`, else `SECRET_KEY`.
    pub fn effective_admin_token(&self) -> Option<&Secret> {
        self.admin_token.as_ref().or(self.secret_key.as_ref())
    }

    /// Whether the database is SQLite (the embedded default).
    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose().starts_with("sqlite:")
    }
}
