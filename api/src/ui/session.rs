//! Dashboard sessions: an API key exchanged once for an HttpOnly, SameSite=Strict
//! cookie, so that the browser never keeps the key and `EventSource` (which cannot send
//! an `Authorization` header) can follow the event streams.
//!
//! A session lives in Redis (`<namespace>:ui:session:<id>`) and holds the key's
//! SHA-256, never the key, and the session's CSRF token. Each request that carries
//! the cookie and no `Authorization` header is checked by [`SessionAuth`]: the session
//! is read (and its lifetime renewed), the key's hash is verified again through the key
//! cache (so a revoked key ends its sessions within `DROVER_API_KEY_CACHE_MS`), and a
//! request that changes something must also send the CSRF token as `X-CSRF-Token`.
//! The request then goes on as if it had sent the key: the operations' own role checks
//! and rate limits apply unchanged. Signing out deletes the session in Redis, so the
//! cookie is worthless from then on even if it was copied.

use poem::http::{HeaderValue, Method, header};
use poem::{Endpoint, Middleware, Request, Result};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::auth::cache::Verdict;
use crate::error::ApiError;
use crate::state::AppState;

/// The cookie's name.
pub const COOKIE: &str = "drover_session";
/// The header a state-changing request sends the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// What the `Authorization` header says when a session stands in for the key.
const SESSION_BEARER: &str = "Bearer dashboard-session";

/// The principal of a request authenticated by its session cookie; read by
/// `crate::auth` instead of verifying a bearer key.
#[derive(Debug, Clone)]
pub struct SessionPrincipal(pub Principal);

/// What Redis keeps of a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The SHA-256 of the key that signed in.
    pub key_hash: String,
    /// The token state-changing requests must echo.
    pub csrf: String,
}

fn redis_key(state: &AppState, id: &str) -> String {
    format!("{}:ui:session:{id}", state.config().common.namespace)
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Whether `id` looks like a session id this module made (64 hex digits): anything
/// else is not looked up.
fn well_formed(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Creates a session for the key `key`; returns its id and CSRF token.
///
/// # Errors
/// When Redis cannot be reached.
pub async fn create(state: &AppState, key: &str) -> Result<(String, String), ApiError> {
    let id = random_token();
    let stored = Stored {
        key_hash: crate::auth::keys::hash_key(key),
        csrf: random_token(),
    };
    let body = serde_json::to_string(&stored).map_err(ApiError::internal)?;
    let ttl = state.config().ui_session_ttl.as_secs().max(1);
    let _: () = state
        .redis()
        .query(
            redis::cmd("SET")
                .arg(redis_key(state, &id))
                .arg(body)
                .arg("EX")
                .arg(ttl),
        )
        .await?;
    Ok((id, stored.csrf))
}

/// The session `id`, its lifetime renewed; `None` when it ended or never was.
///
/// # Errors
/// When Redis cannot be reached.
pub async fn load(state: &AppState, id: &str) -> Result<Option<Stored>, ApiError> {
    if !well_formed(id) {
        return Ok(None);
    }
    let ttl = state.config().ui_session_ttl.as_secs().max(1);
    let raw: Option<String> = state
        .redis()
        .query(
            redis::cmd("GETEX")
                .arg(redis_key(state, id))
                .arg("EX")
                .arg(ttl),
        )
        .await?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// Ends the session `id`.
///
/// # Errors
/// When Redis cannot be reached.
pub async fn end(state: &AppState, id: &str) -> Result<(), ApiError> {
    if well_formed(id) {
        let _: i64 = state
            .redis()
            .query(redis::cmd("DEL").arg(redis_key(state, id)))
            .await?;
    }
    Ok(())
}

/// The session id the request's cookie names.
#[must_use]
pub fn cookie(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// The `Set-Cookie` value that holds session `id` (empty and expired: signs out).
#[must_use]
pub fn set_cookie(id: Option<&str>, ttl_secs: u64) -> String {
    match id {
        Some(id) => format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl_secs}"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// Compares two tokens in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Methods that change nothing, which need no CSRF token.
fn safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks that a state-changing request carries the session's CSRF token.
///
/// # Errors
/// A 403 that says what is missing.
pub fn check_csrf(req: &Request, stored: &Stored) -> Result<(), ApiError> {
    if safe(req.method()) {
        return Ok(());
    }
    let sent = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if same(sent, &stored.csrf) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "this request changes something and lacks the dashboard session's CSRF token \
             (X-CSRF-Token): reload the dashboard",
        ))
    }
}

/// Authenticates `/api/` requests by their session cookie (see the module docs).
pub struct SessionAuth;

impl<E: Endpoint> Middleware<E> for SessionAuth {
    type Output = SessionAuthEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        SessionAuthEndpoint { inner: ep }
    }
}

/// See [`SessionAuth`].
pub struct SessionAuthEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for SessionAuthEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let applies = req.uri().path().starts_with("/api/")
            && !req.headers().contains_key(header::AUTHORIZATION);
        let id = if applies { cookie(&req) } else { None };
        let (Some(id), Some(state)) = (id, req.data::<AppState>().cloned()) else {
            return self.inner.call(req).await;
        };
        // An ended or unknown session: the request goes on without a key (401).
        if let Some(stored) = load(&state, &id).await? {
            check_csrf(&req, &stored)?;
            let addr = req
                .remote_addr()
                .as_socket_addr()
                .map(|a| a.ip().to_canonical());
            match state.keys().verify_hash(stored.key_hash, addr).await? {
                Verdict::Valid(p) => {
                    req.extensions_mut().insert(SessionPrincipal(p));
                    req.headers_mut().insert(
                        header::AUTHORIZATION,
                        HeaderValue::from_static(SESSION_BEARER),
                    );
                }
                Verdict::Invalid => {
                    // The key was revoked: its sessions end with it.
                    end(&state, &id).await?;
                }
                Verdict::Limited(wait) => return Err(ApiError::auth_limited(wait).into()),
            }
        }
        self.inner.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_tokens() {
        let req = Request::builder()
            .header(header::COOKIE, format!("a=b; {COOKIE}=abc ; c=d"))
            .finish();
        assert_eq!(cookie(&req).as_deref(), Some("abc"));
        assert!(!well_formed("abc"));
        assert!(well_formed(&random_token()));
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        let c = set_cookie(Some("x"), 60);
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        assert!(set_cookie(None, 60).contains("Max-Age=0"));
    }
}
