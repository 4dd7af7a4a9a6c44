//! The suites that must work on one Redis and on a Redis Cluster run once on each.

use crate::{TestCluster, redis_server_available, shared_redis_url};

/// Where a test's Redis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestTarget {
    /// One server: the machine's shared Redis, in a namespace of the test's own.
    Node,
    /// A cluster of three masters and three replicas shared by the tests of this
    /// process ([`TestCluster::shared`]), in a namespace of the test's own.
    Cluster,
}

impl TestTarget {
    /// The `REDIS_URL` of this target, or `None` (with a message saying why the test
    /// is skipped) when a cluster cannot be built here because `redis-server` is
    /// missing. [`each_target!`](crate::each_target) skips the cluster's run then.
    #[must_use]
    pub fn url(self) -> Option<String> {
        match self {
            Self::Node => Some(shared_redis_url()),
            Self::Cluster if !redis_server_available() => {
                eprintln!("SKIPPED on a cluster: redis-server is not on the PATH to build one");
                None
            }
            Self::Cluster => Some(TestCluster::shared().url()),
        }
    }
}

/// Runs a test once on one Redis and once on a cluster: each test becomes a module
/// of two tests, `node` and `cluster`, with the target bound to the name given.
///
/// ```ignore
/// each_target! {
///     #[tokio::test]
///     async fn a_job_runs(target) {
///         let (redis, queue) = shared_queue(target);
///         …
///     }
/// }
/// ```
#[macro_export]
macro_rules! each_target {
    ($(#[$meta:meta])* async fn $name:ident($target:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$meta])*
            async fn node() {
                let $target = $crate::TestTarget::Node;
                $body
            }

            $(#[$meta])*
            async fn cluster() {
                let $target = $crate::TestTarget::Cluster;
                if $target.url().is_none() {
                    return;
                }
                $body
            }
        }
    };
}

/// The `REDIS_URL` of `target`, for a test that [`each_target!`](crate::each_target)
/// runs (which skips the cluster's run when there is none).
///
/// # Panics
/// When there is no such Redis.
#[must_use]
pub fn url_of(target: TestTarget) -> String {
    target
        .url()
        .expect("each_target! skips a target that cannot run")
}
