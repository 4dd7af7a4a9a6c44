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
    /// outcome not yet recorded): id → lease token. Their leases are renewed.
    held: Mutex<HashMap<String, u64>>,
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

impl Shared {
    fn hold(&self, jobs: &[Leased]) {
        if let Ok(mut h) = self.held.lock() {
            for j in jobs {
                h.insert(j.id.clone(), j.token);
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
                if h.get(id) == Some(&token) {
                    h.remove(id);
                }
            }
        }
    }

    fn snapshot_held(&self) -> Vec<(String, u64)> {
        self.held
            .lock()
            .map(|h| h.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }
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
            stop_fetch: CancellationToken::new(),
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
        let shared = self.shared.clone();
        let hub = self.hub.clone();
        let ack_tx = self.ack_tx.clone();
        let fetcher = self.fetcher.take();
        let others = std::mem::take(&mut self.others);
        async move {
            tracing::debug!(
                queue = shared.queue.name(),
                unstarted = unstarted.len(),
                "closing"
            );
            shared.stop_fetch.cancel();
            if let Some(f) = fetcher {
                let _ = f.await;
            }
            tracing::debug!(queue = shared.queue.name(), "fetcher stopped");
            let deadline = Instant::now() + shared.opts.close_timeout;
            if !unstarted.is_empty() {
                release(&shared, &unstarted, deadline).await;
            }
            let (tx, rx) = oneshot::channel();
            if ack_tx.send(AckMsg::Barrier(tx)).is_ok()
                && tokio::time::timeout_at(deadline.into(), rx).await.is_err()
            {
                shared.give_up.cancel();
            }
            tracing::debug!(queue = shared.queue.name(), "outcomes recorded");
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

impl Drop for Driver {
    fn drop(&mut self) {
        // A driver dropped without close (the worker future was dropped): stop the tasks;
        // the leases it held expire and the jobs are rescued.
        self.shared.stop_fetch.cancel();
        self.shared.stop_all.cancel();
    }
}

/// Logs a Redis failure: the first, then every tenth, so an outage does not flood the logs.
fn log_failure(what: &str, queue: &str, failures: u32, err: &crate::QueueError) {
    if failures == 1 || failures.is_multiple_of(10) {
        tracing::warn!(queue, failures, error = %err, "{what} failed; retrying");
    }
}

async fn fetch_loop(s: Arc<Shared>, jobs: mpsc::Sender<Leased>) {
    let max_held = s.opts.concurrency + s.opts.prefetch;
    let q = s.queue.name().to_owned();
    let mut failures = 0u32;
    let mut idle_until: Option<Instant> = None;
    loop {
        // Wait for room.
        let free = loop {
            let room = s.capacity.notified();
            let busy = s.outstanding.load(Ordering::SeqCst);
            if busy < max_held {
                break max_held - busy;
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
        match s
            .queue
            .fetch(&s.worker_id, n, s.opts.lease, s.opts.promote_batch)
            .await
        {
            Ok(FetchReply::Paused) => {
                if failures > 0 {
                    tracing::info!(queue = q, "redis reachable again");
                }
                failures = 0;
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
                s.hold(&leased);
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
                metrics::counter!(m::FAILED, "queue" => label()).increment(r.failed);
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
    let mut renew = interval((s.opts.lease / 3).max(Duration::from_millis(50)));
    let mut rescue = interval(s.opts.rescue_interval);
    for t in [&mut heartbeat, &mut renew, &mut rescue] {
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
            _ = renew.tick() => renew_leases(&s).await,
            _ = rescue.tick() => rescue_expired(&s).await,
            () = s.stop_all.cancelled() => break,
        }
    }
    let bye = s.queue.heartbeat(&s.worker_id, "", Duration::ZERO);
    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
}

async fn renew_leases(s: &Shared) {
    let held = s.snapshot_held();
    if held.is_empty() {
        return;
    }
    for chunk in held.chunks(1000) {
        match s.queue.renew(s.opts.lease, chunk).await {
            Ok(lost) if !lost.is_empty() => {
                tracing::warn!(
                    queue = s.queue.name(),
                    lost = lost.len(),
                    "leases lost (jobs rescued or removed); their outcomes will be ignored"
                );
                let lost: Vec<(String, u64)> = chunk
                    .iter()
                    .filter(|(id, _)| lost.contains(id))
                    .cloned()
                    .collect();
                s.drop_held(lost.iter().map(|(id, t)| (id.as_str(), *t)));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(queue = s.queue.name(), error = %e, "lease renewal failed"),
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
