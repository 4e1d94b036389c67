//! The page chrome shared by every console screen (header, navigation, flash message, footer)
//! and small rendering helpers. Every value goes through maud's `(...)` splices, which escape
//! HTML, so attacker-controlled payload text is always shown as text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::{Flash, Session};

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Deliveries,
    Tasks,
    Operations,
    Pauses,
    Recovery,
    None,
}

/// A page: its title, current navigation entry and body.
pub(crate) struct Page<'a> {
    pub(crate) title: &'a str,
    pub(crate) nav: Nav,
    pub(crate) session: Option<&'a Session>,
    pub(crate) flash: Option<&'a Flash>,
    /// Seconds between refreshes by `console.js` (overview, live tail), if any.
    pub(crate) refresh: Option<u32>,
}

impl Page<'_> {
    /// The full document around `body`.
    pub(crate) fn render(&self, body: Markup) -> Markup {
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · webhook-orchestrator" }
                    link rel="stylesheet" href="/ui/assets/console.css";
                    script src="/ui/assets/console.js" defer {}
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        a.brand href="/ui" { "webhook-orchestrator" }
                        @if let Some(session) = self.session {
                            nav aria-label="Main" {
                                (nav_link("/ui", "Overview", self.nav == Nav::Overview))
                                (nav_link("/ui/deliveries", "Deliveries", self.nav == Nav::Deliveries))
                                (nav_link("/ui/tasks", "Tasks", self.nav == Nav::Tasks))
                                (nav_link("/ui/operations", "Operations", self.nav == Nav::Operations))
                                (nav_link("/ui/pauses", "Pauses", self.nav == Nav::Pauses))
                                (nav_link("/ui/recovery", "Recovery", self.nav == Nav::Recovery))
                            }
                            form.signout method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main #main data-refresh=[self.refresh] {
                        @if let Some(flash) = self.flash {
                            @if flash.error {
                                p.flash.error role="alert" { strong { "Error: " } (flash.message) }
                            } @else {
                                p.flash.ok role="status" { strong { "Done: " } (flash.message) }
                            }
                        }
                        (body)
                    }
                }
            }
        }
    }
}

fn nav_link(href: &str, label: &str, current: bool) -> Markup {
    html! {
        @if current {
            a href=(href) aria-current="page" { (label) }
        } @else {
            a href=(href) { (label) }
        }
    }
}

/// An HTML answer with `status`, never cached (pages show live, signed-in data).
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An instant as `2026-11-30 23:59:59 UTC`.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An optional instant, `—` when absent.
pub(crate) fn opt_time(at: Option<DateTime<Utc>>) -> String {
    at.map(time).unwrap_or_else(|| "—".to_owned())
}

/// An optional text, `—` when absent.
pub(crate) fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("—")
}

/// A status word in a badge; the word itself carries the meaning (readable without colour).
pub(crate) fn badge(status: &str) -> Markup {
    html! { span class={ "badge s-" (status) } { (status) } }
}

/// A form posting to `action` with the CSRF token, a confirmation question (asked by
/// `console.js`) and one submit button.
pub(crate) fn action_form(
    session: &Session,
    action: &str,
    confirm: &str,
    label: &str,
    extra: Markup,
) -> Markup {
    html! {
        form.action method="post" action=(action) data-confirm=(confirm) {
            input type="hidden" name="csrf" value=(session.csrf);
            (extra)
            button type="submit" { (label) }
        }
    }
}
