//! The tasks that move one worker's jobs between Redis and its apalis worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::WorkerOptions;
use super::context::ProgressBuffer;
use super::wake::WakeHub;
use crate::metrics as m;
use crate::queue::{AckItem, FetchReply, Leased, Queue, now_ms};
use crate::reconnect::reconnect_delay;

/// A message to the acknowledger.
pub(crate) enum AckMsg {
    /// A finished attempt.
    Done(AckItem),
    /// Answer once everything sent before this is recorded (or given up on).
    Barrier(oneshot::Sender<()>),
}

/// The channels between a driver and its backend.
pub(crate) struct Channels {
    /// Leased jobs, to the backend.
    pub jobs: mpsc::Sender<Leased>,
    /// A sender of outcomes, kept to send the shutdown barrier.
    pub ack_tx: mpsc::UnboundedSender<AckMsg>,
    /// Outcomes, from the backend's middleware.
    pub acks: mpsc::UnboundedReceiver<AckMsg>,
}

/// What the tasks share.
struct Shared {
    queue: Queue,
    opts: WorkerOptions,
    worker_id: String,
    /// Jobs this worker holds a lease on (prefetched, running, or finished with the
    /// outcome not yet recorded). Their leases are renewed.
    held: Mutex<HashMap<String, Held>>,
    /// Jobs leased and not yet finished by their handler (or handed back). The fetcher
    /// leases more only while this is below `concurrency + prefetch`, so recording
    /// outcomes never holds up the next fetch.
    outstanding: AtomicUsize,
    /// Fires when `outstanding` drops, so the fetcher can lease more.
    capacity: Notify,
    /// Fires when the queue may have work (wake-up notice).
    wake: Arc<Notify>,
    /// Stops the fetcher.
    stop_fetch: CancellationToken,
    /// Stops everything else.
    stop_all: CancellationToken,
    /// Tells the acknowledger to stop retrying and drop what it holds.
    give_up: CancellationToken,
    progress: ProgressBuffer,
}

/// One lease this worker holds.
struct Held {
    token: u64,
    /// The handler's [`JobContext::lease_lost`](super::JobContext::lease_lost).
    lost: CancellationToken,
    /// When the lease runs out at the latest, by this machine's clock: the time the
    /// last successful renewal (or the fetch) was *sent*, plus the lease. Redis set the
    /// expiry from its own clock when the request arrived, which is later.
    deadline: Instant,
}

impl Shared {
    fn hold(&self, jobs: &[Leased], sent: Instant) {
        let deadline = sent + self.opts.lease;
        if let Ok(mut h) = self.held.lock() {
            for j in jobs {
                h.insert(
                    j.id.clone(),
                    Held {
                        token: j.token,
                        lost: j.lease_lost.clone(),
                        deadline,
                    },
                );
            }
        }
        self.outstanding.fetch_add(jobs.len(), Ordering::SeqCst);
    }

    /// `n` leased jobs are done with (finished by their handler, or handed back).
    fn finished(&self, n: usize) {
        if n > 0 {
            self.outstanding.fetch_sub(n, Ordering::SeqCst);
            self.capacity.notify_one();
        }
    }

    fn drop_held<'a>(&self, jobs: impl IntoIterator<Item = (&'a str, u64)>) {
        if let Ok(mut h) = self.held.lock() {
            for (id, token) in jobs {
                if h.get(id).is_some_and(|l| l.token == token) {
                    h.remove(id);
                }
            }
        }
    }

    /// Whether this worker still holds the lease, with time to spare before its
    /// deadline (the lease watch may not have looked yet).
    fn still_held(&self, id: &str, token: u64, now: Instant) -> bool {
        let margin = lease_margin(self.opts.lease);
        self.held.lock().is_ok_and(|h| {
            h.get(id).is_some_and(|l| {
                l.token == token && l.deadline.checked_sub(margin).unwrap_or(l.deadline) > now
            })
        })
    }

    fn snapshot_held(&self) -> Vec<(String, u64)> {
        self.held
            .lock()
            .map(|h| h.iter().map(|(k, v)| (k.clone(), v.token)).collect())
            .unwrap_or_default()
    }

    /// The renewal of these leases, sent at `sent`, succeeded.
    fn renewed(&self, jobs: &[(String, u64)], sent: Instant) {
        let deadline = sent + self.opts.lease;
        if let Ok(mut h) = self.held.lock() {
            for (id, token) in jobs {
                if let Some(l) = h.get_mut(id)
                    && l.token == *token
                {
                    l.deadline = l.deadline.max(deadline);
                }
            }
        }
    }

    /// These leases are lost: tell their handlers, and stop renewing them. Their
    /// outcomes are still sent; the ack script ignores them if the job moved on.
    fn lose<'a>(&self, jobs: impl IntoIterator<Item = (&'a str, u64)>) -> usize {
        let mut n = 0;
        if let Ok(mut h) = self.held.lock() {
            for (id, token) in jobs {
                if h.get(id).is_some_and(|l| l.token == token)
                    && let Some(l) = h.remove(id)
                {
                    l.lost.cancel();
                    n += 1;
                }
            }
        }
        n
    }

    /// Fires the signal of every lease whose deadline, less a margin, has passed.
    /// Returns how many, and when the next one falls due.
    fn lose_overdue(&self, now: Instant) -> (usize, Option<Instant>) {
        let margin = lease_margin(self.opts.lease);
        let mut n = 0;
        let mut next: Option<Instant> = None;
        if let Ok(mut h) = self.held.lock() {
            h.retain(|_, l| {
                let due = l.deadline.checked_sub(margin).unwrap_or(l.deadline);
                if due <= now {
                    l.lost.cancel();
                    n += 1;
                    false
                } else {
                    next = Some(next.map_or(due, |x: Instant| x.min(due)));
                    true
                }
            });
        }
        (n, next)
    }
}

/// How long before a lease's deadline its holder gives it up when it could not renew
/// it: a fifth of the lease. Another worker can rescue the job only after the
/// deadline, so the handler hears of it first, with time to stop.
fn lease_margin(lease: Duration) -> Duration {
    lease / 5
}

/// The running driver of one backend.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    hub: WakeHub,
    ack_tx: mpsc::UnboundedSender<AckMsg>,
    fetcher: Option<JoinHandle<()>>,
    others: Vec<JoinHandle<()>>,
}

impl Driver {
    /// Starts the tasks. Leased jobs go into `jobs`; outcomes come from `acks`.
    pub(crate) fn start(
        queue: Queue,
        hub: WakeHub,
        opts: WorkerOptions,
        worker_id: String,
        progress: ProgressBuffer,
        channels: Channels,
    ) -> Self {
        let Channels { jobs, ack_tx, acks } = channels;
        let wake = hub.subscribe(queue.name());
        let shared = Arc::new(Shared {
            queue,
            opts,
            worker_id,
            held: Mutex::new(HashMap::new()),
            outstanding: AtomicUsize::new(0),
            capacity: Notify::new(),
            wake,
            // The process's shutdown stops every fetcher at once, before jobs drain.
            stop_fetch: hub.stopping().child_token(),
            stop_all: CancellationToken::new(),
            give_up: CancellationToken::new(),
            progress,
        });
        tracing::info!(
            queue = shared.queue.name(),
            worker = shared.worker_id,
            concurrency = shared.opts.concurrency,
            "worker started"
        );
        let fetcher = tokio::spawn(fetch_loop(shared.clone(), jobs));
        let others = vec![
            tokio::spawn(ack_loop(shared.clone(), acks)),
            tokio::spawn(maintenance_loop(shared.clone())),
            tokio::spawn(renew_loop(shared.clone())),
            tokio::spawn(lease_watch_loop(shared.clone())),
            tokio::spawn(progress_loop(shared.clone())),
        ];
        Self {
            shared,
            hub,
            ack_tx,
            fetcher: Some(fetcher),
            others,
        }
    }

    /// Stops leasing, hands back `unstarted` jobs, records every outcome already sent,
    /// writes the last progress reports, and says goodbye.
    pub(crate) fn close(
        &mut self,
        unstarted: Vec<(String, u64)>,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.shut_down(HandBack::Unstarted(unstarted))
    }

    fn shut_down(&mut self, hand_back: HandBack) -> impl Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        let hub = self.hub.clone();
        let ack_tx = self.ack_tx.clone();
        let fetcher = self.fetcher.take();
        let others = std::mem::take(&mut self.others);
        async move {
            tracing::debug!(queue = shared.queue.name(), "closing");
            shared.stop_fetch.cancel();
            if let Some(f) = fetcher {
                let _ = f.await;
            }
            tracing::debug!(queue = shared.queue.name(), "fetcher stopped");
            let deadline = Instant::now() + shared.opts.close_timeout;
            if let HandBack::Unstarted(unstarted) = &hand_back
                && !unstarted.is_empty()
            {
                release(&shared, unstarted, deadline).await;
            }
            let (tx, rx) = oneshot::channel();
            if ack_tx.send(AckMsg::Barrier(tx)).is_ok()
                && tokio::time::timeout_at(deadline.into(), rx).await.is_err()
            {
                shared.give_up.cancel();
            }
            tracing::debug!(queue = shared.queue.name(), "outcomes recorded");
            if matches!(hand_back, HandBack::Unfinished) {
                hand_back_unfinished(&shared, deadline).await;
            }
            flush_progress(&shared).await;
            shared.stop_all.cancel();
            for t in others {
                let _ = t.await;
            }
            hub.unsubscribe(shared.queue.name(), &shared.wake);
            tracing::info!(
                queue = shared.queue.name(),
                worker = shared.worker_id,
                "worker stopped"
            );
        }
    }
}

/// What a closing driver hands back to the queue.
enum HandBack {
    /// The worker drained: these jobs were delivered but never started.
    Unstarted(Vec<(String, u64)>),
    /// The worker was dropped with handlers running (the shutdown timeout passed):
    /// every job still held once the outcomes already sent are recorded.
    Unfinished,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.others.is_empty() || !self.hub.stopping().is_cancelled() {
            // Closed already (then this changes nothing), dropped while closing, or
            // dropped outside a shutdown (the worker future was aborted, as a crash
            // would end it): stop the tasks; the leases still held expire and their
            // jobs are rescued.
            self.shared.stop_fetch.cancel();
            self.shared.stop_all.cancel();
            return;
        }
        // Dropped without close while the process shuts down
        // (`WakeHub::stop_fetching` was called): the monitor drops the workers still
        // running at its shutdown timeout. Their
        // handlers are gone with it, so hand their jobs back at once rather than leave
        // them `active` until their leases expire.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.shared.stop_fetch.cancel();
            self.shared.stop_all.cancel();
            return;
        };
        let hub = self.hub.clone();
        let fut = self.shut_down(HandBack::Unfinished);
        hub.track_hand_back(rt.spawn(fut));
    }
}

/// Hands back every job still held (its handler did not finish), without costing
/// an attempt, so another worker runs it at once.
async fn hand_back_unfinished(s: &Shared, deadline: Instant) {
    let held: Vec<(String, u64)> = match s.held.lock() {
        Ok(h) => h
            .iter()
            .map(|(id, l)| {
                // Whatever still runs for these jobs must stop writing.
                l.lost.cancel();
                (id.clone(), l.token)
            })
            .collect(),
        Err(_) => return,
    };
    if held.is_empty() {
        return;
    }
    tracing::info!(
        queue = s.queue.name(),
        worker = s.worker_id,
        jobs = held.len(),
        "shutdown timeout: handing running jobs back to the queue"
    );
    metrics::counter!(m::HANDED_BACK, "queue" => s.queue.name().to_owned())
        .increment(held.len() as u64);
    release(s, &held, deadline).await;
}

/// Logs a Redis failure: the first, then every tenth, so an outage does not flood the logs.
fn log_failure(what: &str, queue: &str, failures: u32, err: &crate::QueueError) {
    if failures == 1 || failures.is_multiple_of(10) {
        tracing::warn!(queue, failures, error = %err, "{what} failed; retrying");
    }
}

/// Free slots to fetch for, once enough are free to make the fetch worth it.
///
/// See [`WorkerOptions::fetch_coalesce`]: with jobs still running and only a few
/// slots free, waits up to that long for half the slots (or a full fetch batch)
/// to be free, so one script leases many jobs instead of one per finished job.
async fn coalesce(s: &Shared, max_held: usize, busy: usize) -> usize {
    let want = (max_held / 2).min(s.opts.fetch_batch).max(1);
    let free = || max_held.saturating_sub(s.outstanding.load(Ordering::SeqCst));
    if busy == 0 || max_held - busy >= want || s.opts.fetch_coalesce.is_zero() {
        return max_held - busy;
    }
    let enough = async {
        loop {
            let room = s.capacity.notified();
            if free() >= want {
                return;
            }
            room.await;
        }
    };
    tokio::select! {
        () = enough => {}
        () = tokio::time::sleep(s.opts.fetch_coalesce) => {}
        () = s.stop_fetch.cancelled() => {}
    }
    free()
}

async fn fetch_loop(s: Arc<Shared>, jobs: mpsc::Sender<Leased>) {
    let max_held = s.opts.concurrency + s.opts.prefetch;
    let q = s.queue.name().to_owned();
    let mut failures = 0u32;
    let mut idle_until: Option<Instant> = None;
    // Numbers this worker's fetches, so a batch is confirmed by its own number.
    let mut fetch_seq = 0u64;
    loop {
        // Wait for room.
        let free = loop {
            let room = s.capacity.notified();
            let busy = s.outstanding.load(Ordering::SeqCst);
            if busy < max_held {
                break coalesce(&s, max_held, busy).await;
            }
            tokio::select! {
                () = room => {}
                () = s.stop_fetch.cancelled() => return,
            }
        };
        // The queue was empty or paused: wait for a reason to look again.
        if let Some(until) = idle_until.take() {
            tokio::select! {
                () = s.wake.notified() => {}
                () = tokio::time::sleep_until(until.into()) => {}
                () = s.stop_fetch.cancelled() => return,
            }
        }
        if s.stop_fetch.is_cancelled() {
            return;
        }
        let n = free.min(s.opts.fetch_batch).max(1);
        let sent = Instant::now();
        fetch_seq += 1;
        match s
            .queue
            .fetch(
                &s.worker_id,
                fetch_seq,
                n,
                s.opts.lease,
                s.opts.promote_batch,
            )
            .await
        {
            Ok(FetchReply::Paused) => {
                if failures > 0 {
                    tracing::info!(queue = q, "redis reachable again");
                }
                failures = 0;
                idle_until = Some(Instant::now() + s.opts.poll_interval);
            }
            Ok(FetchReply::Held { wait, counter }) => {
                // No token, a rate pause, or a hold for the archive: sleep until it is
                // due to end (a wake-up notice, such as a limit changed by an admin or
                // the hold released, ends it early); never longer than the poll
                // interval, so a lost notice costs at most that.
                failures = 0;
                metrics::counter!(counter, "queue" => q.clone()).increment(1);
                let wait = wait.max(Duration::from_millis(1)).min(s.opts.poll_interval);
                idle_until = Some(Instant::now() + wait);
            }
            Ok(FetchReply::AtMaxActive) => {
                // The queue is at its max_active: the next finished job wakes us.
                failures = 0;
                metrics::counter!(m::RATE_LIMITED, "queue" => q.clone()).increment(1);
                idle_until = Some(Instant::now() + s.opts.poll_interval);
            }
            Ok(FetchReply::Jobs {
                jobs: leased,
                next_due_in_ms,
            }) => {
                if failures > 0 {
                    tracing::info!(queue = q, "redis reachable again");
                }
                failures = 0;
                let got = leased.len();
                s.hold(&leased, sent);
                let Some(leased) = confirm(&s, fetch_seq, leased).await else {
                    return;
                };
                let mut undelivered = Vec::new();
                for job in leased {
                    metrics::histogram!(m::WAIT_SECONDS, "queue" => q.clone())
                        .record(job.wait_ms as f64 / 1000.0);
                    if let Err(e) = jobs.send(job).await {
                        undelivered.push((e.0.id, e.0.token));
                    }
                }
                if !undelivered.is_empty() {
                    // The backend is closing: hand these back at once.
                    let deadline = Instant::now() + s.opts.close_timeout;
                    release(&s, &undelivered, deadline).await;
                    return;
                }
                if got < n {
                    let mut wait = s.opts.poll_interval;
                    if let Some(ms) = next_due_in_ms {
                        wait = wait.min(Duration::from_millis(u64::try_from(ms).unwrap_or(0) + 1));
                    }
                    idle_until = Some(Instant::now() + wait);
                }
            }
            Err(e) => {
                failures += 1;
                log_failure("fetch", &q, failures, &e);
                tokio::select! {
                    () = tokio::time::sleep(reconnect_delay(failures)) => {}
                    () = s.stop_fetch.cancelled() => return,
                }
            }
        }
    }
}

/// Confirms that this worker has the batch of fetch `fetch_seq` in hand, before any
/// of its handlers runs, so its attempts stand; keeps the jobs whose leases are still
/// this worker's. Retries through Redis failures (the confirmation is idempotent);
/// `None` when the worker stops meanwhile (the jobs were handed back).
async fn confirm(s: &Shared, fetch_seq: u64, mut leased: Vec<Leased>) -> Option<Vec<Leased>> {
    if leased.is_empty() {
        return Some(leased);
    }
    let mut failures = 0u32;
    loop {
        match s.queue.confirm(&s.worker_id, fetch_seq).await {
            Ok(()) => break,
            Err(e) => {
                failures += 1;
                log_failure("confirming a fetch", s.queue.name(), failures, &e);
                tokio::select! {
                    () = tokio::time::sleep(reconnect_delay(failures)) => {}
                    () = s.stop_fetch.cancelled() => {
                        let pairs: Vec<(String, u64)> =
                            leased.iter().map(|j| (j.id.clone(), j.token)).collect();
                        let deadline = Instant::now() + s.opts.close_timeout;
                        release(s, &pairs, deadline).await;
                        return None;
                    }
                }
            }
        }
    }
    if failures == 0 {
        return Some(leased);
    }
    // Retried through a partition: a lease that ran out meanwhile may have been
    // rescued (unconfirmed, so uncounted) and run elsewhere.
    let now = Instant::now();
    let (keep, lost): (Vec<Leased>, Vec<Leased>) = leased
        .drain(..)
        .partition(|j| !j.lease_lost.is_cancelled() && s.still_held(&j.id, j.token, now));
    if !lost.is_empty() {
        tracing::warn!(
            queue = s.queue.name(),
            lost = lost.len(),
            "leases ran out before their jobs started; they run elsewhere"
        );
        s.drop_held(lost.iter().map(|j| (j.id.as_str(), j.token)));
        s.finished(lost.len());
    }
    Some(keep)
}

async fn release(s: &Shared, jobs: &[(String, u64)], deadline: Instant) {
    let mut failures = 0;
    loop {
        match s.queue.release(jobs).await {
            Ok(n) => {
                tracing::debug!(
                    queue = s.queue.name(),
                    released = n,
                    "handed back unstarted jobs"
                );
                break;
            }
            Err(e) => {
                failures += 1;
                log_failure("handing back jobs", s.queue.name(), failures, &e);
                if Instant::now() >= deadline {
                    tracing::warn!(
                        queue = s.queue.name(),
                        jobs = jobs.len(),
                        "could not hand back unstarted jobs; they run again when their lease expires"
                    );
                    break;
                }
                tokio::time::sleep(reconnect_delay(failures)).await;
            }
        }
    }
    s.drop_held(jobs.iter().map(|(id, t)| (id.as_str(), *t)));
    s.finished(jobs.len());
}

async fn ack_loop(s: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<AckMsg>) {
    let mut buf = Vec::with_capacity(s.opts.ack_batch);
    let mut items: Vec<AckItem> = Vec::with_capacity(s.opts.ack_batch);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut buf, s.opts.ack_batch) => n,
            () = s.stop_all.cancelled() => 0,
        };
        if n == 0 {
            flush_acks(&s, &mut items).await;
            return;
        }
        let done = buf.iter().filter(|m| matches!(m, AckMsg::Done(_))).count();
        s.finished(done);
        for msg in buf.drain(..) {
            match msg {
                AckMsg::Done(item) => items.push(item),
                AckMsg::Barrier(tx) => {
                    flush_acks(&s, &mut items).await;
                    let _ = tx.send(());
                }
            }
        }
        flush_acks(&s, &mut items).await;
    }
}

async fn flush_acks(s: &Shared, items: &mut Vec<AckItem>) {
    if items.is_empty() {
        return;
    }
    let q = s.queue.name();
    let mut failures = 0u32;
    loop {
        match s.queue.ack(items).await {
            Ok(r) => {
                if failures > 0 {
                    tracing::info!(queue = q, "redis reachable again; outcomes recorded");
                }
                let label = || q.to_owned();
                metrics::counter!(m::COMPLETED, "queue" => label()).increment(r.completed);
                metrics::counter!(m::RETRIED, "queue" => label()).increment(r.retried);
                for (reason, n) in m::ACK_FAIL_REASONS.iter().zip(r.failed_by_reason) {
                    if n > 0 {
                        metrics::counter!(m::FAILED, "queue" => label(), "reason" => *reason)
                            .increment(n);
                    }
                }
                metrics::counter!(m::DEFERRED, "queue" => label()).increment(r.deferred);
                if r.stale > 0 {
                    metrics::counter!(m::STALE_ACKS, "queue" => label()).increment(r.stale);
                    tracing::warn!(
                        queue = q,
                        stale = r.stale,
                        "outcomes of jobs whose lease was lost were ignored"
                    );
                }
                break;
            }
            Err(e) => {
                failures += 1;
                log_failure("recording outcomes", q, failures, &e);
                if s.give_up.is_cancelled() {
                    tracing::warn!(
                        queue = q,
                        jobs = items.len(),
                        "gave up recording outcomes at shutdown; these jobs run again when their lease expires"
                    );
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(reconnect_delay(failures)) => {}
                    () = s.give_up.cancelled() => {}
                }
            }
        }
    }
    s.drop_held(items.iter().map(|i| (i.id.as_str(), i.token)));
    items.clear();
}

async fn maintenance_loop(s: Arc<Shared>) {
    use tokio::time::{MissedTickBehavior, interval};
    let q = s.queue.name().to_owned();
    let mut heartbeat = interval(s.opts.heartbeat_interval);
    let mut rescue = interval(s.opts.rescue_interval);
    for t in [&mut heartbeat, &mut rescue] {
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    }
    let ttl = s.opts.heartbeat_interval * 3;
    let info = serde_json::json!({
        "queue": q,
        "host": super::hostname(),
        "pid": std::process::id(),
        "concurrency": s.opts.concurrency,
        "started_at": now_ms(),
        "version": env!("CARGO_PKG_VERSION"),
    })
    .to_string();
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                if let Err(e) = s.queue.heartbeat(&s.worker_id, &info, ttl).await {
                    tracing::debug!(queue = q, error = %e, "heartbeat failed");
                }
            }
            _ = rescue.tick() => rescue_expired(&s).await,
            () = s.stop_all.cancelled() => break,
        }
    }
    let bye = s.queue.heartbeat(&s.worker_id, "", Duration::ZERO);
    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
}

/// How often leases are renewed: three times per lease, so two renewals in a row
/// may fail before the lease is in danger.
fn renew_every(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(50))
}

/// Renews the held leases, in a task of its own so that nothing else the worker
/// does with Redis (heartbeats, rescues) can hold a renewal up.
async fn renew_loop(s: Arc<Shared>) {
    let every = renew_every(s.opts.lease);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => renew_leases(&s, every).await,
            () = s.stop_all.cancelled() => return,
        }
    }
}

async fn renew_leases(s: &Shared, timeout: Duration) {
    let held = s.snapshot_held();
    if held.is_empty() {
        return;
    }
    for chunk in held.chunks(1000) {
        let sent = Instant::now();
        // A renewal that takes longer than the interval is given up on: the next
        // one goes out on time (a late answer is useless, and the watch fires the
        // lease-lost signal if none gets through).
        match tokio::time::timeout(timeout, s.queue.renew(s.opts.lease, chunk)).await {
            Ok(Ok(lost)) => {
                s.renewed(chunk, sent);
                if !lost.is_empty() {
                    let lost: Vec<&(String, u64)> =
                        chunk.iter().filter(|(id, _)| lost.contains(id)).collect();
                    // Jobs whose outcome was recorded since the snapshot are gone
                    // from `held` (or about to be: the acknowledger drops them right
                    // after its call returns), so a renewal can race an outcome and
                    // count one loss too many; it never misses a real one.
                    let n = s.lose(lost.iter().map(|(id, t)| (id.as_str(), *t)));
                    if n == 0 {
                        continue;
                    }
                    metrics::counter!(m::LEASES_LOST, "queue" => s.queue.name().to_owned())
                        .increment(n as u64);
                    tracing::warn!(
                        queue = s.queue.name(),
                        lost = n,
                        "leases lost (jobs rescued or removed); their handlers are told and their outcomes will be ignored"
                    );
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(queue = s.queue.name(), error = %e, "lease renewal failed");
            }
            Err(_) => tracing::debug!(
                queue = s.queue.name(),
                timeout_ms = timeout.as_millis() as u64,
                "lease renewal timed out"
            ),
        }
    }
}

/// Fires the lease-lost signal of every lease that could not be renewed in time.
async fn lease_watch_loop(s: Arc<Shared>) {
    let period = (s.opts.lease / 4).max(Duration::from_millis(10));
    loop {
        let now = Instant::now();
        let (lost, next) = s.lose_overdue(now);
        if lost > 0 {
            metrics::counter!(m::LEASES_LOST, "queue" => s.queue.name().to_owned())
                .increment(lost as u64);
            tracing::warn!(
                queue = s.queue.name(),
                lost,
                "leases could not be renewed in time; their handlers are told to stop"
            );
        }
        let wake = next.map_or(now + period, |n| n.min(now + period));
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = s.stop_all.cancelled() => return,
        }
    }
}

async fn rescue_expired(s: &Shared) {
    // Bounded: at most ten batches per tick, so one tick cannot run away.
    for _ in 0..10 {
        match s.queue.rescue(s.opts.rescue_batch).await {
            Ok((back, failed)) => {
                if back + failed > 0 {
                    metrics::counter!(m::RESCUED, "queue" => s.queue.name().to_owned())
                        .increment(back + failed);
                    if failed > 0 {
                        metrics::counter!(m::FAILED, "queue" => s.queue.name().to_owned(), "reason" => "stalled")
                            .increment(failed);
                    }
                    tracing::warn!(
                        queue = s.queue.name(),
                        back,
                        failed,
                        "rescued jobs whose lease expired"
                    );
                }
                if back + failed < s.opts.rescue_batch as u64 {
                    break;
                }
            }
            Err(e) => {
                tracing::debug!(queue = s.queue.name(), error = %e, "rescue failed");
                break;
            }
        }
    }
}

async fn progress_loop(s: Arc<Shared>) {
    let mut tick = tokio::time::interval(s.opts.progress_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => flush_progress(&s).await,
            () = s.stop_all.cancelled() => return,
        }
    }
}

async fn flush_progress(s: &Shared) {
    let items = s.progress.take();
    if items.is_empty() {
        return;
    }
    if let Err(e) = s.queue.progress(&items).await {
        tracing::debug!(queue = s.queue.name(), error = %e, dropped = items.len(), "progress reports dropped");
    }
}
