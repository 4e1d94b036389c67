//! Logs and traces: a `tracing` subscriber writing JSON or text lines, and, when an OTLP
//! endpoint is configured, an OpenTelemetry layer exporting spans over OTLP/HTTP (protobuf).
//!
//! Trace context crosses the queue as a W3C `traceparent` string: the receiver stores the
//! current one with the tasks it creates ([`current_traceparent`]), and the worker opens each
//! execution's span as a child of it ([`task_span`]), so one trace runs from a delivery to the
//! last task it caused, across processes. Secrets never reach a log line: the configuration's
//! `Debug` redacts them and no span records a header or a token.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use orchestrator_core::task::Task;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use reqwest::Url;

use crate::error::ServerError;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (for log aggregation).
    Json,
    /// Human-readable lines.
    Text,
}

/// Logs and traces (`LOG_LEVEL`, `LOG_FORMAT`, `ENABLE_TRACING`, `OTEL_EXPORTER_OTLP_ENDPOINT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// An `EnvFilter` directive such as `info` or `orchestrator=debug,info` (default `info`).
    pub log_level: String,
    /// Default: text on a terminal, else JSON.
    pub log_format: LogFormat,
    /// Whether spans are exported when an endpoint is set (default true).
    pub enable_tracing: bool,
    /// The OTLP/HTTP collector's base URL; spans go to `/v1/traces`.
    pub otlp_endpoint: Option<Url>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_level: "info".to_owned(),
            log_format: if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                LogFormat::Text
            } else {
                LogFormat::Json
            },
            enable_tracing: true,
            otlp_endpoint: None,
        }
    }
}

impl TelemetryConfig {
    /// Whether spans are exported (tracing on and an endpoint set).
    pub fn exporting(&self) -> bool {
        self.enable_tracing && self.otlp_endpoint.is_some()
    }
}

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes the spans still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("trace exporter shutdown: {e}");
        }
    }
}

/// Installs the global subscriber (once per process; a second call is an error).
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, ServerError> {
    let filter = EnvFilter::try_new(&config.log_level)
        .map_err(|e| ServerError::Usage(format!("LOG_LEVEL: {e}")))?;
    let provider = match (&config.otlp_endpoint, config.enable_tracing) {
        (Some(endpoint), true) => Some(otlp_provider(endpoint.as_str())?),
        _ => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("orchestrator-server")));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    installed.map_err(|e| ServerError::Usage(format!("logging already initialised: {e}")))?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(Telemetry { provider })
}

/// An OTLP/HTTP exporter batched on the Tokio runtime (the exporter's HTTP client is async).
fn otlp_provider(endpoint: &str) -> Result<SdkTracerProvider, ServerError> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};

    let endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(reqwest::Client::new())
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| ServerError::Usage(format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}")))?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("webhook-orchestrator")
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

/// The W3C `traceparent` of the current span, when it belongs to a sampled trace.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The W3C `traceparent` of `span`, when it belongs to a trace.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// The span one execution of `task` runs in, continuing the trace stored with the task.
pub fn task_span(task: &Task) -> tracing::Span {
    let span = tracing::info_span!(
        "task.execute",
        task_id = %task.task_id,
        task_type = %task.task_type.as_str(),
        event_id = task.webhook_event_id,
        repository = task.repository.as_deref(),
        attempt = task.attempts,
    );
    if let Some(parent) = &task.trace_context {
        let carrier = HashMap::from([("traceparent".to_owned(), parent.clone())]);
        let cx = TraceContextPropagator::new().extract(&carrier);
        // Without an OpenTelemetry layer there is nothing to attach to; the span still logs.
        let _ = span.set_parent(cx);
    }
    span
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn a_task_span_continues_the_trace_of_the_delivery() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let delivery = tracing::info_span!("webhook.receive");
            let parent = traceparent_of(&delivery).expect("a traceparent");
            assert!(parent.starts_with("00-") && parent.len() == 55, "{parent}");

            let task = Task {
                trace_context: Some(parent.clone()),
                ..sample_task()
            };
            let span = task_span(&task);
            let trace_of = |s: &tracing::Span| s.context().span().span_context().trace_id();
            assert_eq!(trace_of(&span), trace_of(&delivery));
            assert_ne!(traceparent_of(&span), Some(parent));
        });
    }

    fn sample_task() -> Task {
        let now = chrono::Utc::now();
        Task {
            id: 1,
            task_id: uuid::Uuid::new_v4(),
            webhook_event_id: Some(1),
            parent_task_id: None,
            task_type: orchestrator_core::task::TaskType::PULL_REQUEST_ANALYSIS,
            status: orchestrator_core::task::TaskStatus::Running,
            priority: 0,
            repository: Some("o/r".into()),
            pr_number: Some(1),
            branch: None,
            commit_sha: None,
            config: serde_json::json!({}),
            input_data: serde_json::json!({}),
            output_data: None,
            started_at: None,
            completed_at: None,
            error_message: None,
            retry_count: 0,
            max_retries: 3,
            attempts: 1,
            codegen_task_id: None,
            codegen_task_url: None,
            run_at: now,
            lease_owner: None,
            lease_expires_at: None,
            trace_context: None,
            created_at: now,
            updated_at: now,
            superseded_by: None,
        }
    }

    #[test]
    fn without_a_tracer_there_is_no_traceparent() {
        assert_eq!(traceparent_of(&tracing::info_span!("x")), None);
    }
}
