//! What the handlers' annotations cannot say alone: the error answers every operation shares
//! (each with the error body), the links that lead from a list to its items and from an item
//! to its actions, so a stateful client (or API fuzzer) reaches the detail routes with real ids,
//! and the request bodies' cross-field rules (no unknown keys; a bulk filter has a criterion or
//! `"all": true` alone; `action` needs `event_type`), so that every body the document allows is
//! one the server accepts. Not expressible in JSON Schema, and only said in the descriptions:
//! a time range's start must be before its end (and a recovery window cannot end in the
//! future).

use orchestrator_core::task::TaskType;
use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder};

/// Adds the shared error answers to every operation and the links between operations.
pub(super) fn refine(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for operation in [&mut item.get, &mut item.post, &mut item.delete]
            .into_iter()
            .flatten()
        {
            shared_errors(path, operation);
        }
    }
    for (from, status, name, to, parameter, expression) in LINKS {
        let Some(operation) = find(doc, from) else {
            continue;
        };
        let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
            continue;
        };
        // utoipa 5.5 serializes `Link::operation_id` as "operation_id" (its `Link` lacks the
        // camelCase renaming), which no OpenAPI tool reads: the field goes out as "operationId"
        // through the flattened extensions map instead.
        let link = LinkBuilder::new()
            .parameter(*parameter, *expression)
            .extensions(Some(Extensions::from_iter([("operationId", *to)])))
            .build();
        response.links.insert((*name).to_owned(), RefOr::T(link));
    }
    body_rules(doc);
    optional_bodies(doc);
}

/// Pause and resume take no body (everything) or a [`PauseRequest`] object, never `null`:
/// utoipa writes an optional body as `oneOf: [null, ...]`, which would invite a `null` that the
/// server refuses. The body stays optional (`required: false`), its schema the object alone.
///
/// [`PauseRequest`]: crate::routes::pause
fn optional_bodies(doc: &mut OpenApi) {
    for operation_id in ["pause", "resume"] {
        let Some(body) = find(doc, operation_id).and_then(|o| o.request_body.as_mut()) else {
            continue;
        };
        body.required = Some(Required::False);
        for content in body.content.values_mut() {
            content.schema = Some(RefOr::Ref(Ref::from_schema_name("PauseRequest")));
        }
    }
}

/// The criteria of a retry filter (`RetryFilterDto`).
const RETRY_CRITERIA: &[&str] = &[
    "status",
    "task_type",
    "event_type",
    "action",
    "repository",
    "pr_number",
    "error_contains",
    "created_after",
    "created_before",
    "superseded",
];

/// The criteria of a reprocess filter (`ReprocessFilterDto`).
const REPROCESS_CRITERIA: &[&str] = &[
    "event_type",
    "action",
    "repository",
    "pr_number",
    "error_contains",
    "created_after",
    "created_before",
];

/// A bulk filter: at least one criterion (and `all` absent or false), or `"all": true` with
/// no criterion (only the flags beside it); `action` only with `event_type`.
fn filter_rules(criteria: &[&str], flags: &[&str]) -> Value {
    let one_criterion: Vec<Value> = criteria.iter().map(|c| json!({"required": [c]})).collect();
    json!([
        {"anyOf": [
            {
                "required": ["all"],
                "properties": {"all": {"const": true}},
                "propertyNames": {"enum": flags},
            },
            {
                "anyOf": one_criterion,
                "properties": {"all": {"const": false}},
            },
        ]},
        {"anyOf": [
            {"not": {"required": ["action"]}},
            {"required": ["event_type"]},
        ]},
    ])
}

/// Request bodies: unknown keys refused everywhere, the bulk filters' cross-field rules, the
/// pause scope's and recovery hooks' syntax.
fn body_rules(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let rules = [
        (
            "RetryFilterDto",
            Some(filter_rules(RETRY_CRITERIA, &["all", "dry_run"])),
        ),
        (
            "ReprocessFilterDto",
            Some(filter_rules(
                REPROCESS_CRITERIA,
                &["all", "dry_run", "force"],
            )),
        ),
        ("PauseRequest", None),
        ("RecoverRequest", None),
    ];
    for (name, all_of) in rules {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) else {
            continue;
        };
        object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        if let Some(all_of) = all_of {
            object
                .extensions
                .get_or_insert_with(Extensions::default)
                .merge(Extensions::from_iter([("allOf", all_of)]));
        }
    }
}

/// (from operation, status, link name, to operation, parameter, runtime expression).
const LINKS: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "receive_webhook",
        "200",
        "GetEvent",
        "get_event",
        "event_id",
        "$response.body#/result/event_id",
    ),
    (
        "list_events",
        "200",
        "GetEvent",
        "get_event",
        "event_id",
        "$response.body#/0/id",
    ),
    (
        "list_events",
        "200",
        "ReprocessEvent",
        "reprocess_event",
        "event_id",
        "$response.body#/0/id",
    ),
    (
        "get_event",
        "200",
        "ReprocessEvent",
        "reprocess_event",
        "event_id",
        "$response.body#/id",
    ),
    (
        "reprocess_event",
        "200",
        "GetEvent",
        "get_event",
        "event_id",
        "$response.body#/event_id",
    ),
    (
        "list_tasks",
        "200",
        "GetTask",
        "get_task",
        "task_id",
        "$response.body#/0/task_id",
    ),
    (
        "list_tasks",
        "200",
        "RetryTask",
        "retry_task",
        "task_id",
        "$response.body#/0/task_id",
    ),
    (
        "get_task",
        "200",
        "RetryTask",
        "retry_task",
        "task_id",
        "$response.body#/task_id",
    ),
    (
        "retry_task",
        "200",
        "GetTask",
        "get_task",
        "task_id",
        "$response.body#/task_id",
    ),
    (
        "get_task",
        "200",
        "CancelTask",
        "cancel_task",
        "task_id",
        "$response.body#/task_id",
    ),
    (
        "cancel_task",
        "200",
        "GetTask",
        "get_task",
        "task_id",
        "$response.body#/task_id",
    ),
];

fn find<'a>(doc: &'a mut OpenApi, operation_id: &str) -> Option<&'a mut Operation> {
    doc.paths
        .paths
        .values_mut()
        .flat_map(|item| [&mut item.get, &mut item.post])
        .flatten()
        .find(|op| op.operation_id.as_deref() == Some(operation_id))
}

/// Every `/api/v1/*` operation can be refused by the rate limit (429) and fail in the store
/// (503, 500); a protected one without the token answers 401.
fn shared_errors(path: &str, operation: &mut Operation) {
    if !path.starts_with("/api/v1/") {
        return;
    }
    let protected = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(error_response(description)));
    };
    if protected {
        add("401", "Missing or invalid bearer token");
    }
    add("429", "Rate limited (with `Retry-After`)");
    add("500", "Unexpected failure (logged with the correlation id)");
    add("503", "The store cannot answer now");
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The pause scope's `task_type` as the enumeration of `known` (the types this server's handlers
/// serve; any other is refused).
pub(super) fn pausable_task_types(doc: &mut OpenApi, known: &[TaskType]) {
    let Some(RefOr::T(Schema::Object(scope))) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("PauseRequest"))
    else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(task_type))) = scope.properties.get_mut("task_type") {
        task_type.enum_values = Some(known.iter().map(|t| json!(t.as_str())).collect());
    }
}
