//! Wake-ups: one pub/sub connection per process tells idle queue drivers that work arrived.
//!
//! A driver that finds its queue empty (or paused) leaves a `sleep` flag in Redis; the
//! next script that makes a job runnable sees the flag and publishes the queue's name
//! on `<ns>:wake`. Every driver of that queue in every process then fetches at once,
//! so an idle worker starts a new job within a round trip or two of its enqueue,
//! instead of at the next poll. Pub/sub is not durable, so drivers still poll on a
//! slow timer, and every reconnect wakes everyone, in case a notice was missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::connection::Redis;
use crate::keys::wake_channel;

/// Dispatches wake-up notices to the drivers of this process.
#[derive(Clone)]
pub struct WakeHub {
    inner: Arc<Inner>,
}

struct Inner {
    subscribers: Mutex<HashMap<String, Vec<Arc<Notify>>>>,
    task: Mutex<Option<JoinHandle<()>>>,
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
        let inner = Arc::new(Inner {
            subscribers: Mutex::new(HashMap::new()),
            task: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let channel = wake_channel(ns);
        let task = tokio::spawn(async move {
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
                            tracing::warn!(
                                channel,
                                "wake-up connection to redis lost; reconnecting"
                            );
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
        });
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
            subs.entry(queue.to_owned()).or_default().push(n.clone());
        }
        n
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
