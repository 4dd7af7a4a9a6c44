//! Names of the Prometheus series the queue records through the `metrics` facade.
//!
//! Nothing is recorded unless the process installs a recorder (every Drover binary does).

/// Counter: attempts that completed, by `queue`.
pub const COMPLETED: &str = "drover_jobs_completed_total";
/// Counter: jobs that failed for good, by `queue` and `reason` (one of
/// [`FAIL_REASONS`], the job's `failed_reason`).
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
/// Counter: running jobs handed back to their queue at the shutdown timeout (their
/// handlers were cut off; the attempt does not count), by `queue`.
pub const HANDED_BACK: &str = "drover_jobs_handed_back_total";
/// Histogram: seconds from ready to started, by `queue`.
pub const WAIT_SECONDS: &str = "drover_job_wait_seconds";
/// Histogram: seconds a handler ran, by `queue` and `outcome`.
pub const RUN_SECONDS: &str = "drover_job_run_seconds";
/// Counter: fetches the queue's flow control held back (no token, a rate pause, or
/// the queue at its `max_active`), by `queue`.
pub const RATE_LIMITED: &str = "drover_queue_rate_limited_total";
/// Counter: fetches held back because the queue's retention enforcer was far behind
/// its archive (`EnforcerOptions::hold_backlog`), by `queue`.
pub const ARCHIVE_HELD: &str = "drover_queue_archive_held_total";
/// Gauge: 1 while the queue's starts are held for its archive to catch up, by `queue`
/// (set by the worker running the queue's retention).
pub const ARCHIVE_HOLD: &str = "drover_queue_archive_hold";
/// Counter: attempts a handler deferred (`retry_after`), by `queue`.
pub const DEFERRED: &str = "drover_jobs_deferred_total";

/// The reasons `FAILED` is labelled with: a handler's permanent error, a retryable
/// error on the last attempt, a handler that deferred more than `max_attempts`
/// times, and a job whose lease expired on its last attempt (its worker died).
pub const FAIL_REASONS: [&str; 4] = [
    "permanent",
    "attempts_exhausted",
    "deferrals_exhausted",
    "stalled",
];
/// The reasons an acknowledgement reports failures by, in its reply's order.
pub(crate) const ACK_FAIL_REASONS: [&str; 3] = [FAIL_REASONS[0], FAIL_REASONS[1], FAIL_REASONS[2]];

/// The outcomes `RUN_SECONDS` is labelled with.
pub const RUN_OUTCOMES: [&str; 3] = ["completed", "retried", "failed"];

/// Creates, at zero, every per-queue series a worker of `queue` records, so each
/// exists from the first scrape: a rate over a series that appears with its first
/// event misses that event, and an alert on an absent series never fires.
pub fn zero_worker_series(queue: &str) {
    for reason in FAIL_REASONS {
        metrics::counter!(FAILED, "queue" => queue.to_owned(), "reason" => reason).increment(0);
    }
    for name in [
        COMPLETED,
        RETRIED,
        RESCUED,
        STALE_ACKS,
        LEASES_LOST,
        HANDED_BACK,
        RATE_LIMITED,
        ARCHIVE_HELD,
        DEFERRED,
    ] {
        metrics::counter!(name, "queue" => queue.to_owned()).increment(0);
    }
    // A registered histogram renders its buckets at zero before its first sample.
    let _ = metrics::histogram!(WAIT_SECONDS, "queue" => queue.to_owned());
    for outcome in RUN_OUTCOMES {
        let _ = metrics::histogram!(RUN_SECONDS, "queue" => queue.to_owned(), "outcome" => outcome);
    }
}

/// Creates `ENQUEUED` for `queue` at zero, in a process that enqueues (see
/// [`zero_worker_series`] for why).
pub fn zero_enqueue_series(queue: &str) {
    metrics::counter!(ENQUEUED, "queue" => queue.to_owned()).increment(0);
}
