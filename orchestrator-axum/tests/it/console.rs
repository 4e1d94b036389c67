//! The operator console (`/ui`, feature `console`) over HTTP: sign-in, the session cookie,
//! CSRF, security headers, escaping, cursor paging, actions and the cached overview. The
//! browser tests (examples/tests) drive the same screens in Chromium.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use orchestrator_axum::{ApiConfig, AppState, Metrics};
use orchestrator_core::clock::ManualClock;
use orchestrator_core::delivery::DeliveryLimits;
use orchestrator_core::memory::MemoryStore;
use serde_json::json;
use tower::ServiceExt;

use crate::utils::*;

/// A console (and the API beside it) over a fresh in-memory store.
struct Console {
    router: Router,
    clock: Arc<ManualClock>,
    api: TestApp,
}

impl Console {
    fn new() -> Self {
        Self::with_config(config())
    }

    fn with_config(config: ApiConfig) -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::default());
        let metrics = Arc::new(Metrics::new().unwrap());
        let ingest = ingestor(
            store.clone(),
            clock.clone(),
            metrics.clone(),
            DeliveryLimits::default(),
        );
        let log = Arc::new(orchestrator_core::recovery::memory::FakeDeliveryLog::new(
            100,
        ));
        let reconciler = orchestrator_core::recovery::Reconciler::new(
            log.clone(),
            store.clone(),
            ingest.clone(),
            clock.clone(),
            orchestrator_core::recovery::RecoveryConfig {
                hooks: "repo:octo/repo:42".parse().unwrap(),
                ..Default::default()
            },
        );
        let state = AppState::builder_for(ingest, store.clone(), clock.clone())
            .reconciler(Arc::new(reconciler))
            .config(config)
            .metrics(metrics.clone())
            .browse(store.clone())
            .cancel_store(store.clone())
            .operations(store.clone())
            .pause_store(
                store.clone(),
                orchestrator_core::task::TaskType::BUILT_IN.to_vec(),
            )
            .build();
        let router = orchestrator_axum::router(state.clone())
            .merge(orchestrator_axum::console::router(state.clone()));
        let api = TestApp {
            state,
            store,
            clock: clock.clone(),
            metrics,
            router: router.clone(),
            log,
        };
        Self { router, clock, api }
    }

    async fn send(&self, req: Request<Body>) -> axum::response::Response {
        self.router.clone().oneshot(req).await.unwrap()
    }

    /// Signs in with `token`; the session cookie when it worked.
    async fn sign_in(&self, token: &str) -> (StatusCode, Option<String>) {
        let resp = self
            .send(
                Request::post("/ui/login")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(format!("token={token}")))
                    .unwrap(),
            )
            .await;
        let cookie = resp
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("wo_console="));
        (resp.status(), cookie)
    }

    async fn session(&self) -> String {
        let (status, cookie) = self.sign_in(TOKEN).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let cookie = cookie.expect("a session cookie");
        cookie.split(';').next().unwrap().to_owned()
    }

    /// A signed-in GET: status, headers, HTML.
    async fn page(&self, cookie: &str, path: &str) -> (StatusCode, http::HeaderMap, String) {
        let resp = self
            .send(
                Request::get(path)
                    .header(header::COOKIE, cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let html = String::from_utf8(body_bytes(resp).await.to_vec()).unwrap();
        (status, headers, html)
    }

    /// A signed-in form POST: the response.
    async fn post(&self, cookie: &str, path: &str, form: &str) -> axum::response::Response {
        self.send(
            Request::post(path)
                .header(header::COOKIE, cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form.to_owned()))
                .unwrap(),
        )
        .await
    }
}

/// The CSRF token of the first action form of `html`.
fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

fn flash_cookie(resp: &axum::response::Response) -> String {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("wo_flash="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("a flash cookie")
}

#[tokio::test]
async fn sign_in_needs_the_admin_token_and_sets_a_strict_http_only_cookie() {
    let console = Console::new();
    let resp = console
        .send(Request::get("/ui").body(Body::empty()).unwrap())
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/ui/login");

    let (status, cookie) = console.sign_in("wrong-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none());

    let (status, cookie) = console.sign_in(TOKEN).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap();
    let (status, _, html) = console.page(session, "/ui").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Overview</h1>"), "{html}");

    // A forged or foreign cookie is no session.
    let (status, _, _) = console.page("wo_console=1.2.3", "/ui").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn without_a_token_the_console_is_locked() {
    let console = Console::with_config(ApiConfig::default());
    let resp = console
        .send(Request::get("/ui/login").body(Body::empty()).unwrap())
        .await;
    let html = String::from_utf8(body_bytes(resp).await.to_vec()).unwrap();
    assert!(html.contains("The console is locked"), "{html}");
    let (status, cookie) = console.sign_in("").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none());
}

#[tokio::test]
async fn every_answer_has_the_csp_and_no_framing_and_pages_carry_no_inline_script() {
    let console = Console::new();
    let cookie = console.session().await;
    for path in [
        "/ui/login",
        "/ui",
        "/ui/deliveries",
        "/ui/tasks",
        "/ui/assets/console.js",
    ] {
        let (_, headers, html) = console.page(&cookie, path).await;
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        if path != "/ui/assets/console.js" {
            assert!(!html.contains("<script>"), "{path}: inline script");
            assert!(!html.contains(" style=\""), "{path}: inline style");
        }
    }
}

#[tokio::test]
async fn a_hostile_pull_request_title_is_shown_as_text() {
    let console = Console::new();
    let mut payload: serde_json::Value = serde_json::from_slice(&pr_opened()).unwrap();
    payload["pull_request"]["title"] = json!("<img src=x onerror=alert(1)>");
    let body = serde_json::to_vec(&payload).unwrap();
    let accepted = console.api.accept("pull_request", &body).await;
    let event_id = accepted["result"]["event_id"].as_i64().unwrap();
    let cookie = console.session().await;
    let (_, _, list) = console.page(&cookie, "/ui/tasks").await;
    let (_, _, detail) = console
        .page(&cookie, &format!("/ui/deliveries/{event_id}"))
        .await;
    for html in [&list, &detail] {
        assert!(!html.contains("<img"), "unescaped: {html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
    }
}

#[tokio::test]
async fn deliveries_page_by_cursor_and_stay_stable_while_rows_arrive() {
    let console = Console::new();
    for _ in 0..5 {
        console
            .api
            .accept("ping", &payload("ping/payload.json"))
            .await;
        console.clock.advance(Duration::from_secs(1));
    }
    let cookie = console.session().await;
    let (status, _, first) = console.page(&cookie, "/ui/deliveries?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let ids = |html: &str| -> Vec<i64> {
        html.split("href=\"/ui/deliveries/")
            .skip(1)
            .filter_map(|s| s.split('"').next()?.parse().ok())
            .collect()
    };
    assert_eq!(ids(&first), vec![5, 4]);
    let next = first
        .split("rel=\"next\"")
        .next()
        .and_then(|s| s.rsplit("href=\"").next())
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .unwrap();
    // New deliveries arrive between the pages: the next page neither repeats nor skips a row.
    console
        .api
        .accept("ping", &payload("ping/payload.json"))
        .await;
    let (_, _, second) = console.page(&cookie, &next).await;
    assert_eq!(ids(&second), vec![3, 2], "{next}");

    let (status, _, bad) = console
        .page(&cookie, "/ui/deliveries?event_type=Bad!")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad.contains("is not an event name"), "{bad}");
}

#[tokio::test]
async fn retry_needs_the_csrf_token_and_shows_its_result() {
    let console = Console::new();
    console.api.accept("pull_request", &pr_opened()).await;
    let failed = console.api.fail_all_due().await;
    let task = failed[0];
    let cookie = console.session().await;
    let (_, _, html) = console.page(&cookie, &format!("/ui/tasks/{task}")).await;
    assert!(html.contains("data-confirm=\"Retry task"), "{html}");

    let resp = console
        .post(&cookie, &format!("/ui/tasks/{task}/retry"), "csrf=forged")
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (_, body) = console.api.get(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!(body["status"], "failed", "nothing changed");

    let form = format!("csrf={}", csrf(&html));
    let resp = console
        .post(&cookie, &format!("/ui/tasks/{task}/retry"), &form)
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let flash = flash_cookie(&resp);
    let (_, body) = console.api.get(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!(body["status"], "pending");
    let (_, _, shown) = console
        .page(&format!("{cookie}; {flash}"), &format!("/ui/tasks/{task}"))
        .await;
    assert!(shown.contains("is pending again"), "{shown}");

    // A second retry is refused by the API; the console shows the API's message.
    let resp = console
        .post(&cookie, &format!("/ui/tasks/{task}/retry"), &form)
        .await;
    let flash = flash_cookie(&resp);
    let (_, _, shown) = console
        .page(&format!("{cookie}; {flash}"), &format!("/ui/tasks/{task}"))
        .await;
    assert!(
        shown.contains("only failed or cancelled tasks can be retried"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_paused_task_is_shown_paused_and_cancelled_with_the_csrf_token() {
    let console = Console::new();
    let accepted = console.api.accept("pull_request", &pr_opened()).await;
    let task = accepted["result"]["task_id"].as_str().unwrap().to_owned();
    let (status, _) = console.api.post("/api/v1/admin/pause").await;
    assert_eq!(status, StatusCode::OK);
    let cookie = console.session().await;
    let (_, _, html) = console.page(&cookie, &format!("/ui/tasks/{task}")).await;
    assert!(html.contains("a pause holds this task"), "{html}");
    assert!(html.contains("data-confirm=\"Cancel task"), "{html}");

    let resp = console
        .post(&cookie, &format!("/ui/tasks/{task}/cancel"), "csrf=forged")
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (_, body) = console.api.get(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!(body["status"], "pending", "nothing changed");

    let form = format!("csrf={}", csrf(&html));
    let resp = console
        .post(&cookie, &format!("/ui/tasks/{task}/cancel"), &form)
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, body) = console.api.get(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!(body["status"], "cancelled");
    let flash = flash_cookie(&resp);
    let (_, _, shown) = console
        .page(&format!("{cookie}; {flash}"), &format!("/ui/tasks/{task}"))
        .await;
    assert!(shown.contains("is cancelled"), "{shown}");
    assert!(!shown.contains("a pause holds this task"), "{shown}");

    // A second cancel is refused by the API (the button is gone; a stale form still posts).
    let resp = console
        .post(&cookie, &format!("/ui/tasks/{task}/cancel"), &form)
        .await;
    let flash = flash_cookie(&resp);
    let (_, _, shown) = console
        .page(&format!("{cookie}; {flash}"), &format!("/ui/tasks/{task}"))
        .await;
    assert!(shown.contains("already cancelled"), "{shown}");

    // The tasks list filters by superseded: a cancelled task is not superseded.
    let (status, _, html) = console.page(&cookie, "/ui/tasks?superseded=no").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("/ui/tasks/{task}")), "{html}");
    let (_, _, html) = console.page(&cookie, "/ui/tasks?superseded=yes").await;
    assert!(!html.contains(&format!("/ui/tasks/{task}")), "{html}");
    // A bulk retry keeps that criterion: its preview counts the hand-cancelled task only.
    let (_, _, html) = console
        .page(&cookie, "/ui/tasks?status=cancelled&superseded=no")
        .await;
    assert!(
        html.contains("/ui/operations/retry?status=cancelled&amp;superseded=no"),
        "{html}"
    );
    let (_, _, preview) = console
        .page(
            &cookie,
            "/ui/operations/retry?status=cancelled&superseded=no",
        )
        .await;
    assert!(
        preview.contains("<strong>1</strong> failed or cancelled"),
        "{preview}"
    );
    let (_, _, preview) = console
        .page(
            &cookie,
            "/ui/operations/retry?status=cancelled&superseded=yes",
        )
        .await;
    assert!(
        preview.contains("<strong>0</strong> failed or cancelled"),
        "{preview}"
    );
    let (status, _, html) = console.page(&cookie, "/ui/tasks?superseded=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("superseded must be yes or no"), "{html}");
}

#[tokio::test]
async fn bulk_retry_previews_then_starts_an_operation_that_can_be_cancelled() {
    let console = Console::new();
    console.api.accept("pull_request", &pr_opened()).await;
    let failed = console.api.fail_all_due().await;
    let task = failed[0];
    let cookie = console.session().await;
    let (_, _, list) = console.page(&cookie, "/ui/tasks?status=failed").await;
    assert!(
        list.contains("/ui/operations/retry?status=failed"),
        "{list}"
    );

    // The preview is a dry run: the count and a sample, nothing changed.
    let (status, _, preview) = console
        .page(&cookie, "/ui/operations/retry?status=failed")
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(
        preview.contains("<strong>1</strong> failed or cancelled tasks match"),
        "{preview}"
    );
    assert!(preview.contains(&format!("/ui/tasks/{task}")), "{preview}");
    assert!(
        preview.contains("data-confirm=\"Retry 1 tasks?"),
        "{preview}"
    );
    let (_, ops) = console.api.get("/api/v1/operations").await;
    assert_eq!(ops.as_array().unwrap().len(), 0, "a dry run stores nothing");

    let resp = console
        .post(&cookie, "/ui/operations/retry", "csrf=forged&status=failed")
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let form = format!("csrf={}&status=failed", csrf(&preview));
    let resp = console.post(&cookie, "/ui/operations/retry", &form).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(to.starts_with("/ui/operations/"), "{to}");
    let flash = flash_cookie(&resp);
    let (_, ops) = console.api.get("/api/v1/operations").await;
    let op = &ops[0];
    assert_eq!(op["matched"], 1);
    assert_eq!(
        to,
        format!("/ui/operations/{}", op["operation_id"].as_str().unwrap())
    );
    let (_, _, page) = console.page(&format!("{cookie}; {flash}"), &to).await;
    assert!(page.contains("1 tasks to retry"), "{page}");
    assert!(
        page.contains("data-refresh=\"3\""),
        "refreshes while it runs: {page}"
    );
    let (_, _, list) = console.page(&cookie, "/ui/operations").await;
    assert!(list.contains(&to), "{list}");

    // Cancel it (no worker runs it here).
    let form = format!("csrf={}", csrf(&page));
    let resp = console.post(&cookie, &format!("{to}/cancel"), &form).await;
    let flash = flash_cookie(&resp);
    let (_, _, page) = console.page(&format!("{cookie}; {flash}"), &to).await;
    assert!(page.contains("is cancelled"), "{page}");
    assert!(page.contains("The operation has ended."), "{page}");
    let (_, body) = console.api.get(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!(body["status"], "failed", "cancelled before it ran");

    // No filter: the API refuses (nothing would be bounded); the preview says why.
    let (status, _, refused) = console.page(&cookie, "/ui/operations/retry").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
}

#[tokio::test]
async fn operations_pauses_and_recovery_runs_page_by_cursor() {
    let console = Console::new();
    let cookie = console.session().await;
    let (_, _, html) = console.page(&cookie, "/ui/pauses").await;
    let token = csrf(&html);
    for repo in ["octo%2Fa", "octo%2Fb", "octo%2Fc"] {
        let form = format!("csrf={token}&repository={repo}");
        let resp = console.post(&cookie, "/ui/pauses/pause", &form).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    }
    // Oldest first, two a page: a and b, then (after b) c, with a way back.
    let (status, _, first) = console.page(&cookie, "/ui/pauses?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        first.contains("octo/a") && first.contains("octo/b"),
        "{first}"
    );
    assert!(!first.contains("octo/c"), "{first}");
    let next = first
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with("/ui/pauses?after="))
        .expect("a next-page link")
        .replace("&amp;", "&");
    let (status, _, second) = console.page(&cookie, &next).await;
    assert_eq!(status, StatusCode::OK, "{next}: {second}");
    assert!(second.contains("octo/c"), "{second}");
    assert!(!second.contains("octo/a</td>"), "{second}");
    assert!(second.contains("← Newest"), "{second}");
    assert!(!second.contains("Older →"), "{second}");
    let (status, _, _) = console.page(&cookie, "/ui/pauses?after=junk").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Recovery runs: newest first, the page after the newest holds the older one.
    let form = format!("csrf={token}&dry_run=1");
    for _ in 0..2 {
        let resp = console.post(&cookie, "/ui/recovery", &form).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        wait_for_runs_to_end(&console).await;
    }
    let (_, runs) = console.api.get("/api/v1/admin/recover").await;
    let (newest, older) = (
        runs[0]["run_id"].as_str().unwrap(),
        runs[1]["run_id"].as_str().unwrap(),
    );
    let (_, _, html) = console.page(&cookie, "/ui/recovery?limit=1").await;
    assert!(html.contains(newest) && !html.contains(older), "{html}");
    assert!(
        html.contains(&format!("/ui/recovery?after={newest}&amp;limit=1")),
        "{html}"
    );
    let (_, _, html) = console
        .page(&cookie, &format!("/ui/recovery?after={newest}&limit=1"))
        .await;
    assert!(
        html.contains(older) && !html.contains(&format!(">{newest}<")),
        "{html}"
    );
    let (_, page) = console
        .api
        .get(&format!("/api/v1/admin/recover?before={newest}"))
        .await;
    assert_eq!(page.as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page[0]["run_id"], older);

    // Operations: the console's first page, no next page when all fit.
    let (status, _, html) = console.page(&cookie, "/ui/operations?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No operations yet."), "{html}");
    assert!(!html.contains("Older →"), "{html}");
}

/// Waits (at most 2 s) until no recovery run is pending or running.
async fn wait_for_runs_to_end(console: &Console) {
    for _ in 0..200 {
        let (_, runs) = console.api.get("/api/v1/admin/recover").await;
        let open = runs
            .as_array()
            .unwrap()
            .iter()
            .any(|r| matches!(r["status"].as_str(), Some("pending" | "running")));
        if !open {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a recovery run never ended");
}

#[tokio::test]
async fn pauses_are_listed_paused_and_resumed_from_the_console() {
    let console = Console::new();
    let cookie = console.session().await;
    let (status, _, html) = console.page(&cookie, "/ui/pauses").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Nothing is paused."), "{html}");
    let token = csrf(&html);

    let resp = console
        .post(
            &cookie,
            "/ui/pauses/pause",
            "csrf=forged&repository=octo%2Frepo",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (_, pauses) = console.api.get("/api/v1/admin/pauses").await;
    assert_eq!(pauses, json!([]), "nothing changed");

    let form = format!("csrf={token}&repository=octo%2Frepo&task_type=");
    let resp = console.post(&cookie, "/ui/pauses/pause", &form).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let flash = flash_cookie(&resp);
    let (_, pauses) = console.api.get("/api/v1/admin/pauses").await;
    assert_eq!(pauses[0]["repository"], "octo/repo");
    assert_eq!(pauses[0]["task_type"], serde_json::Value::Null);
    let (_, _, html) = console
        .page(&format!("{cookie}; {flash}"), "/ui/pauses")
        .await;
    assert!(html.contains("paused: octo/repo"), "{html}");
    assert!(html.contains("<td>octo/repo</td>"), "{html}");

    // The API's refusal is shown.
    let form = format!("csrf={token}&task_type=no_such_type");
    let resp = console.post(&cookie, "/ui/pauses/pause", &form).await;
    let flash = flash_cookie(&resp);
    let (_, _, html) = console
        .page(&format!("{cookie}; {flash}"), "/ui/pauses")
        .await;
    assert!(html.contains("unknown task_type"), "{html}");

    let form = format!("csrf={token}&repository=octo%2Frepo");
    let resp = console.post(&cookie, "/ui/pauses/resume", &form).await;
    let flash = flash_cookie(&resp);
    let (_, _, html) = console
        .page(&format!("{cookie}; {flash}"), "/ui/pauses")
        .await;
    assert!(
        html.contains("resumed: octo/repo (0 tasks handed back)"),
        "{html}"
    );
    assert!(html.contains("Nothing is paused."), "{html}");
}

#[tokio::test]
async fn recover_now_starts_a_run_shown_in_the_list_and_on_the_overview() {
    let console = Console::new();
    let cookie = console.session().await;
    let (status, _, html) = console.page(&cookie, "/ui/recovery").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No recovery run yet."), "{html}");
    let (_, _, overview) = console.page(&cookie, "/ui").await;
    assert!(overview.contains("No recovery run yet."), "{overview}");

    let resp = console
        .post(&cookie, "/ui/recovery", "csrf=forged&dry_run=1")
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (_, runs) = console.api.get("/api/v1/admin/recover").await;
    assert_eq!(runs, json!([]), "nothing started");

    let form = format!("csrf={}&dry_run=1", csrf(&html));
    let resp = console.post(&cookie, "/ui/recovery", &form).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let flash = flash_cookie(&resp);
    let (_, runs) = console.api.get("/api/v1/admin/recover").await;
    let run = &runs[0];
    assert_eq!(run["dry_run"], true);
    assert_eq!(run["trigger"], "manual");
    let run_id = run["run_id"].as_str().unwrap();
    let (_, _, html) = console
        .page(&format!("{cookie}; {flash}"), "/ui/recovery")
        .await;
    assert!(
        html.contains(&format!("recovery run {run_id} started (dry run)")),
        "{html}"
    );
    assert!(
        html.contains(&format!("<td class=\"mono\">{run_id}</td>")),
        "{html}"
    );
    assert!(html.contains("(dry run)</td>"), "{html}");
    // The overview shows the run once its figures are recomputed (past the maximum age, in the
    // background).
    console
        .clock
        .advance(orchestrator_axum::console::OVERVIEW_MAX_AGE);
    overview_until(&console, &cookie, |h| h.contains("Last recovery run:")).await;
}

#[tokio::test]
async fn a_delivery_says_it_was_received_from_github() {
    let console = Console::new();
    let accepted = console.api.accept("pull_request", &pr_opened()).await;
    let event = accepted["result"]["event_id"].as_i64().unwrap();
    let cookie = console.session().await;
    let (_, _, html) = console
        .page(&cookie, &format!("/ui/deliveries/{event}"))
        .await;
    assert!(
        html.contains("received from GitHub by the webhook receiver"),
        "{html}"
    );
}

#[tokio::test]
async fn bulk_reprocess_previews_the_deliveries_filter_then_starts_an_operation() {
    let console = Console::new();
    let accepted = console.api.accept("pull_request", &pr_opened()).await;
    let event = accepted["result"]["event_id"].as_i64().unwrap();
    let cookie = console.session().await;
    let (_, _, list) = console
        .page(&cookie, "/ui/deliveries?event_type=pull_request&processed=")
        .await;
    assert!(
        list.contains("/ui/operations/reprocess?event_type=pull_request"),
        "{list}"
    );
    let (_, _, list) = console
        .page(
            &cookie,
            "/ui/deliveries?event_type=pull_request&processed=no",
        )
        .await;
    assert!(
        !list.contains("/ui/operations/reprocess"),
        "the API has no processed filter"
    );

    let (status, _, preview) = console
        .page(
            &cookie,
            "/ui/operations/reprocess?event_type=pull_request&since=2000-01-01T00:00",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(
        preview.contains("<strong>1</strong> deliveries match"),
        "{preview}"
    );
    assert!(
        preview.contains(&format!("/ui/deliveries/{event}")),
        "{preview}"
    );
    let (_, ops) = console.api.get("/api/v1/operations").await;
    assert_eq!(ops, json!([]), "a dry run stores nothing");

    let form = format!(
        "csrf={}&event_type=pull_request&since=2000-01-01T00%3A00",
        csrf(&preview)
    );
    let resp = console
        .post(&cookie, "/ui/operations/reprocess", &form)
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, ops) = console.api.get("/api/v1/operations").await;
    assert_eq!(ops[0]["kind"], "reprocess_events");
    assert_eq!(ops[0]["matched"], 1);
    assert_eq!(ops[0]["force"], false);
    assert_eq!(ops[0]["filter"]["event_type"], "pull_request");
}

#[tokio::test]
async fn a_recovered_delivery_says_it_came_from_the_delivery_log() {
    let console = Console::new();
    crate::recovery::push_missing(&console.api, "lost-ui");
    let cookie = console.session().await;
    let (_, _, html) = console.page(&cookie, "/ui/recovery").await;
    let resp = console
        .post(&cookie, "/ui/recovery", &format!("csrf={}", csrf(&html)))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, runs) = console.api.get("/api/v1/admin/recover").await;
    let run = crate::recovery::ended(&console.api, runs[0]["run_id"].as_str().unwrap()).await;
    assert_eq!(run["recovered"], 1, "{run}");
    let (_, events) = console.api.get("/api/v1/webhooks/events").await;
    let id = events[0]["id"].as_i64().unwrap();
    let (_, _, html) = console.page(&cookie, &format!("/ui/deliveries/{id}")).await;
    assert!(
        html.contains("recovered from GitHub's delivery log by a"),
        "{html}"
    );
    let (_, _, html) = console.page(&cookie, "/ui/recovery").await;
    assert!(html.contains("succeeded"), "{html}");
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let console = Console::new();
    let cookie = console.session().await;
    let (_, _, html) = console.page(&cookie, "/ui").await;
    let resp = console
        .post(&cookie, "/ui/logout", &format!("csrf={}", csrf(&html)))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, _, _) = console.page(&cookie, "/ui").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the old cookie no longer works"
    );
}

/// The overview's "Deliveries" figure.
fn overview_deliveries(html: &str) -> String {
    html.split("<dt>Deliveries</dt><dd><a href=\"/ui/deliveries\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned()
}

/// Loads the overview until `ready` holds for it (a background recomputation is under way;
/// generous wall-clock bound, the figures' age is on the injected clock).
async fn overview_until(console: &Console, cookie: &str, ready: impl Fn(&str) -> bool) -> String {
    for _ in 0..500 {
        let (_, _, html) = console.page(cookie, "/ui").await;
        if ready(&html) {
            return html;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the overview never showed the recomputed figures");
}

#[tokio::test]
async fn the_overview_is_served_from_figures_kept_at_most_the_max_age_old_in_the_background() {
    let console = Console::new();
    let cookie = console.session().await;
    let (_, _, html) = console.page(&cookie, "/ui").await;
    assert_eq!(overview_deliveries(&html), "0");
    console
        .api
        .accept("ping", &payload("ping/payload.json"))
        .await;
    // Within the maximum age every refresh reads the same snapshot (no new count).
    console.clock.advance(Duration::from_secs(5));
    let (_, _, html) = console.page(&cookie, "/ui").await;
    assert_eq!(overview_deliveries(&html), "0");
    assert!(html.contains("(5 s ago;"), "{html}");
    // Past it, the page is answered at once with the figures it has (no count waited for)...
    console
        .clock
        .advance(orchestrator_axum::console::OVERVIEW_MAX_AGE);
    let (_, _, html) = console.page(&cookie, "/ui").await;
    assert!(html.contains("(15 s ago;"), "the held snapshot: {html}");
    // ...and a background computation brings the new count to the next refresh.
    let html = overview_until(&console, &cookie, |h| overview_deliveries(h) == "1").await;
    assert!(html.contains("(0 s ago;"), "{html}");
}

#[tokio::test]
async fn an_overview_unread_for_long_waits_for_fresh_figures() {
    let console = Console::new();
    let cookie = console.session().await;
    let (_, _, html) = console.page(&cookie, "/ui").await;
    assert_eq!(overview_deliveries(&html), "0");
    console
        .api
        .accept("ping", &payload("ping/payload.json"))
        .await;
    // Six maximum ages later nobody has looked: the snapshot is too old to show even for a
    // moment, so this request computes the figures itself.
    console
        .clock
        .advance(orchestrator_axum::console::OVERVIEW_MAX_AGE * 6);
    let (_, _, html) = console.page(&cookie, "/ui").await;
    assert_eq!(overview_deliveries(&html), "1", "{html}");
    assert!(html.contains("(0 s ago;"), "{html}");
}

#[tokio::test]
async fn the_json_figures_stay_exact_and_the_overview_shares_their_count() {
    let console = Console::new();
    let cookie = console.session().await;
    let (_, _, html) = console.page(&cookie, "/ui").await;
    assert_eq!(overview_deliveries(&html), "0");
    console
        .api
        .accept("ping", &payload("ping/payload.json"))
        .await;
    let (_, _, html) = console.page(&cookie, "/ui").await;
    assert_eq!(overview_deliveries(&html), "0", "the overview's snapshot");
    // The JSON routes count after their request arrived, whatever the overview holds...
    let (status, metrics) = console.api.get("/api/v1/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metrics["webhook_events_total"], 1, "{metrics}");
    let (_, stats) = console.api.get("/api/v1/admin/stats").await;
    assert_eq!(stats["recent_activity"]["webhooks_24h"], 1, "{stats}");
    // ...and that newer count is the overview's snapshot from then on.
    let (_, _, html) = console.page(&cookie, "/ui").await;
    assert_eq!(overview_deliveries(&html), "1");
}

#[tokio::test]
async fn a_401_from_the_api_names_admin_token_and_the_header() {
    let console = Console::new();
    let resp = console
        .send(Request::get("/api/v1/tasks").body(Body::empty()).unwrap())
        .await;
    let body = assert_error(resp, StatusCode::UNAUTHORIZED, "/api/v1/tasks").await;
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("ADMIN_TOKEN"), "{message}");
    assert!(message.contains("Authorization: Bearer"), "{message}");
}
