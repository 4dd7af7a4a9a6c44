//! Wake-ups: one pub/sub connection per process tells idle queue drivers that work arrived.
//!
//! A driver that finds its queue empty (or paused) leaves a `sleep` flag in Redis; the
//! next script that makes a job runnable sees the flag and publishes the queue's name
//! on `<ns>:wake`. Every driver of that queue in every process then fetches at once,
//! so an idle worker starts a new job within a round trip or two of its enqueue,
//! instead of at the next poll. Pub/sub is not durable, so drivers still poll on a
//! slow timer, and every reconnect wakes everyone, in case a notice was missed.
//!
//! On a cluster each queue has a shard channel in its own slot (see [`crate::keys`]):
//! the hub subscribes (`SSUBSCRIBE`) to the channel of every queue a driver of this
//! process runs, on the master that owns the queue, and redis-rs moves the
//! subscription when the slot moves or fails over. Every confirmation of a
//! subscription, first or renewed, wakes that queue's drivers, for the same reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use redis::{PushInfo, PushKind};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::connection::Redis;
use crate::keys::{shard_wake_channel, wake_channel};

/// Dispatches wake-up notices to the drivers of this process.
///
/// It is also what the drivers of one process share at shutdown: the signal to stop
/// fetching ([`WakeHub::stop_fetching`]) and the hand-backs of jobs whose handlers were
/// cut off ([`WakeHub::handed_back`]), which the process must wait for before it exits.
#[derive(Clone)]
pub struct WakeHub {
    inner: Arc<Inner>,
}

struct Inner {
    subscribers: Mutex<HashMap<String, Vec<Arc<Notify>>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Cancelled when the process starts to shut down: every fetcher stops leasing.
    stopping: CancellationToken,
    /// The hand-backs that dropped drivers started (see `Driver`'s `Drop`).
    hand_backs: Mutex<Vec<JoinHandle<()>>>,
    /// On a cluster: the queues to subscribe to, as drivers of new queues arrive.
    new_queues: Option<mpsc::UnboundedSender<String>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut t) = self.task.lock()
            && let Some(t) = t.take()
        {
            t.abort();
        }
    }
}

impl std::fmt::Debug for WakeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeHub").finish_non_exhaustive()
    }
}

impl WakeHub {
    /// Starts listening for the wake-ups of namespace `ns`.
    #[must_use]
    pub fn start(redis: Redis, ns: &str) -> Self {
        let (new_queues, queues_rx) = if redis.is_cluster() {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let inner = Arc::new(Inner {
            subscribers: Mutex::new(HashMap::new()),
            task: Mutex::new(None),
            stopping: CancellationToken::new(),
            hand_backs: Mutex::new(Vec::new()),
            new_queues,
        });
        let weak = Arc::downgrade(&inner);
        let task = match queues_rx {
            Some(rx) => tokio::spawn(listen_sharded(redis, ns.to_owned(), weak, rx)),
            None => tokio::spawn(listen(redis, wake_channel(ns), weak)),
        };
        if let Ok(mut t) = inner.task.lock() {
            *t = Some(task);
        }
        Self { inner }
    }

    /// A notifier that fires when queue `queue` may have work.
    #[must_use]
    pub fn subscribe(&self, queue: &str) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        if let Ok(mut subs) = self.inner.subscribers.lock() {
            let list = subs.entry(queue.to_owned()).or_default();
            if list.is_empty()
                && let Some(tx) = &self.inner.new_queues
            {
                let _ = tx.send(queue.to_owned());
            }
            list.push(n.clone());
        }
        n
    }

    /// Tells every driver of this process to stop leasing jobs: the process is shutting
    /// down, and a job leased now would only wait for the hand-back. Call it as soon as
    /// the shutdown signal arrives, before the running jobs drain.
    pub fn stop_fetching(&self) {
        self.inner.stopping.cancel();
    }

    /// A token cancelled by [`WakeHub::stop_fetching`].
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.inner.stopping
    }

    /// Keeps the task of a dropped driver's hand-back, for [`WakeHub::handed_back`].
    pub(crate) fn track_hand_back(&self, task: JoinHandle<()>) {
        if let Ok(mut h) = self.inner.hand_backs.lock() {
            h.retain(|t| !t.is_finished());
            h.push(task);
        }
    }

    /// Waits for the hand-backs of jobs whose handlers were cut off (a worker dropped
    /// at the shutdown timeout hands its running jobs back to their queues, so they run
    /// elsewhere at once instead of after their lease expires). Each hand-back gives up
    /// after the workers' `close_timeout`. Call it after the workers stopped and
    /// before the process exits, or the runtime drops the hand-backs half done.
    pub async fn handed_back(&self) {
        let tasks = self
            .inner
            .hand_backs
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Stops notifying `notify`.
    pub fn unsubscribe(&self, queue: &str, notify: &Arc<Notify>) {
        if let Ok(mut subs) = self.inner.subscribers.lock()
            && let Some(list) = subs.get_mut(queue)
        {
            list.retain(|n| !Arc::ptr_eq(n, notify));
        }
    }
}

/// Listens on the namespace's channel of one server, reconnecting forever.
async fn listen(redis: Redis, channel: String, weak: std::sync::Weak<Inner>) {
    let mut delay = Duration::from_millis(50);
    loop {
        match redis.pubsub().await {
            Ok(mut ps) => match ps.subscribe(&channel).await {
                Ok(()) => {
                    delay = Duration::from_millis(50);
                    tracing::debug!(channel, "listening for wake-ups");
                    // Anything published while we were away is lost: wake everyone.
                    if let Some(inner) = weak.upgrade() {
                        wake_all(&inner);
                    }
                    let mut messages = ps.on_message();
                    while let Some(msg) = messages.next().await {
                        let Some(inner) = weak.upgrade() else { return };
                        if let Ok(queue) = msg.get_payload::<String>() {
                            wake_queue(&inner, &queue);
                        }
                    }
                    tracing::warn!(channel, "wake-up connection to redis lost; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to wake-ups"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot open the wake-up connection"),
        }
        if weak.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Listens on the shard channels of a cluster: one per queue with a driver here.
async fn listen_sharded(
    redis: Redis,
    ns: String,
    weak: std::sync::Weak<Inner>,
    mut new_queues: mpsc::UnboundedReceiver<String>,
) {
    let channel_of = |queue: &str| shard_wake_channel(&format!("{{{ns}:{queue}}}:"));
    let queue_of = |channel: &str| {
        channel
            .strip_prefix(&format!("{{{ns}:"))
            .and_then(|r| r.strip_suffix("}:wake"))
            .map(str::to_owned)
    };
    let mut delay = Duration::from_millis(50);
    loop {
        let (tx, mut pushes) = mpsc::unbounded_channel();
        match redis.shard_subscriber(tx).await {
            Ok(mut conn) => {
                delay = Duration::from_millis(50);
                let queues: Vec<String> = weak
                    .upgrade()
                    .and_then(|i| {
                        i.subscribers
                            .lock()
                            .ok()
                            .map(|s| s.keys().cloned().collect())
                    })
                    .unwrap_or_default();
                let mut subscribed = true;
                for q in &queues {
                    if let Err(e) = conn.ssubscribe(channel_of(q)).await {
                        tracing::warn!(queue = q, error = %e, "cannot subscribe to wake-ups");
                        subscribed = false;
                    }
                }
                if let Some(inner) = weak.upgrade() {
                    wake_all(&inner);
                }
                while subscribed {
                    tokio::select! {
                        push = pushes.recv() => {
                            let Some(push) = push else { break };
                            let Some(inner) = weak.upgrade() else { return };
                            on_shard_push(&inner, &mut conn, push, &queue_of).await;
                        }
                        queue = new_queues.recv() => {
                            let Some(queue) = queue else { return };
                            if let Err(e) = conn.ssubscribe(channel_of(&queue)).await {
                                tracing::warn!(queue, error = %e, "cannot subscribe to wake-ups");
                                subscribed = false;
                            }
                        }
                    }
                }
                tracing::warn!("wake-up connection to the redis cluster lost; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the wake-up connection"),
        }
        if weak.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// One push from the cluster: a notice, a (re)subscription, or a slot that moved away.
async fn on_shard_push(
    inner: &Inner,
    conn: &mut redis::cluster_async::ClusterConnection,
    push: PushInfo,
    queue_of: &impl Fn(&str) -> Option<String>,
) {
    let text = |i: usize| match push.data.get(i) {
        Some(redis::Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
        Some(redis::Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    match push.kind {
        PushKind::SMessage => {
            if let Some(queue) = text(1) {
                wake_queue(inner, &queue);
            }
        }
        // Subscribed (again, after a failover or a move): notices may have been missed.
        PushKind::SSubscribe => {
            if let Some(queue) = text(0).as_deref().and_then(queue_of) {
                wake_queue(inner, &queue);
            }
        }
        // The server dropped the subscription: its slot moved to another master.
        // Subscribing again follows the redirection there.
        PushKind::SUnsubscribe => {
            if let Some(channel) = text(0) {
                if let Err(e) = conn.ssubscribe(&channel).await {
                    tracing::warn!(channel, error = %e, "cannot move the wake-up subscription");
                }
                if let Some(queue) = queue_of(&channel) {
                    wake_queue(inner, &queue);
                }
            }
        }
        PushKind::Disconnection => wake_all(inner),
        _ => {}
    }
}

fn wake_queue(inner: &Inner, queue: &str) {
    if let Ok(subs) = inner.subscribers.lock()
        && let Some(list) = subs.get(queue)
    {
        for n in list {
            n.notify_one();
        }
    }
}

fn wake_all(inner: &Inner) {
    if let Ok(subs) = inner.subscribers.lock() {
        for n in subs.values().flatten() {
            n.notify_one();
        }
    }
}
