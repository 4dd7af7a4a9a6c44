//! The web dashboard at `/ui`: a few static files embedded in the binary (our own
//! HTML, CSS and JavaScript, no build step, no CDN), and the sign-in that trades an API
//! key for a session cookie ([`session`]).
//!
//! The pages call the public API (`/api/v1/…`) like any client, with the session
//! cookie instead of the key, so the dashboard can do nothing the key could not: a
//! submitter key's session is refused the admin operations by the API itself, and the
//! page hides their buttons too. `docs/DASHBOARD.md` describes the pages.

pub mod session;

use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Body, IntoResponse, Request, Response, Route, get, handler};
use serde::Deserialize;

use crate::auth::cache::Verdict;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// The page: one document, which the script fills per route (`#/queues/export`).
const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");

/// The security headers of every dashboard file: no framing (clickjacking), no
/// script, style or connection from anywhere but this origin.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("Content-Security-Policy", CSP)
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "same-origin")
        .body(body)
}

#[handler]
fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

#[handler]
fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

#[handler]
fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// The sign-in form's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    key: String,
}

fn who(p: &Principal, csrf: &str) -> serde_json::Value {
    serde_json::json!({
        "signed_in": true,
        "name": p.name.as_ref(),
        "role": p.role.as_str(),
        "admin": p.role == Role::Admin,
        "csrf": csrf,
    })
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(v.to_string())
}

/// `POST /ui/session`: checks the key, starts a session, sets its cookie.
#[handler]
async fn sign_in(req: &Request, state: Data<&AppState>, body: Body) -> poem::Result<Response> {
    let bytes = body
        .into_bytes()
        .await
        .map_err(|_| ApiError::bad_request("the request body could not be read"))?;
    let form: SignIn = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::validation("key", format!("expected {{\"key\": \"…\"}}: {e}")))?;
    let key = form.key.trim();
    if key.is_empty() {
        return Err(ApiError::validation("key", "enter an API key").into());
    }
    let addr = req
        .remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_canonical());
    let p = match state.keys().verify(key, addr).await? {
        Verdict::Valid(p) => p,
        Verdict::Invalid => {
            return Err(ApiError::unauthorized("the API key is unknown or revoked").into());
        }
        Verdict::Limited(wait) => return Err(ApiError::auth_limited(wait).into()),
    };
    let (id, csrf) = session::create(&state, key).await?;
    tracing::info!(api_key = p.key_id, role = %p.role, "dashboard sign-in");
    let ttl = state.config().ui_session_ttl.as_secs();
    let mut res = json(StatusCode::OK, &who(&p, &csrf));
    res.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(Some(&id), ttl)
            .parse()
            .map_err(ApiError::internal)?,
    );
    Ok(res)
}

/// `GET /ui/session`: who is signed in, and the CSRF token; `{"signed_in": false}`
/// when nobody is (a 200: the page asks this before anyone signed in, and that is
/// not an error).
#[handler]
async fn current(req: &Request, state: Data<&AppState>) -> poem::Result<Response> {
    let nobody = || json(StatusCode::OK, &serde_json::json!({ "signed_in": false }));
    let Some(id) = session::cookie(req) else {
        return Ok(nobody());
    };
    let Some(stored) = session::load(&state, &id).await? else {
        return Ok(nobody());
    };
    let addr = req
        .remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_canonical());
    match state
        .keys()
        .verify_hash(stored.key_hash.clone(), addr)
        .await?
    {
        Verdict::Valid(p) => Ok(json(StatusCode::OK, &who(&p, &stored.csrf))),
        Verdict::Invalid => {
            // The key was revoked: its sessions end with it.
            session::end(&state, &id).await?;
            Ok(nobody())
        }
        Verdict::Limited(wait) => Err(ApiError::auth_limited(wait).into()),
    }
}

/// `DELETE /ui/session`: ends the session (in Redis, not only in this browser).
#[handler]
async fn sign_out(req: &Request, state: Data<&AppState>) -> poem::Result<Response> {
    if let Some(id) = session::cookie(req) {
        if let Some(stored) = session::load(&state, &id).await? {
            session::check_csrf(req, &stored)?;
        }
        session::end(&state, &id).await?;
    }
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::SET_COOKIE, session::set_cookie(None, 0))
        .finish()
        .into_response())
}

/// The dashboard's routes, nested at `/ui`.
pub fn routes() -> Route {
    Route::new()
        .at("/", get(index))
        .at("/app.js", get(app_js))
        .at("/app.css", get(app_css))
        .at("/session", get(current).post(sign_in).delete(sign_out))
}

/// The plain paths (outside the OpenAPI document) and their methods, for `Allow`.
#[must_use]
pub fn allowed_methods() -> Vec<(String, String)> {
    vec![
        ("/ui".to_owned(), "GET, HEAD".to_owned()),
        ("/ui/".to_owned(), "GET, HEAD".to_owned()),
        ("/ui/app.js".to_owned(), "GET, HEAD".to_owned()),
        ("/ui/app.css".to_owned(), "GET, HEAD".to_owned()),
        (
            "/ui/session".to_owned(),
            "GET, HEAD, POST, DELETE".to_owned(),
        ),
    ]
}
