//! Logs, metrics and traces: `LOG_LEVEL`, `LOG_FORMAT`, `ENABLE_METRICS`, `ENABLE_TRACING`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (alias `JAEGER_ENDPOINT`).

use super::Config;
use super::read::Reader;
use crate::telemetry::LogFormat;

pub(super) fn read(r: &mut Reader<'_>, c: &mut Config) {
    let t = &mut c.telemetry;
    t.otlp_endpoint = match (
        r.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        r.get("JAEGER_ENDPOINT"),
    ) {
        (Some(u), _) => r.url("OTEL_EXPORTER_OTLP_ENDPOINT", &u),
        (None, Some(u)) => r.url("JAEGER_ENDPOINT", &u),
        (None, None) => None,
    };
    if let Some(level) = r.get("LOG_LEVEL") {
        t.log_level = level.to_ascii_lowercase();
    }
    if tracing_subscriber::EnvFilter::try_new(&t.log_level).is_err() {
        r.problem(
            "LOG_LEVEL",
            format!(
                "{:?} is not a level (error, warn, info, debug, trace) or filter",
                t.log_level
            ),
        );
    }
    t.log_format = r.choice(
        "LOG_FORMAT",
        t.log_format,
        &[("json", LogFormat::Json), ("text", LogFormat::Text)],
    );
    c.enable_metrics = r.bool("ENABLE_METRICS", c.enable_metrics);
    t.enable_tracing = r.bool("ENABLE_TRACING", t.enable_tracing);
}
