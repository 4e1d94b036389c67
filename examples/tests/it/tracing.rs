//! Traces: with an OTLP endpoint set, the request and the task executions it caused are
//! exported as spans of one trace.

use std::time::Duration;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

/// Whether an exported `Span` message with `trace_id` is named `name`: a span is encoded as
/// field 1 (trace id, 16 bytes), field 2 (span id), optional trace state and parent span id,
/// then field 5 (name).
fn has_span(bodies: &[Vec<u8>], trace_id: &[u8], name: &str) -> bool {
    let mut prefix = vec![0x0a, 0x10];
    prefix.extend_from_slice(trace_id);
    bodies.iter().any(|body| {
        body.windows(prefix.len()).enumerate().any(|(i, w)| {
            w == prefix.as_slice() && span_name(&body[i + prefix.len()..]) == Some(name.as_bytes())
        })
    })
}

/// The name field of a span message, read after its trace id.
fn span_name(mut rest: &[u8]) -> Option<&[u8]> {
    loop {
        let (&tag, tail) = rest.split_first()?;
        let (&len, tail) = tail.split_first()?;
        let len = usize::from(len);
        match tag {
            // span id, trace state, parent span id: skip (short fields, one-byte lengths).
            0x12 | 0x1a | 0x22 if len < 128 => rest = tail.get(len..)?,
            // the name
            0x2a if len < 128 => return tail.get(..len),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn task_executions_continue_the_trace_of_their_delivery() {
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let db = TestDb::sqlite();
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let endpoint = collector.uri();
    let mut server = Server::start(
        &db,
        &github,
        &codegen,
        "all",
        &[("JAEGER_ENDPOINT", endpoint.as_str())],
    )
    .await;

    let body = corpus("pull_request/opened.payload.json");
    let signature = orchestrator_server::send::sign(SECRET.as_bytes(), &body);
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/github", server.base))
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // The correlation id of a traced request is its trace id.
    let trace_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(trace_id.len(), 32, "{trace_id}");
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();

    server
        .wait_for(
            "the codegen_trigger to complete",
            Duration::from_secs(60),
            |tasks| {
                task_of(tasks, "codegen_trigger")
                    .filter(|t| t["status"] == "completed")
                    .map(|_| ())
            },
        )
        .await;
    assert!(server.terminate().success(), "{}", server.logs());

    let bodies: Vec<Vec<u8>> = collector
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert!(!bodies.is_empty(), "no spans were exported");
    assert!(
        has_span(&bodies, &trace_bytes, "http.request"),
        "the request span is missing"
    );
    assert!(
        has_span(&bodies, &trace_bytes, "task.execute"),
        "no task execution continued the delivery's trace"
    );
}
