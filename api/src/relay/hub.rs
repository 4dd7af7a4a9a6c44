//! The fan-out: who listens to what, and the one lock that orders subscriptions
//! against deliveries.
//!
//! Each client owns a bounded channel. The readers deliver with `try_send` only, so a
//! client that stops reading can never hold up a reader or another client. When a
//! client's channel has one free slot left, the reader puts a [`Msg::Lagged`] there
//! instead of the event and drops the client: it drains what it has, says
//! `stream:lagged`, and closes; the client resumes with `Last-Event-ID`.
//!
//! Subscribing and delivering take the same lock, and a reader records its stream
//! position under that lock as it delivers. So the positions a new subscriber reads
//! at subscription are exactly the seam: everything after them reaches its channel,
//! nothing at or before them does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use drover_jobs::QueueName;
use drover_jobs::events::{Event, EventType, StreamPos};
use tokio::sync::mpsc;

use super::cursor::queue_index;

/// Gauge: SSE clients connected to this process, by `stream` (`job` or `events`).
pub const CLIENTS_GAUGE: &str = "drover_sse_clients";
/// Counter: clients closed because they fell too far behind.
pub const LAGGED_COUNTER: &str = "drover_sse_lagged_total";

/// One event as relayed: parsed once, serialised once, shared by every client.
#[derive(Debug)]
pub struct Relayed {
    pub queue: QueueName,
    pub pos: StreamPos,
    pub event: Event,
    /// Its SSE `event:` and `data:` lines (the event as JSON), rendered once.
    pub frame: bytes::Bytes,
    type_bit: u16,
}

impl Relayed {
    /// Wraps an event read from queue `queue`'s stream at `pos`.
    #[must_use]
    pub fn new(queue: QueueName, pos: StreamPos, event: Event) -> Self {
        // Serialising an `Event` cannot fail: it holds strings, numbers and a `Value`.
        let json = serde_json::to_string(&event).unwrap_or_default();
        Self {
            queue,
            pos,
            type_bit: type_bit(event.kind),
            frame: super::body::frame(event.kind.as_str(), &json),
            event,
        }
    }
}

/// The bit of an event type in a [`Filter`]'s type mask.
fn type_bit(t: EventType) -> u16 {
    let i = EventType::ALL.iter().position(|x| *x == t).unwrap_or(0);
    1 << i
}

/// Which events a client wants. Everything, unless narrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    queues: u8,
    types: u16,
    job_id: Option<Box<str>>,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            queues: u8::MAX,
            types: u16::MAX,
            job_id: None,
        }
    }
}

impl Filter {
    /// Only these queues (all if empty).
    #[must_use]
    pub fn queues(mut self, qs: &[QueueName]) -> Self {
        if !qs.is_empty() {
            self.queues = qs.iter().fold(0, |m, q| m | (1 << queue_index(*q)));
        }
        self
    }

    /// Only these event types (all if empty).
    #[must_use]
    pub fn types(mut self, ts: &[EventType]) -> Self {
        if !ts.is_empty() {
            self.types = ts.iter().fold(0, |m, t| m | type_bit(*t));
        }
        self
    }

    /// Only this job's events.
    #[must_use]
    pub fn job(mut self, id: &str) -> Self {
        self.job_id = Some(id.into());
        self
    }

    /// Whether the client follows queue `q` at all.
    #[must_use]
    pub fn follows(&self, q: QueueName) -> bool {
        self.queues & (1 << queue_index(q)) != 0
    }

    /// The queues the client follows.
    pub fn followed(&self) -> impl Iterator<Item = QueueName> + '_ {
        QueueName::ALL.into_iter().filter(|q| self.follows(*q))
    }

    /// The job it is narrowed to, if any.
    #[must_use]
    pub fn job_id(&self) -> Option<&str> {
        self.job_id.as_deref()
    }

    /// Whether the client wants this event.
    #[must_use]
    pub fn matches(&self, r: &Relayed) -> bool {
        self.follows(r.queue)
            && self.types & r.type_bit != 0
            && self.job_id.as_deref().is_none_or(|j| j == r.event.job_id)
    }

    /// Like [`Filter::matches`], for an event read back from a stream.
    #[must_use]
    pub fn matches_event(&self, q: QueueName, e: &Event) -> bool {
        self.follows(q)
            && self.types & type_bit(e.kind) != 0
            && self.job_id.as_deref().is_none_or(|j| j == e.job_id)
    }
}

/// What a client's channel carries.
#[derive(Debug)]
pub enum Msg {
    /// An event it wants.
    Event(Arc<Relayed>),
    /// It fell behind: the channel was full. Nothing follows.
    Lagged,
}

/// Which endpoint a client came through (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `GET /jobs/{id}/events`.
    Job,
    /// `GET /sse/events`.
    Events,
}

/// Creates the client gauges at zero, so the series are scraped before the first client.
pub fn zero_series() {
    for kind in [StreamKind::Job, StreamKind::Events] {
        metrics::gauge!(CLIENTS_GAUGE, "stream" => kind.label()).increment(0.0);
    }
}

impl StreamKind {
    fn label(self) -> &'static str {
        match self {
            StreamKind::Job => "job",
            StreamKind::Events => "events",
        }
    }
}

struct Slot {
    tx: mpsc::Sender<Msg>,
    filter: Filter,
    kind: StreamKind,
    /// The API key it came with (its row id).
    key: i64,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Clients narrowed to one job, by job id: an event wakes only its job's clients.
    by_job: HashMap<Box<str>, HashMap<u64, Slot>>,
    /// Every other client; each event is checked against each one's filter.
    firehose: HashMap<u64, Slot>,
    /// Where each queue's reader is: the id of the last entry it delivered.
    positions: [Option<StreamPos>; QueueName::ALL.len()],
    job_clients: usize,
    event_clients: usize,
    /// Open streams by API key (keys with none are not in it).
    per_key: HashMap<i64, usize>,
    /// Set at shutdown: no new subscriptions.
    closed: bool,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("this API process already serves its maximum of {0} event streams")]
    Full(usize),
    #[error(
        "this API key already holds its maximum of {0} open event streams on this API process; close one first"
    )]
    KeyFull(usize),
    #[error("this API process is shutting down")]
    Closed,
}

/// The registry of clients.
pub struct Hub {
    state: Mutex<State>,
    capacity: usize,
    max_clients: usize,
    max_per_key: usize,
    lagged_total: AtomicU64,
}

/// Clients connected, for the status endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCounts {
    pub job_streams: usize,
    pub event_streams: usize,
    pub lagged_total: u64,
}

impl Hub {
    /// A hub whose clients buffer at most `capacity` events each, at most
    /// `max_clients` of them, at most `max_per_key` per API key.
    #[must_use]
    pub fn new(capacity: usize, max_clients: usize, max_per_key: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            // One slot is kept for the `Lagged` notice.
            capacity: capacity.max(1) + 1,
            max_clients,
            max_per_key,
            lagged_total: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a client of API key `key`; returns its channel and the readers'
    /// positions at that instant (the seam: every later event reaches the channel).
    pub fn subscribe(
        self: &Arc<Self>,
        filter: Filter,
        kind: StreamKind,
        key: i64,
    ) -> Result<Subscription, SubscribeError> {
        let (tx, rx) = mpsc::channel(self.capacity);
        let mut s = self.lock();
        if s.closed {
            return Err(SubscribeError::Closed);
        }
        if s.job_clients + s.event_clients >= self.max_clients {
            return Err(SubscribeError::Full(self.max_clients));
        }
        let held = s.per_key.entry(key).or_default();
        if *held >= self.max_per_key {
            return Err(SubscribeError::KeyFull(self.max_per_key));
        }
        *held += 1;
        let id = s.next_id;
        s.next_id += 1;
        let job = filter.job_id.clone();
        let slot = Slot {
            tx,
            filter,
            kind,
            key,
        };
        match &job {
            Some(j) => {
                s.by_job.entry(j.clone()).or_default().insert(id, slot);
            }
            None => {
                s.firehose.insert(id, slot);
            }
        }
        match kind {
            StreamKind::Job => s.job_clients += 1,
            StreamKind::Events => s.event_clients += 1,
        }
        let positions = s.positions;
        drop(s);
        metrics::gauge!(CLIENTS_GAUGE, "stream" => kind.label()).increment(1.0);
        Ok(Subscription {
            rx,
            positions,
            guard: Guard {
                hub: Arc::clone(self),
                id,
                job,
            },
        })
    }

    /// Removes a client; false if it was already gone (dropped for lagging).
    fn remove(&self, s: &mut State, id: u64, job: Option<&str>) -> bool {
        let slot = match job {
            Some(j) => {
                let Some(m) = s.by_job.get_mut(j) else {
                    return false;
                };
                let slot = m.remove(&id);
                if m.is_empty() {
                    s.by_job.remove(j);
                }
                slot
            }
            None => s.firehose.remove(&id),
        };
        let Some(slot) = slot else {
            return false;
        };
        match slot.kind {
            StreamKind::Job => s.job_clients -= 1,
            StreamKind::Events => s.event_clients -= 1,
        }
        if let Some(n) = s.per_key.get_mut(&slot.key) {
            *n -= 1;
            if *n == 0 {
                s.per_key.remove(&slot.key);
            }
        }
        metrics::gauge!(CLIENTS_GAUGE, "stream" => slot.kind.label()).decrement(1.0);
        true
    }

    /// The reader of `queue` has read up to `pos`: delivers `events` (in stream order)
    /// to the clients that want them and records the position, under one lock.
    pub fn deliver(&self, queue: QueueName, pos: StreamPos, events: &[Arc<Relayed>]) {
        let mut s = self.lock();
        s.positions[queue_index(queue)] = Some(pos);
        let mut dropped: Vec<(u64, Option<Box<str>>)> = Vec::new();
        for r in events {
            if let Some(m) = s.by_job.get(r.event.job_id.as_str()) {
                for (id, slot) in m {
                    if slot.filter.matches(r) && !offer(slot, r) {
                        dropped.push((*id, slot.filter.job_id.clone()));
                    }
                }
            }
            for (id, slot) in &s.firehose {
                if slot.filter.matches(r) && !offer(slot, r) {
                    dropped.push((*id, None));
                }
            }
            // Drop the laggards before the next event, so none gets a later event
            // after its `Lagged` notice.
            for (id, job) in dropped.drain(..) {
                if self.remove(&mut s, id, job.as_deref()) {
                    self.lagged_total.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(LAGGED_COUNTER).increment(1);
                }
            }
        }
    }

    /// Records where a reader starts, before it has delivered anything.
    pub fn set_position(&self, queue: QueueName, pos: StreamPos) {
        self.lock().positions[queue_index(queue)] = Some(pos);
    }

    /// The readers' positions.
    #[must_use]
    pub fn positions(&self) -> [Option<StreamPos>; QueueName::ALL.len()] {
        self.lock().positions
    }

    /// Ends every client's stream and refuses new ones (shutdown).
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        let ids: Vec<(u64, Option<Box<str>>)> = s
            .firehose
            .keys()
            .map(|id| (*id, None))
            .chain(
                s.by_job
                    .iter()
                    .flat_map(|(j, m)| m.keys().map(|id| (*id, Some(j.clone())))),
            )
            .collect();
        for (id, job) in ids {
            self.remove(&mut s, id, job.as_deref());
        }
    }

    /// How many clients are connected, and how many were dropped for lagging.
    #[must_use]
    pub fn counts(&self) -> ClientCounts {
        let s = self.lock();
        ClientCounts {
            job_streams: s.job_clients,
            event_streams: s.event_clients,
            lagged_total: self.lagged_total.load(Ordering::Relaxed),
        }
    }
}

/// Offers an event to one client without waiting; false if the client must go.
fn offer(slot: &Slot, r: &Arc<Relayed>) -> bool {
    if slot.tx.capacity() <= 1 {
        // Full but for the slot kept for this notice.
        let _ = slot.tx.try_send(Msg::Lagged);
        return false;
    }
    match slot.tx.try_send(Msg::Event(Arc::clone(r))) {
        Ok(()) => true,
        // Full cannot happen (checked above, and only readers send, under the lock);
        // Closed means the client is going away on its own.
        Err(_) => false,
    }
}

/// A client's registration: its channel, the seam positions, and a guard that
/// unregisters it when the stream is dropped (the connection closed).
pub struct Subscription {
    pub rx: mpsc::Receiver<Msg>,
    /// Each queue reader's position at subscription; `None` for a reader that has
    /// not reached Redis yet.
    pub positions: [Option<StreamPos>; QueueName::ALL.len()],
    guard: Guard,
}

struct Guard {
    hub: Arc<Hub>,
    id: u64,
    job: Option<Box<str>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut s = self.hub.lock();
        self.hub.remove(&mut s, self.id, self.job.as_deref());
    }
}

impl Subscription {
    /// The seam position of queue `q`.
    #[must_use]
    pub fn position(&self, q: QueueName) -> Option<StreamPos> {
        self.positions[queue_index(q)]
    }

    /// Keeps only the channel's receiving end and the guard.
    #[must_use]
    pub fn into_parts(self) -> (mpsc::Receiver<Msg>, impl Send + Sync + 'static) {
        (self.rx, self.guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(q: QueueName, job: &str, kind: EventType, ms: u64) -> Arc<Relayed> {
        let pos = StreamPos { ms, seq: 0 };
        Arc::new(Relayed::new(
            q,
            pos,
            Event {
                id: pos.to_string(),
                kind,
                queue: q.as_str().to_owned(),
                job_id: job.to_owned(),
                attempt: 1,
                progress: 0,
                message: String::new(),
                data: serde_json::json!({}),
                ts: 0,
            },
        ))
    }

    fn recv_all(rx: &mut mpsc::Receiver<Msg>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(match m {
                Msg::Event(r) => r.pos.to_string(),
                Msg::Lagged => "lagged".to_owned(),
            });
        }
        out
    }

    #[test]
    fn filters_narrow_by_queue_type_and_job() {
        let f = Filter::default()
            .queues(&[QueueName::Export])
            .types(&[EventType::JobProgress, EventType::JobCompleted]);
        assert!(f.matches(&event(QueueName::Export, "a", EventType::JobProgress, 1)));
        assert!(!f.matches(&event(QueueName::Analysis, "a", EventType::JobProgress, 1)));
        assert!(!f.matches(&event(QueueName::Export, "a", EventType::JobQueued, 1)));
        let f = f.job("b");
        assert!(!f.matches(&event(QueueName::Export, "a", EventType::JobProgress, 1)));
        assert!(f.matches(&event(QueueName::Export, "b", EventType::JobCompleted, 1)));
        assert_eq!(f.followed().collect::<Vec<_>>(), vec![QueueName::Export]);
        assert_eq!(Filter::default().followed().count(), 4);
    }

    #[test]
    fn delivery_reaches_matching_clients_and_records_the_seam() {
        let hub = Arc::new(Hub::new(8, 100, 100));
        let mut all = hub
            .subscribe(Filter::default(), StreamKind::Events, 1)
            .unwrap();
        let mut job_a = hub
            .subscribe(Filter::default().job("a"), StreamKind::Job, 1)
            .unwrap();
        assert_eq!(all.position(QueueName::Export), None);
        hub.deliver(
            QueueName::Export,
            StreamPos { ms: 2, seq: 0 },
            &[
                event(QueueName::Export, "a", EventType::JobQueued, 1),
                event(QueueName::Export, "b", EventType::JobQueued, 2),
            ],
        );
        assert_eq!(recv_all(&mut all.rx), vec!["1-0", "2-0"]);
        assert_eq!(recv_all(&mut job_a.rx), vec!["1-0"]);
        let late = hub
            .subscribe(Filter::default(), StreamKind::Events, 1)
            .unwrap();
        assert_eq!(
            late.position(QueueName::Export),
            Some(StreamPos { ms: 2, seq: 0 })
        );
        let c = hub.counts();
        assert_eq!((c.job_streams, c.event_streams), (1, 2));
        drop(job_a);
        drop(late);
        let c = hub.counts();
        assert_eq!((c.job_streams, c.event_streams), (0, 1));
    }

    #[test]
    fn a_full_client_gets_lagged_and_is_dropped_without_touching_others() {
        let hub = Arc::new(Hub::new(3, 100, 100));
        let mut slow = hub
            .subscribe(Filter::default(), StreamKind::Events, 1)
            .unwrap();
        let mut fast = hub
            .subscribe(Filter::default(), StreamKind::Events, 1)
            .unwrap();
        for ms in 1..=5 {
            hub.deliver(
                QueueName::Export,
                StreamPos { ms, seq: 0 },
                &[event(QueueName::Export, "a", EventType::JobProgress, ms)],
            );
            // The fast client keeps up.
            assert_eq!(recv_all(&mut fast.rx), vec![format!("{ms}-0")]);
        }
        assert_eq!(recv_all(&mut slow.rx), vec!["1-0", "2-0", "3-0", "lagged"]);
        let c = hub.counts();
        assert_eq!((c.event_streams, c.lagged_total), (1, 1));
        // The dropped client's channel is closed after its notice.
        assert!(slow.rx.try_recv().is_err());
        assert!(slow.rx.is_closed());
    }

    #[test]
    fn full_and_closed_hubs_refuse_subscriptions() {
        let hub = Arc::new(Hub::new(3, 1, 1));
        let mut first = hub
            .subscribe(Filter::default(), StreamKind::Events, 1)
            .unwrap();
        assert_eq!(
            hub.subscribe(Filter::default(), StreamKind::Events, 1)
                .err(),
            Some(SubscribeError::Full(1))
        );
        hub.close();
        assert!(first.rx.try_recv().is_err() && first.rx.is_closed());
        drop(first);
        assert_eq!(
            hub.subscribe(Filter::default(), StreamKind::Events, 1)
                .err(),
            Some(SubscribeError::Closed)
        );
    }

    #[test]
    fn one_key_cannot_take_every_slot() {
        let hub = Arc::new(Hub::new(3, 10, 2));
        let a1 = hub
            .subscribe(Filter::default(), StreamKind::Events, 1)
            .unwrap();
        let _a2 = hub
            .subscribe(Filter::default().job("x"), StreamKind::Job, 1)
            .unwrap();
        assert_eq!(
            hub.subscribe(Filter::default(), StreamKind::Events, 1)
                .err(),
            Some(SubscribeError::KeyFull(2))
        );
        // Another key still gets in, and a closed stream gives its slot back.
        let _b = hub
            .subscribe(Filter::default(), StreamKind::Events, 2)
            .unwrap();
        drop(a1);
        assert!(
            hub.subscribe(Filter::default(), StreamKind::Events, 1)
                .is_ok()
        );
    }
}
