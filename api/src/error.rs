//! One error shape for every 4xx and 5xx: `{"error": {"code", "message", "details"}}`.
//!
//! Handlers return [`ApiError`]; errors raised before a handler runs (a malformed
//! body, a bad parameter, an unknown route) are rewritten into the same shape by
//! [`envelope`], so a client parses one thing whatever went wrong.

use drover_queue::QueueError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::error::{ContentTypeError, ParseParamError};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// What went wrong.
#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    /// A stable, machine-readable code: `bad_request`, `validation_failed`, `unauthorized`,
    /// `forbidden`, `not_found`, `method_not_allowed`, `conflict`, `idempotency_key_reused`,
    /// `unprocessable`, `payload_too_large`,
    /// `unsupported_media_type`, `rate_limited`, `unavailable`, `internal`.
    pub code: String,
    /// What happened and what to do about it, for a person.
    pub message: String,
    /// More about the error, such as the field at fault.
    #[oai(skip_serializing_if_is_none)]
    pub details: Option<serde_json::Value>,
}

/// The body of every error response.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// An error response.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed or invalid; nothing was changed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No valid API key was given: send one as `Authorization: Bearer <key>`.
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorBody>,
        /// `Bearer`: how to authenticate.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// The API key's role does not allow this.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such queue, job or resource.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The resource is in a state that does not allow this.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request fits the document, and breaks a rule that no schema can state: one
    /// that relates two fields (`filters.to` after `filters.from`), or a field to the
    /// present time (a bucket not in the future, `run_at` at most a year ahead).
    /// `details.field` names the field; nothing was changed.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// The request body is larger than the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The body is not JSON: send it with `Content-Type: application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Too many requests for this key, or too many failed authentications from this
    /// address; retry after the `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<ErrorBody>,
        /// Seconds until the key may make another request.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// Something broke on our side.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// Redis or the database cannot be reached; retry shortly.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorBody>,
        /// Seconds after which a retry may succeed.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

/// How a 401 tells the client to authenticate.
pub const WWW_AUTHENTICATE: &str = "Bearer";

/// Seconds a client should wait before retrying a 503.
const UNAVAILABLE_RETRY_AFTER_S: u64 = 1;

fn body(
    code: &str,
    message: impl Into<String>,
    details: Option<serde_json::Value>,
) -> Json<ErrorBody> {
    Json(ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.into(),
            details,
        },
    })
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(body("bad_request", message, None))
    }

    /// A payload or option that fails validation, naming the field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let text = if field.is_empty() {
            message.clone()
        } else {
            format!("{field}: {message}")
        };
        Self::BadRequest(body(
            "validation_failed",
            text,
            Some(serde_json::json!({ "field": field, "reason": message })),
        ))
    }

    /// A request that fits the document and breaks a rule beyond it (see
    /// [`ApiError::Unprocessable`]), naming the field.
    pub fn unprocessable(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Unprocessable(body(
            "unprocessable",
            format!("{field}: {message}"),
            Some(serde_json::json!({ "field": field, "reason": message })),
        ))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(
            body("unauthorized", message, None),
            WWW_AUTHENTICATE.to_owned(),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(body("forbidden", message, None))
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::PayloadTooLarge(body("payload_too_large", message, None))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(body("not_found", message, None))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(body("conflict", message, None))
    }

    /// A 409 with its own code and details (`idempotency_key_reused`, …).
    pub fn conflict_code(
        code: &str,
        message: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        Self::Conflict(body(code, message, Some(details)))
    }

    pub fn rate_limited(retry_after_s: u64) -> Self {
        Self::TooManyRequests(
            body(
                "rate_limited",
                format!("too many requests for this API key; retry in {retry_after_s} s"),
                None,
            ),
            retry_after_s,
        )
    }

    /// Too many failed authentications from the client's address.
    pub fn auth_limited(retry_after_s: u64) -> Self {
        Self::TooManyRequests(
            body(
                "rate_limited",
                format!(
                    "too many failed authentications from this address; retry in \
                     {retry_after_s} s with a valid API key"
                ),
                None,
            ),
            retry_after_s,
        )
    }

    /// A 429 for a limit other than the request rate, with its own message.
    pub fn too_many(message: impl Into<String>, retry_after_s: u64) -> Self {
        Self::TooManyRequests(body("rate_limited", message, None), retry_after_s)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(
            body("unavailable", message, None),
            UNAVAILABLE_RETRY_AFTER_S,
        )
    }

    /// An unexpected error: logged in full, answered without internals.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::Internal(body(
            "internal",
            "an unexpected error occurred; it has been logged",
            None,
        ))
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NotReplicated { wanted, acked } => {
                tracing::warn!(wanted, acked, "redis replicas did not confirm a write");
                ApiError::unavailable(format!(
                    "the write reached Redis, but only {acked} of {wanted} replicas confirmed \
                     it in time, so it might not survive a failover; retry (with the same \
                     Idempotency-Key, so it is not created twice)"
                ))
            }
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "redis unavailable");
                ApiError::unavailable("the queue store (Redis) cannot be reached; retry shortly")
            }
            QueueError::InvalidOptions(m) => ApiError::bad_request(m),
            QueueError::InvalidName(n) => ApiError::not_found(format!("no queue named {n:?}")),
            other => ApiError::internal(other),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        if db_unreachable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::unavailable("the database cannot be reached; retry shortly")
        } else {
            ApiError::internal(e)
        }
    }
}

/// Whether a database error means the database could not be reached (as opposed to a
/// query it refused): connecting failed, the pool had nothing to give, or the connection
/// broke mid-query.
fn db_unreachable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => {
            matches!(
                **s,
                Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed
            )
        }
        _ => false,
    }
}

/// Rewrites any error that did not come from a handler into the error envelope.
pub async fn envelope(err: poem::Error) -> Response {
    if err.is_from_response() {
        // Already an answer of ours (an `ApiError` a handler or a checker returned).
        return err.into_response();
    }
    let api_error = if let Some(p) = err.downcast_ref::<ParseParamError>() {
        let reason = if p.reason.contains("Expect a valid enumeration value") {
            match p.name {
                "state" => "must be waiting, delayed, active, completed or failed".to_owned(),
                _ => "is not one of the values in the API's document (/openapi.json)".to_owned(),
            }
        } else {
            humanize(&clean_parse_message(&p.reason))
        };
        ApiError::validation(p.name, reason)
    } else if let Some(c) = err.downcast_ref::<ContentTypeError>() {
        ApiError::UnsupportedMediaType(body(
            "unsupported_media_type",
            format!("{c}: send the body as JSON with Content-Type: application/json"),
            None,
        ))
    } else {
        match err.status() {
            StatusCode::UNAUTHORIZED => {
                ApiError::unauthorized("send an API key as the header Authorization: Bearer <key>")
            }
            StatusCode::NOT_FOUND => ApiError::not_found("no such route: see /docs for the API"),
            StatusCode::METHOD_NOT_ALLOWED => {
                let b = body(
                    "method_not_allowed",
                    "this route does not take that method: see /docs for the API",
                    None,
                );
                return b
                    .with_status(StatusCode::METHOD_NOT_ALLOWED)
                    .into_response();
            }
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(body(
                "payload_too_large",
                "the request body is larger than the limit",
                None,
            )),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(body(
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
                None,
            )),
            s if s.is_client_error() => {
                let b = body("bad_request", clean_parse_message(&err.to_string()), None);
                return b.with_status(s).into_response();
            }
            _ => ApiError::internal(&err),
        }
    };
    api_error.into_response()
}

/// Says poem-openapi's validator failures (`verification failed. maximum(1000,
/// exclusive: false)`) in words (`must be at most 1000`).
fn humanize(reason: &str) -> String {
    let Some(rule) = reason.strip_prefix("verification failed. ") else {
        return reason.to_owned();
    };
    let arg = |name: &str| {
        rule.strip_prefix(name)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.split([',', ')']).next())
            .map(str::trim)
    };
    if let Some(n) = arg("maximum") {
        format!("must be at most {n}")
    } else if let Some(n) = arg("minimum") {
        format!("must be at least {n}")
    } else if let Some(n) = arg("maxLength") {
        format!("must be at most {n} characters long")
    } else if let Some(n) = arg("minLength") {
        format!("must be at least {n} characters long")
    } else if rule.starts_with("pattern") {
        "does not have the expected form: pass back a value this API returned".to_owned()
    } else {
        reason.to_owned()
    }
}

/// Keeps the useful part of poem-openapi's parse errors.
fn clean_parse_message(msg: &str) -> String {
    let msg = msg.trim();
    if msg.is_empty() {
        return "the request is malformed".to_owned();
    }
    msg.to_owned()
}

#[cfg(test)]
mod tests {
    use super::humanize;

    #[test]
    fn validator_failures_read_as_words() {
        assert_eq!(
            humanize("verification failed. maximum(1000, exclusive: false)"),
            "must be at most 1000"
        );
        assert_eq!(
            humanize("verification failed. minimum(1, exclusive: false)"),
            "must be at least 1"
        );
        assert_eq!(
            humanize("verification failed. maxLength(255)"),
            "must be at most 255 characters long"
        );
        assert!(humanize("verification failed. pattern(\"^x$\")").starts_with("does not"));
        assert_eq!(humanize("something else"), "something else");
    }
}
