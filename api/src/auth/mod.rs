//! Who may call the API: API keys with roles, checked on every operation, and a rate
//! limit per key.
//!
//! A request sends its key as `Authorization: Bearer <key>`. The key's SHA-256 is looked
//! up in the `api_keys` table ([`keys`]), through a short-lived in-memory cache
//! ([`cache`]) so that the hot path does not ask the database on every request. Then
//! the key's role is compared with the operation's: each operation takes either a
//! [`SubmitterKey`] (any valid key) or an [`AdminKey`] (admin keys only) as a
//! parameter, which is also how the OpenAPI document shows what each one needs.
//! Last, the key's token bucket in Redis ([`rate_limit`]) must hold a token.
//!
//! | failure | status |
//! |---|---|
//! | no `Authorization: Bearer` header, unknown or revoked key | 401 |
//! | the key's role does not allow the operation | 403 |
//! | the key's bucket is empty | 429, with `Retry-After` |
//! | the client address failed too often ([`failures`]) | 429, with `Retry-After` |

pub mod cache;
pub mod failures;
pub mod keys;
mod lru;
pub mod rate_limit;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use drover_jobs::QueueName;

use crate::error::ApiError;
use crate::state::AppState;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Submit and read jobs, datasets, exports and events.
    Submitter,
    /// Everything, including running the queues.
    Admin,
}

impl Role {
    /// The name, as stored and configured.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Admin => "admin",
        }
    }

    /// Whether a key of this role may call an operation that needs `needed`.
    #[must_use]
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || needed == Role::Submitter
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not a role.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown role {0:?}: use submitter or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "submitter" => Ok(Role::Submitter),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// The key a request was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's row id: it names the key in logs and its rate-limit bucket, and the
    /// jobs it submits carry it.
    pub key_id: i64,
    /// The key's name.
    pub name: Arc<str>,
    pub role: Role,
    /// The queues a submitter key may use; `None`: every queue.
    pub queues: Option<Arc<[QueueName]>>,
}

impl Principal {
    /// Drover reading for itself, on behalf of no key (a schedule's last job, shown to
    /// any key that may read schedules): sees what an admin sees.
    #[must_use]
    pub fn system() -> Self {
        Self {
            key_id: 0,
            name: Arc::from("drover"),
            role: Role::Admin,
            queues: None,
        }
    }

    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this key may submit to and read queue `q`: an admin key may use every
    /// queue, a submitter key those it is scoped to (every queue if it is not scoped).
    #[must_use]
    pub fn may_use(&self, q: QueueName) -> bool {
        self.is_admin() || self.queues.as_ref().is_none_or(|qs| qs.contains(&q))
    }

    /// Whether this key may read a job of queue `queue` submitted by key `submitter`:
    /// an admin reads every job, a submitter only those it submitted, on its queues.
    /// Tenants are kept apart by answering 404 otherwise, which tells nothing of
    /// whether the job exists.
    #[must_use]
    pub fn may_read(&self, queue: &str, submitter: Option<i64>) -> bool {
        self.is_admin()
            || (submitter == Some(self.key_id)
                && queue.parse::<QueueName>().is_ok_and(|q| self.may_use(q)))
    }

    /// The queues of `wanted` (every queue if empty) this key may use.
    #[must_use]
    pub fn usable(&self, wanted: &[QueueName]) -> Vec<QueueName> {
        let all = if wanted.is_empty() {
            QueueName::ALL.as_slice()
        } else {
            wanted
        };
        all.iter().copied().filter(|q| self.may_use(*q)).collect()
    }
}

/// Parses a key's stored queue scope (`export,analysis`).
pub fn parse_queues(s: &str) -> Result<Arc<[QueueName]>, drover_jobs::queues::UnknownQueue> {
    s.split(',')
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::parse::<QueueName>)
        .collect::<Result<Vec<_>, _>>()
        .map(Arc::from)
}

/// An API key of either role (submitter or admin), sent as `Authorization: Bearer <key>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "API key", checker = "check_submitter")]
pub struct SubmitterKey(pub Principal);

/// An admin API key, sent as `Authorization: Bearer <key>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "API key", checker = "check_admin")]
pub struct AdminKey(pub Principal);

async fn check_submitter(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    authorize(req, &bearer.token, Role::Submitter).await
}

async fn check_admin(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    authorize(req, &bearer.token, Role::Admin).await
}

/// Authenticates `token`, checks its role against `needed`, and takes a token from its
/// rate-limit bucket.
async fn authorize(req: &Request, token: &str, needed: Role) -> poem::Result<Principal> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal("the application state is missing"))?;
    let addr = req
        .remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_canonical());
    // A dashboard session (cookie, checked by `crate::ui::session`) stands in for the
    // key: its principal was verified for this very request.
    let session = req
        .extensions()
        .get::<crate::ui::session::SessionPrincipal>()
        .map(|s| cache::Verdict::Valid(s.0.clone()));
    let verdict = match session {
        Some(v) => v,
        None => state.keys().verify(token, addr).await?,
    };
    let principal = match verdict {
        cache::Verdict::Valid(p) => p,
        cache::Verdict::Invalid => {
            return Err(ApiError::unauthorized("the API key is unknown or revoked").into());
        }
        cache::Verdict::Limited(wait) => {
            metrics::counter!("drover_http_auth_limited_total").increment(1);
            return Err(ApiError::auth_limited(wait).into());
        }
    };
    tracing::Span::current().record("api_key", principal.key_id);
    if !principal.role.allows(needed) {
        return Err(ApiError::forbidden(format!(
            "this operation needs an {needed} key; this is a {} key",
            principal.role
        ))
        .into());
    }
    state.limiter().check(&principal).await?;
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_may_do_everything_submitters_only_submit() {
        assert!(Role::Admin.allows(Role::Admin));
        assert!(Role::Admin.allows(Role::Submitter));
        assert!(Role::Submitter.allows(Role::Submitter));
        assert!(!Role::Submitter.allows(Role::Admin));
        for r in [Role::Admin, Role::Submitter] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
