//! Names of the Prometheus series the queue records through the `metrics` facade.
//!
//! Nothing is recorded unless the process installs a recorder (every Drover binary does).

/// Counter: attempts that completed, by `queue`.
pub const COMPLETED: &str = "drover_jobs_completed_total";
/// Counter: jobs that failed for good, by `queue`.
pub const FAILED: &str = "drover_jobs_failed_total";
/// Counter: failed attempts scheduled for a retry, by `queue`.
pub const RETRIED: &str = "drover_jobs_retried_total";
/// Counter: jobs rescued after their lease expired, by `queue`.
pub const RESCUED: &str = "drover_jobs_rescued_total";
/// Counter: jobs enqueued, by `queue`.
pub const ENQUEUED: &str = "drover_jobs_enqueued_total";
/// Counter: outcomes ignored because the worker had lost the job's lease, by `queue`.
pub const STALE_ACKS: &str = "drover_stale_acks_total";
/// Counter: leases a worker lost while their handler ran (renewal failed in time, or
/// the job was rescued elsewhere), by `queue`.
pub const LEASES_LOST: &str = "drover_leases_lost_total";
/// Histogram: seconds from ready to started, by `queue`.
pub const WAIT_SECONDS: &str = "drover_job_wait_seconds";
/// Histogram: seconds a handler ran, by `queue` and `outcome`.
pub const RUN_SECONDS: &str = "drover_job_run_seconds";
/// Counter: fetches the queue's flow control held back (no token, a rate pause, or
/// the queue at its `max_active`), by `queue`.
pub const RATE_LIMITED: &str = "drover_queue_rate_limited_total";
/// Counter: attempts a handler deferred (`retry_after`), by `queue`.
pub const DEFERRED: &str = "drover_jobs_deferred_total";
