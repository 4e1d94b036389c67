//! The operator console at `/ui` (cargo feature `console`): deliveries, tasks, an overview,
//! bulk operations, pauses, recovery runs and the operator actions, as server-rendered HTML.
//!
//! Mount it beside the API with one call:
//!
//! ```ignore
//! let app = orchestrator_axum::router(state.clone()).merge(orchestrator_axum::console::router(state));
//! ```
//!
//! # Design
//! - HTML is rendered on the server with `maud` (templates checked at compile time, every
//!   spliced value escaped), so payload text an attacker controls is always shown as text.
//! - Actions are plain HTML forms (POST, CSRF token, then a redirect that shows the result).
//!   They call the same handlers as `/api/v1` (no second business logic) and show the API's
//!   error message when one fails. Reads call the same store traits.
//! - One stylesheet and one script (`assets/`), embedded in the binary, no CDN. The script only
//!   refreshes self-refreshing pages and asks for confirmations; everything works without it
//!   except those. A strict Content-Security-Policy (`default-src 'self'`, no inline script or
//!   style), `X-Frame-Options: DENY` and `nosniff` go on every answer.
//! - Lists page by cursor (keyset, [`BrowseStore`](orchestrator_core::store::browse::BrowseStore)),
//!   so paging stays stable while rows arrive and deep pages cost what the first one does.
//! - The overview reads the shared aggregate of the figures routes (`figures.rs` of this crate:
//!   store figures, queue depth, last recovery run), recomputed in the background at most every
//!   [`OVERVIEW_MAX_AGE`] whatever the number of open browsers; no page waits for a count.
//! - The long lists (deliveries, tasks) lay each row out as its own grid, so a 1,000-row page
//!   costs the browser the rows on screen, not one 1,000-row table (`assets/console.css`).
//!
//! # Layout
//! - `session.rs`: sign-in, the signed session cookie, CSRF, flash messages.
//! - `layout.rs`: the page chrome and helpers; `paging.rs`: keyset paging of every list.
//! - `deliveries.rs`, `tasks.rs`, `overview.rs`: the screens and their actions; `budget.rs`:
//!   the overview's agent budget tile.
//! - `operations.rs` (bulk retry / reprocess, operations), `pauses.rs`, `recovery.rs`: the
//!   operator screens of the bulk, pause and recovery routes.
//! - `assets.rs` (+ `assets/`): the stylesheet and the script.

mod assets;
mod budget;
mod deliveries;
mod filters;
mod layout;
mod operations;
mod overview;
mod paging;
mod pauses;
mod recovery;
mod session;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;
use layout::{Nav, Page, respond};
use session::{Flash, Session};

pub use overview::OVERVIEW_MAX_AGE;

/// The Content-Security-Policy of every console answer: only this origin's script, style and
/// images; no inline script or style; no framing; forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// What the console's handlers share.
#[derive(Clone)]
pub(crate) struct Console {
    pub(crate) app: AppState,
    pub(crate) revoked: Arc<session::Revoked>,
    /// How old the overview's figures may be ([`OVERVIEW_MAX_AGE`] unless set).
    pub(crate) overview_max_age: Duration,
}

impl Console {
    /// The admin token's bytes (the session key); `None` when the console is locked.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.app.config().admin_token.as_ref().map(|t| t.as_bytes())
    }
}

/// The console's routes under `/ui`, to merge into an application (see the module docs).
pub fn router(state: AppState) -> Router {
    router_with(state, OVERVIEW_MAX_AGE)
}

/// [`router`] with the overview recomputed at most every `overview_max_age`.
pub fn router_with(state: AppState, overview_max_age: Duration) -> Router {
    let console = Console {
        overview_max_age,
        revoked: Arc::default(),
        app: state.clone(),
    };
    let pages = Router::new()
        .route("/ui", get(overview::page))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route("/ui/logout", post(logout))
        .route("/ui/deliveries", get(deliveries::list))
        .route("/ui/deliveries/{id}", get(deliveries::detail))
        .route("/ui/deliveries/{id}/reprocess", post(deliveries::reprocess))
        .route("/ui/tasks", get(tasks::list))
        .route("/ui/tasks/{id}", get(tasks::detail))
        .route("/ui/tasks/{id}/retry", post(tasks::retry))
        .route("/ui/tasks/{id}/cancel", post(tasks::cancel))
        .route("/ui/operations", get(operations::list))
        .route("/ui/pauses", get(pauses::list))
        .route("/ui/recovery", get(recovery::list).post(recovery::start))
        .route("/ui/pauses/pause", post(pauses::pause))
        .route("/ui/pauses/resume", post(pauses::resume))
        .route(
            "/ui/operations/retry",
            get(operations::retry_preview).post(operations::retry_start),
        )
        .route(
            "/ui/operations/reprocess",
            get(operations::reprocess_preview).post(operations::reprocess_start),
        )
        .route("/ui/operations/{id}", get(operations::detail))
        .route("/ui/operations/{id}/cancel", post(operations::cancel))
        .route_layer(from_fn_with_state(console.clone(), session::require));
    let login = Router::new()
        .route("/ui/login", get(login_page).post(login))
        // Guessing the token through the form costs what guessing it through the API does.
        .route_layer(from_fn_with_state(
            state,
            crate::rate_limit_middleware::api_limit,
        ));
    Router::new()
        .merge(pages)
        .merge(login)
        .with_state(console)
        .route("/ui/assets/{name}", get(assets::serve))
        .layer(from_fn(security_headers))
        .layer(crate::error::catch_panic())
}

/// CSP, no framing, no sniffing, no referrer on every console answer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A console page that could not be shown: the status and the API's error message.
pub(crate) struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl From<orchestrator_core::error::StoreError> for PageError {
    fn from(err: orchestrator_core::error::StoreError) -> Self {
        Self(err.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let page = Page {
            title: "Error",
            nav: Nav::None,
            session: None,
            flash: None,
            refresh: None,
        };
        respond(
            status,
            page.render(html! {
                h1 { "Error " (status.as_u16()) }
                p.flash.error role="alert" { (self.0.to_string()) }
                p { a href="/ui" { "Back to the overview" } }
            }),
        )
    }
}

/// The form of every action: its CSRF token, and the action's own fields.
#[derive(Debug, Deserialize)]
pub(crate) struct ActionForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub(crate) csrf: String,
    /// Reprocess: also when the head SHA already has a Codegen run.
    #[serde(default)]
    pub(crate) force: Option<String>,
}

/// The refusal of an action whose form lacks the session's CSRF token (`None`: it has it).
pub(crate) fn csrf_refusal(console: &Console, session: &Session, csrf: &str) -> Option<Response> {
    let ok = console
        .key()
        .is_some_and(|key| session.csrf_matches(key, csrf));
    if ok {
        return None;
    }
    tracing::warn!("console action without a valid CSRF token");
    Some(
        PageError(ApiError::BadRequest(
            "the form's CSRF token is missing or stale; reload the page and try again".into(),
        ))
        .into_response(),
    )
}

/// The answer to an action: back to `to`, showing what happened (or the API's error).
pub(crate) fn outcome<T>(
    headers: &HeaderMap,
    to: &str,
    result: Result<T, ApiError>,
    done: impl FnOnce(T) -> String,
) -> Response {
    let flash = match result {
        Ok(value) => Flash {
            error: false,
            message: done(value),
        },
        Err(err) => Flash {
            error: true,
            message: format!("{} ({})", err, err.status()),
        },
    };
    session::redirect_with(to, &flash, headers)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login_page(State(console): State<Console>, headers: HeaderMap) -> Response {
    if session::current(&console, &headers).is_some() {
        return Redirect::to("/ui").into_response();
    }
    login_form(&console, StatusCode::OK, None)
}

fn login_form(console: &Console, status: StatusCode, error: Option<&str>) -> Response {
    let locked = console.key().is_none();
    let page = Page {
        title: "Sign in",
        nav: Nav::None,
        session: None,
        flash: None,
        refresh: None,
    };
    respond(
        status,
        page.render(html! {
            h1 { "Sign in" }
            @if locked {
                p.flash.error role="alert" {
                    "The console is locked: this server has no admin token. Set ADMIN_TOKEN \
                     and restart it, then sign in with that token."
                }
            } @else {
                @if let Some(error) = error {
                    p.flash.error role="alert" { (error) }
                }
                form.login method="post" action="/ui/login" {
                    label for="token" { "Admin token (the server's ADMIN_TOKEN)" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Sign in" }
                }
            }
        }),
    )
}

async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(key) = console.key() else {
        return login_form(&console, StatusCode::UNAUTHORIZED, None);
    };
    if !crate::auth::token_matches(&console.app, form.token.trim()) {
        tracing::warn!("console sign-in with a wrong token");
        return login_form(
            &console,
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
        );
    }
    tracing::info!("console sign-in");
    let value = session::issue(key, console.app.clock().now());
    session::signed_in(&value, &headers)
}

async fn logout(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&console, &session, &form.csrf) {
        return refused;
    }
    session::sign_out(&console, &headers)
}
