//! Console sign-in: the admin token once, then a signed session cookie; CSRF tokens; flash
//! messages; the middleware that guards every console page.
//!
//! - Sign-in compares the token in constant time, exactly as the API's bearer check does
//!   (`auth::token_matches`). Without a configured token nobody can sign in (the console is
//!   locked, as the API is).
//! - The session cookie (`wo_console`, `HttpOnly; SameSite=Strict; Path=/ui`, `Secure` when the
//!   request came over HTTPS) holds `<expiry>.<nonce>.<mac>`, the MAC an HMAC-SHA256 keyed by the
//!   admin token: nothing is stored server-side, any API instance accepts it, and changing
//!   `ADMIN_TOKEN` ends every session. Signing out clears the cookie and revokes its nonce in
//!   this process.
//! - Every action form carries a CSRF token, the HMAC of the session nonce, checked in constant
//!   time (`SameSite=Strict` already keeps the cookie off cross-site requests; this is the second
//!   wall).
//! - A flash message (the result of an action) travels in a short-lived cookie to the page the
//!   action redirects to, which shows it once.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Console;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "wo_console";
/// The flash message cookie's name.
const FLASH_COOKIE: &str = "wo_flash";
/// How long a session lasts.
const LIFETIME_SECS: i64 = 12 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// A signed-in operator, as the middleware found them.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The session's random part, also the CSRF token's input.
    nonce: String,
    /// The CSRF token every action form carries.
    pub(crate) csrf: String,
}

/// A message shown once on the next page: the outcome of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    /// Whether the action failed.
    pub(crate) error: bool,
    /// What to show.
    pub(crate) message: String,
}

/// Sessions signed out in this process (their cookies may still be held by a browser).
#[derive(Debug, Default)]
pub(crate) struct Revoked(Mutex<HashSet<String>>);

impl Revoked {
    fn contains(&self, nonce: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(nonce)
    }

    fn insert(&self, nonce: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(nonce);
    }
}

fn mac(key: &[u8], parts: &[&str]) -> HmacSha256 {
    // HMAC takes keys of any length, so the fallback (a fixed all-zero key) is never used.
    let mut mac =
        HmacSha256::new_from_slice(key).unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    for part in parts {
        mac.update(part.as_bytes());
        mac.update(b"|");
    }
    mac
}

fn sign(key: &[u8], parts: &[&str]) -> String {
    hex::encode(mac(key, parts).finalize().into_bytes())
}

fn verify(key: &[u8], parts: &[&str], tag: &str) -> bool {
    match hex::decode(tag) {
        Ok(tag) => mac(key, parts).verify_slice(&tag).is_ok(),
        Err(_) => false,
    }
}

/// A new session cookie value for the holder of `key` (the admin token).
pub(crate) fn issue(key: &[u8], now: DateTime<Utc>) -> String {
    let expires = (now.timestamp() + LIFETIME_SECS).to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let tag = sign(key, &["session", &expires, &nonce]);
    format!("{expires}.{nonce}.{tag}")
}

/// The session of a cookie value, if it is genuine, unexpired and not signed out.
pub(crate) fn open(
    key: &[u8],
    value: &str,
    now: DateTime<Utc>,
    revoked: &Revoked,
) -> Option<Session> {
    let mut parts = value.splitn(3, '.');
    let (expires, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if !verify(key, &["session", expires, nonce], tag) {
        return None;
    }
    if expires.parse::<i64>().ok()? <= now.timestamp() || revoked.contains(nonce) {
        return None;
    }
    Some(Session {
        nonce: nonce.to_owned(),
        csrf: sign(key, &["csrf", nonce]),
    })
}

impl Session {
    /// Whether `token` is this session's CSRF token (constant time).
    pub(crate) fn csrf_matches(&self, key: &[u8], token: &str) -> bool {
        verify(key, &["csrf", &self.nonce], token)
    }
}

/// The value of cookie `name` in `headers`.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request reached us over HTTPS (directly or through a proxy that says so).
fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for the console's path.
fn set_cookie(name: &str, value: &str, max_age: i64, headers: &HeaderMap) -> Option<HeaderValue> {
    let secure = if secure(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// The response that starts a session: the cookie, then the overview.
pub(crate) fn signed_in(value: &str, headers: &HeaderMap) -> Response {
    let mut response = Redirect::to("/ui").into_response();
    if let Some(cookie) = set_cookie(SESSION_COOKIE, value, LIFETIME_SECS, headers) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Ends the session of `headers` (cookie cleared, nonce revoked here) and goes to sign-in.
pub(crate) fn sign_out(console: &Console, headers: &HeaderMap) -> Response {
    if let Some(session) = current(console, headers) {
        console.revoked.insert(session.nonce);
    }
    let mut response = Redirect::to("/ui/login").into_response();
    if let Some(cookie) = set_cookie(SESSION_COOKIE, "", 0, headers) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The session of the request's cookie, if any is valid now.
pub(crate) fn current(console: &Console, headers: &HeaderMap) -> Option<Session> {
    let key = console.app.config().admin_token.as_ref()?;
    let value = cookie(headers, SESSION_COOKIE)?;
    open(
        key.as_bytes(),
        value,
        console.app.clock().now(),
        &console.revoked,
    )
}

/// A redirect to `to` that shows `flash` there.
pub(crate) fn redirect_with(to: &str, flash: &Flash, headers: &HeaderMap) -> Response {
    let mut response = Redirect::to(to).into_response();
    let value = format!(
        "{}{}",
        if flash.error { 'e' } else { 'o' },
        hex::encode(flash.message.as_bytes())
    );
    if let Some(cookie) = set_cookie(FLASH_COOKIE, &value, 60, headers) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

fn read_flash(headers: &HeaderMap) -> Option<Flash> {
    let value = cookie(headers, FLASH_COOKIE)?;
    let (kind, hex_message) = value.split_at_checked(1)?;
    let message = String::from_utf8(hex::decode(hex_message).ok()?).ok()?;
    Some(Flash {
        error: kind == "e",
        message,
    })
}

/// Middleware of every page but sign-in and assets: a valid session or a redirect to sign-in.
/// Puts the [`Session`] (and the pending [`Flash`], cleared in the answer) in the request.
pub(crate) async fn require(
    State(console): State<Console>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(session) = current(&console, req.headers()) else {
        return Redirect::to("/ui/login").into_response();
    };
    let flash = read_flash(req.headers());
    let clear = flash
        .is_some()
        .then(|| set_cookie(FLASH_COOKIE, "", 0, req.headers()));
    req.extensions_mut().insert(session);
    req.extensions_mut().insert(flash);
    let mut response = next.run(req).await;
    if let Some(Some(clear)) = clear
        && !response.status().is_redirection()
    {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_genuine_unexpired_and_revocable() {
        let now = Utc::now();
        let revoked = Revoked::default();
        let value = issue(b"token", now);
        let session = open(b"token", &value, now, &revoked);
        assert!(session.is_some());
        assert!(
            open(b"other", &value, now, &revoked).is_none(),
            "another key"
        );
        let later = now + chrono::Duration::seconds(LIFETIME_SECS + 1);
        assert!(open(b"token", &value, later, &revoked).is_none(), "expired");
        let forged = value.replacen(|c: char| c.is_ascii_digit(), "9", 1);
        assert!(
            open(b"token", &forged, now, &revoked).is_none(),
            "changed expiry"
        );
        let session = session.unwrap_or_else(|| unreachable!());
        assert!(session.csrf_matches(b"token", &session.csrf));
        assert!(!session.csrf_matches(b"token", "00"));
        revoked.insert(session.nonce.clone());
        assert!(
            open(b"token", &value, now, &revoked).is_none(),
            "signed out"
        );
    }
}
