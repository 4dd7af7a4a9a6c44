//! The event relay: each API process reads every queue's event stream once and fans
//! the events out to its Server-Sent Events clients.
//!
//! # Design
//!
//! - **One reader per queue** (`reader`): a task with a dedicated connection doing
//!   `XREAD BLOCK` after the last id it delivered, starting at the stream's end. It
//!   never dies: on a Redis error it backs off, reconnects and resumes after the same
//!   id. Any number of API processes each run their own readers, so each relays every
//!   event; Redis Streams are read without consumer groups for exactly that reason.
//! - **Fan-out through per-client bounded channels** ([`hub`]): readers only
//!   `try_send`, so a slow client never delays a reader or another client. A client
//!   whose buffer is full gets `stream:lagged` and is closed; it resumes with
//!   `Last-Event-ID`. Clients narrowed to one job are indexed by job id, so a job's
//!   event wakes only the clients watching it.
//! - **Resume without gap or duplicate** ([`stream`], [`cursor`]): a client that
//!   sends `Last-Event-ID` is subscribed first, then replayed from Redis (`XRANGE`)
//!   after its position, then served live; at the seam, live events at or before
//!   the last position sent are dropped. The ids of `/sse/events` are cursors holding
//!   a position per queue, because a stream id is unique only within its queue.
//! - **Shutdown** ends every stream at once (clients reconnect elsewhere with
//!   `Last-Event-ID`) instead of holding the graceful drain for its whole timeout.
//!
//! What the relay does not promise: events trimmed from a stream (it keeps about
//! `DROVER_EVENTS_MAXLEN` per queue) before a client came back are gone; the client
//! is told so by a `stream:gap` naming the first id still held, and a job's final
//! state is then rebuilt from the job itself. A client that stops reading
//! entirely keeps its socket until TCP gives up on it, but it costs the others
//! nothing: it is out of the fan-out once its buffer is full.

pub mod body;
pub mod cursor;
pub mod hub;
mod reader;
pub mod stream;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use drover_jobs::QueueName;
use drover_jobs::connect::Queues;
use drover_jobs::events::StreamPos;
use drover_queue::QueueError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::SseConfig;
use cursor::queue_index;
use hub::{ClientCounts, Filter, Hub, Relayed, StreamKind, SubscribeError, Subscription};

/// Histogram: seconds from an event's append in Redis to its delivery to the
/// clients' buffers, by `queue`.
pub const DELIVERY_SECONDS: &str = "drover_sse_delivery_seconds";
/// Counter: events read from the streams, by `queue`.
pub const RELAYED_COUNTER: &str = "drover_sse_events_relayed_total";

/// Milliseconds since the epoch, by this machine's clock.
#[must_use]
pub fn now_ms() -> i64 {
    drover_queue::queue::now_ms()
}

/// A handle on the process's relay. Cheap to clone; the readers stop when the last
/// handle is dropped (or at [`Relay::stop`]).
#[derive(Clone)]
pub struct Relay {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

struct Owner {
    stop: CancellationToken,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What the readers and the handles share.
pub(crate) struct Shared {
    hub: Arc<Hub>,
    queues: Queues,
    config: SseConfig,
    readers: Mutex<[ReaderState; QueueName::ALL.len()]>,
    started: AtomicBool,
    stop: CancellationToken,
    /// Signalled when a reader learns where it starts.
    positioned: Notify,
}

#[derive(Debug, Clone, Default)]
struct ReaderState {
    connected: bool,
    failures: u64,
    last_error: Option<String>,
    relayed: u64,
    last_event_ts: Option<i64>,
    last_delivery_lag_ms: Option<i64>,
}

/// One reader's state, for `/sse/status`.
#[derive(Debug, Clone)]
pub struct ReaderStatus {
    pub queue: QueueName,
    /// Whether its last read succeeded.
    pub connected: bool,
    /// The id of the last entry it delivered (`None` before it first reached Redis).
    pub position: Option<StreamPos>,
    /// Failed reads since start.
    pub failures: u64,
    pub last_error: Option<String>,
    /// Events delivered since start.
    pub relayed: u64,
    /// When the last event it delivered was appended (Redis clock, ms).
    pub last_event_ts: Option<i64>,
    /// How long after its append the last event was delivered, in ms.
    pub last_delivery_lag_ms: Option<i64>,
}

impl Shared {
    fn set_start(&self, q: QueueName, pos: StreamPos) {
        self.hub.set_position(q, pos);
        self.positioned.notify_waiters();
    }

    fn reader(&self) -> MutexGuard<'_, [ReaderState; QueueName::ALL.len()]> {
        self.readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reader_connected(&self, q: QueueName) {
        let mut r = self.reader();
        let s = &mut r[queue_index(q)];
        s.connected = true;
        s.last_error = None;
    }

    fn reader_failed(&self, q: QueueName, e: &QueueError) {
        let mut r = self.reader();
        let s = &mut r[queue_index(q)];
        s.connected = false;
        s.failures += 1;
        s.last_error = Some(e.to_string());
    }

    fn reader_delivered(&self, q: QueueName, batch: &[Arc<Relayed>], delivered_at: i64) {
        let Some(last) = batch.last() else {
            return;
        };
        metrics::counter!(RELAYED_COUNTER, "queue" => q.as_str()).increment(batch.len() as u64);
        let h = metrics::histogram!(DELIVERY_SECONDS, "queue" => q.as_str());
        for r in batch {
            h.record((delivered_at - r.event.ts).max(0) as f64 / 1000.0);
        }
        let mut st = self.reader();
        let s = &mut st[queue_index(q)];
        s.relayed += batch.len() as u64;
        s.last_event_ts = Some(last.event.ts);
        s.last_delivery_lag_ms = Some((delivered_at - last.event.ts).max(0));
    }
}

impl Relay {
    /// A relay over these queues. Nothing runs until [`Relay::start`].
    #[must_use]
    pub fn new(queues: Queues, config: SseConfig) -> Self {
        let stop = CancellationToken::new();
        Self {
            shared: Arc::new(Shared {
                hub: Arc::new(Hub::new(
                    config.client_buffer,
                    config.max_clients,
                    config.max_per_key,
                )),
                queues,
                config,
                readers: Mutex::new(Default::default()),
                started: AtomicBool::new(false),
                stop: stop.clone(),
                positioned: Notify::new(),
            }),
            _owner: Arc::new(Owner { stop }),
        }
    }

    /// Starts one reader per queue (once; later calls do nothing).
    pub fn start(&self) {
        if self.shared.started.swap(true, Ordering::SeqCst) {
            return;
        }
        for (name, queue) in self.shared.queues.all() {
            tokio::spawn(reader::run(
                Arc::clone(&self.shared),
                name,
                queue.clone(),
                self.shared.stop.clone(),
            ));
        }
    }

    /// Waits until every reader knows where it starts, at most `timeout`; false if
    /// one does not (Redis unreachable).
    ///
    /// A client that subscribes before its queue's reader has a position follows that
    /// queue from wherever the reader starts, so events appended in between would
    /// pass it by: the API waits for this before it serves.
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.positioned.notified();
            if self.shared.hub.positions().iter().all(Option::is_some) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Ends every client's stream and refuses new ones; the readers go on until
    /// [`Relay::stop`] or the last handle is dropped.
    pub fn close_clients(&self) {
        self.shared.hub.close();
    }

    /// Stops the readers and ends every stream.
    pub fn stop(&self) {
        self.shared.stop.cancel();
        self.shared.hub.close();
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &SseConfig {
        &self.shared.config
    }

    /// The queue handles.
    #[must_use]
    pub fn queues(&self) -> &Queues {
        &self.shared.queues
    }

    /// Registers a client of API key `key` (see [`Hub::subscribe`]).
    pub fn subscribe(
        &self,
        filter: Filter,
        kind: StreamKind,
        key: i64,
    ) -> Result<Subscription, SubscribeError> {
        self.shared.hub.subscribe(filter, kind, key)
    }

    /// Connected clients.
    #[must_use]
    pub fn clients(&self) -> ClientCounts {
        self.shared.hub.counts()
    }

    /// Each reader's state.
    #[must_use]
    pub fn readers(&self) -> Vec<ReaderStatus> {
        let positions = self.shared.hub.positions();
        let st = self.shared.reader().clone();
        QueueName::ALL
            .into_iter()
            .map(|q| {
                let s = &st[queue_index(q)];
                ReaderStatus {
                    queue: q,
                    connected: s.connected,
                    position: positions[queue_index(q)],
                    failures: s.failures,
                    last_error: s.last_error.clone(),
                    relayed: s.relayed,
                    last_event_ts: s.last_event_ts,
                    last_delivery_lag_ms: s.last_delivery_lag_ms,
                }
            })
            .collect()
    }
}
