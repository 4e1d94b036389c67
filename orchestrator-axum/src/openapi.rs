//! The machine-readable description of the whole API (`GET /api/v1/openapi.json`), generated
//! by `utoipa` from the handlers' annotations, then refined (`openapi/refine.rs`: the shared
//! error answers and the links between operations). A test checks it against the real routes;
//! CI runs Schemathesis against the real server with it (`.ci/schemathesis.sh`).

mod refine;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use axum::Json;
use axum::extract::State;

use crate::config::{ApiConfig, WEBHOOK_PATH};
use crate::dto;
use crate::routes::{admin, cancel, events, operations, pause, recovery, system, tasks, webhook};
use crate::state::AppState;

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Webhook Orchestrator API",
        description = "Receives GitHub webhooks, stores them with the tasks they cause, and exposes events, tasks, health and metrics."
    ),
    paths(
        webhook::receive,
        events::list,
        events::get,
        events::reprocess,
        tasks::list,
        tasks::get,
        tasks::retry,
        operations::retry,
        operations::reprocess,
        operations::list,
        operations::get,
        operations::cancel,
        cancel::cancel,
        admin::metrics,
        admin::stats,
        admin::cleanup,
        pause::pause,
        pause::resume,
        pause::list,
        recovery::start,
        recovery::list,
        recovery::get,
        system::health,
        system::prometheus,
        document,
    ),
    components(schemas(
        dto::ErrorBody,
        dto::AcceptedResponse,
        dto::AcceptedResult,
        dto::EventSummaryDto,
        dto::EventDetailDto,
        dto::TaskSummaryDto,
        dto::TaskDetailDto,
        dto::ExecutionDto,
        dto::ReprocessResponse,
        dto::RetryResponse,
        dto::MetricsSummary,
        dto::CleanupResponse,
        pause::PauseRequest,
        pause::PauseDto,
        pause::ResumeResponse,
        dto::AdminStats,
        dto::RecentActivity,
        dto::ErrorRates,
        dto::HealthResponse,
        dto::AgentBudgetHealth,
        dto::TaskStatusName,
        dto::RetryFilterDto,
        dto::ReprocessFilterDto,
        dto::DryRunResponse,
        dto::OperationDto,
        recovery::RecoverRequest,
        recovery::RecoverStarted,
        recovery::RecoveryRunDto,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "webhooks", description = "The GitHub webhook receiver"),
        (name = "events", description = "Stored deliveries"),
        (name = "tasks", description = "Workflow tasks"),
        (name = "operations", description = "Bulk retry and reprocess by filter, run in the background"),
        (name = "admin", description = "Figures and maintenance"),
        (name = "system", description = "Health, metrics, this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of every route of [`router`](crate::router) with the default
/// configuration.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    refine::refine(&mut doc);
    doc
}

/// The document as `config` serves it (the receiver may be at another path).
pub fn openapi_for(config: &ApiConfig) -> utoipa::openapi::OpenApi {
    let mut doc = openapi();
    if config.webhook_path != WEBHOOK_PATH
        && let Some(item) = doc.paths.paths.remove(WEBHOOK_PATH)
    {
        doc.paths.paths.insert(config.webhook_path.clone(), item);
    }
    doc
}

/// This API's OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi_document",
    tag = "system",
    security(("bearer" = [])),
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object), (status = 401, body = dto::ErrorBody))
)]
pub(crate) async fn document(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    let mut doc = openapi_for(state.config());
    if let Some((_, known)) = state.pauses() {
        refine::pausable_task_types(&mut doc, known);
    }
    Json(doc)
}
