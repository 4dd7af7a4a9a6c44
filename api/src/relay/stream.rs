//! A client's event stream: replay from Redis, then live events, with no gap and no
//! duplicate between them.
//!
//! The client is subscribed *before* the replay reads Redis, so every event appended
//! after the replay's read reaches its channel; the replay then reads the stream up
//! to its end, and live events at or before the last position the replay covered are
//! dropped. Positions are compared per queue, as stream ids only order within one.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::{BufMut as _, Bytes, BytesMut};
use drover_jobs::QueueName;
use drover_jobs::events::{Event, EventType, StreamPos};
use drover_queue::{JobRecord, JobState, Queue, QueueError};
use futures::StreamExt as _;
use futures::stream::BoxStream;

use super::cursor::Cursor;
use super::hub::{Filter, Msg, Relayed, Subscription};
use super::{Relay, body};

/// Entries read per `XRANGE` during a replay.
const PAGE: usize = 500;
/// How far before a job's creation its first event may be stamped (clock steps).
const CREATION_SLACK_MS: u64 = 1000;

/// One SSE message: its `event:` type, its `id:` and its `data:` (JSON).
#[derive(Debug, Clone)]
pub struct SseItem {
    kind: &'static str,
    id: Option<Id>,
    /// The `event:` and `data:` lines; a relayed event's are shared by every client.
    frame: Bytes,
}

/// An SSE `id:`. A live event's is kept as the position it names, and written
/// straight into the connection's buffer: no string per client per event.
#[derive(Debug, Clone)]
enum Id {
    Text(String),
    /// A `/jobs/{id}/events` id: the position in the job's queue.
    Pos(StreamPos),
    /// A `/sse/events` id: a position per queue.
    Cursor(Cursor),
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Text(s) => f.write_str(s),
            Id::Pos(p) => p.fmt(f),
            Id::Cursor(c) => c.fmt(f),
        }
    }
}

/// `event:` of the notice sent before a client that fell behind is closed.
pub const LAGGED: &str = "stream:lagged";
/// `event:` of the notice sent before a stream ends because Redis failed mid-replay.
pub const ERROR: &str = "stream:error";
/// `event:` of the notice sent, before the events that follow it, when events a
/// client has not seen are no longer held: it names the first id that is.
pub const GAP: &str = "stream:gap";

impl SseItem {
    fn shared(r: &Relayed, id: Id) -> Self {
        Self {
            kind: r.event.kind.as_str(),
            id: Some(id),
            frame: r.frame.clone(),
        }
    }

    /// An event read back from a stream (or rebuilt), with its SSE id.
    #[must_use]
    pub fn from_event(e: &Event, id: String) -> Self {
        let kind = e.kind.as_str();
        Self {
            kind,
            id: Some(Id::Text(id)),
            frame: body::frame(kind, &serde_json::to_string(e).unwrap_or_default()),
        }
    }

    /// A notice about the stream itself. Its id is where to resume: everything before
    /// it was sent, so a client (or `EventSource`) reconnecting with it misses nothing.
    fn notice(kind: &'static str, message: &str, resume: String) -> Self {
        let data = serde_json::json!({
            "type": kind,
            "message": message,
            "last_event_id": resume,
        });
        Self {
            kind,
            id: (!resume.is_empty()).then_some(Id::Text(resume)),
            frame: body::frame(kind, &data.to_string()),
        }
    }

    /// Events of queue `q` after `after` and before `first` will not be sent
    /// (`why`): `first` is the first one still available. It has no `id:`, so a
    /// client's resume position stays where it was.
    fn gap(q: QueueName, first: StreamPos, after: StreamPos, why: &str) -> Self {
        let data = serde_json::json!({
            "type": GAP,
            "message": format!(
                "events of queue {} after {after} and before {first} {why}; \
                 the stream goes on from {first}, the first id still available",
                q.as_str()
            ),
            "queue": q.as_str(),
            "first_available_id": first.to_string(),
            "last_event_id": after.to_string(),
        });
        Self {
            kind: GAP,
            id: None,
            frame: body::frame(GAP, &data.to_string()),
        }
    }

    fn lagged(capacity: usize, resume: String) -> Self {
        Self::notice(
            LAGGED,
            &format!(
                "this client fell more than {capacity} events behind and is disconnected; \
                 reconnect with Last-Event-ID to resume"
            ),
            resume,
        )
    }

    fn failed(e: &QueueError, resume: String) -> Self {
        tracing::warn!(error = %e, "event replay failed; closing the stream");
        Self::notice(
            ERROR,
            "the event store (Redis) could not be read; reconnect with Last-Event-ID to resume",
            resume,
        )
    }

    /// The SSE `event:` type.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The SSE `id:`, if any.
    #[must_use]
    pub fn id(&self) -> Option<String> {
        self.id.as_ref().map(ToString::to_string)
    }

    /// Appends the whole message, as written to the connection, to `out`.
    pub fn write_to(&self, out: &mut BytesMut) {
        if let Some(id) = &self.id {
            out.put_slice(b"id: ");
            // Writing to a `BytesMut` cannot fail.
            let _ = write!(out, "{id}");
            out.put_u8(b'\n');
        }
        out.put_slice(&self.frame);
    }

    /// The length of the message, give or take its id.
    #[must_use]
    pub fn len_hint(&self) -> usize {
        self.frame.len() + 128
    }
}

/// The entries of `queue`'s stream after `after`, one page.
async fn page_after(
    queue: &Queue,
    after: StreamPos,
) -> Result<Vec<(StreamPos, Option<Event>)>, QueueError> {
    queue.entries_after(after, PAGE).await
}

/// Job `job_id`'s events after `after`, up to the stream's end: at most `keep` of
/// them, the latest, and how many earlier ones were left out.
async fn job_events_after(
    queue: &Queue,
    job_id: &str,
    mut after: StreamPos,
    keep: usize,
) -> Result<(VecDeque<(StreamPos, Event)>, usize), QueueError> {
    let mut out = VecDeque::new();
    let mut skipped = 0;
    loop {
        let page = page_after(queue, after).await?;
        let full = page.len() == PAGE;
        for (pos, e) in page {
            after = pos;
            if let Some(e) = e.filter(|e| e.job_id == job_id) {
                if out.len() == keep.max(1) {
                    out.pop_front();
                    skipped += 1;
                }
                out.push_back((pos, e));
            }
        }
        if !full {
            return Ok((out, skipped));
        }
    }
}

/// Why a `stream:gap` after a trimmed history.
const TRIMMED: &str = "were trimmed from the stream";

/// The `stream:gap` notice for queue `q`, if a client that has seen everything up to
/// `after` may have missed events trimmed from its stream.
async fn trimmed_gap(
    queue: &Queue,
    q: QueueName,
    after: StreamPos,
) -> Result<Option<SseItem>, QueueError> {
    Ok(queue
        .history_start()
        .await?
        .gap_after(after)
        .map(|first| SseItem::gap(q, first, after, TRIMMED)))
}

/// Where a job's events begin in its queue's stream: just before its creation.
#[must_use]
pub fn job_origin(record: &JobRecord) -> StreamPos {
    let created = u64::try_from(record.created_at).unwrap_or(0);
    StreamPos {
        ms: created.saturating_sub(CREATION_SLACK_MS),
        seq: 0,
    }
}

/// A finished job's final event, rebuilt from the job when its stream no longer
/// holds it (trimmed, or the job archived).
#[must_use]
pub fn final_event(
    q: QueueName,
    id: &str,
    state: JobState,
    attempts: u32,
    progress: u8,
    data: serde_json::Value,
    ts: i64,
) -> Event {
    let kind = if state == JobState::Completed {
        EventType::JobCompleted
    } else {
        EventType::JobFailed
    };
    Event {
        id: String::new(),
        kind,
        queue: q.as_str().to_owned(),
        job_id: id.to_owned(),
        attempt: attempts,
        progress,
        message: state.as_str().to_owned(),
        data,
        ts,
    }
}

/// The final event of a finished job held in Redis, rebuilt from its record.
fn final_from_record(q: QueueName, r: &JobRecord) -> Event {
    let data = serde_json::json!({
        "state": r.state.as_str(),
        "result": r.result,
        "reason": r.failed_reason,
        "finished_at": r.finished_at,
        "rebuilt": true,
    });
    final_event(
        q,
        &r.id,
        r.state,
        r.attempts,
        r.progress,
        data,
        r.finished_at.unwrap_or_else(super::now_ms),
    )
}

/// What a client asking for a finished job gets: `Ok(items)` to send before the
/// stream closes, empty when the client has already seen the end (answer 204).
///
/// Without `Last-Event-ID`, it is the job's final state: its last terminal event, or
/// one rebuilt from the job if the stream no longer holds it. With one, it is the
/// job's events after it, at most `keep` (the latest; a `stream:gap` first when
/// some were left out or trimmed away), plus the rebuilt final state if the stream
/// lost events after the client's position and none of those left is terminal.
pub async fn finished_job(
    queue: &Queue,
    q: QueueName,
    record: &JobRecord,
    last: Option<StreamPos>,
    keep: usize,
) -> Result<Vec<SseItem>, QueueError> {
    match last {
        None => {
            let (events, _) = job_events_after(queue, &record.id, job_origin(record), 1).await?;
            // Only the last event is kept: the job's story ends with it if it is
            // terminal.
            if let Some((pos, e)) = events.back().filter(|(_, e)| e.kind.is_terminal()) {
                return Ok(vec![SseItem::from_event(e, pos.to_string())]);
            }
            // Trimmed away: rebuild it. Its id is the stream's end, so a client that
            // comes back with it has nothing left to see.
            let end = queue.last_event_id().await?;
            Ok(vec![SseItem::from_event(
                &final_from_record(q, record),
                end,
            )])
        }
        Some(after) => {
            let history = queue.history_start().await?;
            // Entries after `after` may be gone (an empty stream holds none at all).
            let lost = history.first.is_none_or(|first| first > after);
            let (events, skipped) = job_events_after(queue, &record.id, after, keep).await?;
            let terminal = events.iter().any(|(_, e)| e.kind.is_terminal());
            let mut items = Vec::with_capacity(events.len() + 2);
            match (events.front(), skipped) {
                (Some((first, _)), 1..) => items.push(SseItem::gap(
                    q,
                    *first,
                    after,
                    &format!(
                        "({skipped} of this job's) are left out: a replay sends at most {keep}"
                    ),
                )),
                _ => items.extend(
                    history
                        .gap_after(after)
                        .map(|first| SseItem::gap(q, first, after, TRIMMED)),
                ),
            }
            items.extend(
                events
                    .iter()
                    .map(|(pos, e)| SseItem::from_event(e, pos.to_string())),
            );
            // Nothing after `after` was trimmed when the oldest entry left is at or
            // before it: then the client has seen the terminal event already.
            if !terminal && lost {
                let end = queue.last_event_id().await?;
                items.push(SseItem::from_event(&final_from_record(q, record), end));
            }
            Ok(items)
        }
    }
}

/// The stream of a job that has not finished: its events after `after` replayed,
/// then live ones; it ends after the job's terminal event. A client that `resumed`
/// (sent `Last-Event-ID`) from before the stream's trimmed history gets a
/// `stream:gap` first.
pub fn follow_job(
    queue: Queue,
    q: QueueName,
    job_id: String,
    after: StreamPos,
    resumed: bool,
    sub: Subscription,
    capacity: usize,
) -> BoxStream<'static, SseItem> {
    async_stream::stream! {
        let (mut rx, _guard) = sub.into_parts();
        // Everything up to `seen` has been covered: sent, or not this job's.
        let mut seen = after;
        let mut ended = false;
        if resumed {
            match Box::pin(trimmed_gap(&queue, q, after)).await {
                Ok(gap) => {
                    if let Some(gap) = gap {
                        yield gap;
                    }
                }
                Err(e) => {
                    yield SseItem::failed(&e, seen.to_string());
                    return;
                }
            }
        }
        loop {
            // Boxed: an async block is as large as its largest await, and this one
            // lives as long as the client; the replay's Redis future is kilobytes.
            let page = match Box::pin(page_after(&queue, seen)).await {
                Ok(p) => p,
                Err(e) => {
                    yield SseItem::failed(&e, seen.to_string());
                    return;
                }
            };
            let full = page.len() == PAGE;
            for (pos, e) in page {
                seen = pos;
                if let Some(e) = e.filter(|e| e.job_id == job_id) {
                    ended = e.kind.is_terminal();
                    yield SseItem::from_event(&e, pos.to_string());
                }
            }
            if !full {
                break;
            }
        }
        // A terminal event that nothing followed ends the story (a job retried by
        // hand after failing goes on, so only the last event counts).
        if ended {
            return;
        }
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Event(r) => {
                    if r.pos <= seen {
                        continue;
                    }
                    seen = r.pos;
                    let terminal = r.event.kind.is_terminal();
                    yield SseItem::shared(&r, Id::Pos(r.pos));
                    if terminal {
                        return;
                    }
                }
                Msg::Lagged => {
                    yield SseItem::lagged(capacity, seen.to_string());
                    return;
                }
            }
        }
    }
    .boxed()
}

/// Entries read from a stream and not yet sent, oldest first.
type Page = VecDeque<(StreamPos, Option<Event>)>;

/// The stream of `/sse/events`: each followed queue replayed after its position in
/// `resume` (merged by time), then live events; ids are [`Cursor`]s.
pub fn follow_events(
    relay: Relay,
    filter: Filter,
    resume: Option<Cursor>,
    sub: Subscription,
    capacity: usize,
) -> BoxStream<'static, SseItem> {
    async_stream::stream! {
        // Start where the client left off, or (for queues it has no position in) at
        // the seam: the reader's position at subscription.
        let mut cursor = Cursor::default();
        let mut replay: Vec<(QueueName, Page, bool)> = Vec::new();
        for q in filter.followed() {
            match resume.and_then(|c| c.get(q)) {
                Some(p) => {
                    cursor.set(q, p);
                    replay.push((q, VecDeque::new(), false));
                }
                None => {
                    if let Some(p) = sub.position(q) {
                        cursor.set(q, p);
                    }
                }
            }
        }
        let (mut rx, _guard) = sub.into_parts();
        // A resumed queue whose history was trimmed past the client's position.
        for (q, _, _) in &replay {
            let after = cursor.get(*q).unwrap_or(StreamPos::ZERO);
            match Box::pin(trimmed_gap(relay.queues().get(*q), *q, after)).await {
                Ok(gap) => {
                    if let Some(gap) = gap {
                        yield gap;
                    }
                }
                Err(e) => {
                    yield SseItem::failed(&e, cursor.to_string());
                    return;
                }
            }
        }
        loop {
            for (q, buf, done) in &mut replay {
                if buf.is_empty() && !*done {
                    let after = cursor.get(*q).unwrap_or(StreamPos::ZERO);
                    // Boxed, as in `follow_job`: the stream lives as long as the client.
                    match Box::pin(page_after(relay.queues().get(*q), after)).await {
                        Ok(page) => {
                            *done = page.len() < PAGE;
                            buf.extend(page);
                        }
                        Err(e) => {
                            yield SseItem::failed(&e, cursor.to_string());
                            return;
                        }
                    }
                }
            }
            // The oldest head among the queues, so a replay reads in time order.
            let next = replay
                .iter()
                .enumerate()
                .filter_map(|(i, (_, buf, _))| buf.front().map(|(p, _)| (p.ms, i)))
                .min();
            let Some((_, i)) = next else {
                break;
            };
            let q = replay[i].0;
            let Some((pos, e)) = replay[i].1.pop_front() else {
                break;
            };
            cursor.set(q, pos);
            if let Some(e) = e.filter(|e| filter.matches_event(q, e)) {
                yield SseItem::from_event(&e, cursor.to_string());
            }
        }
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Event(r) => {
                    if cursor.get(r.queue).is_some_and(|c| r.pos <= c) {
                        continue;
                    }
                    cursor.set(r.queue, r.pos);
                    yield SseItem::shared(&r, Id::Cursor(cursor));
                }
                Msg::Lagged => {
                    yield SseItem::lagged(capacity, cursor.to_string());
                    return;
                }
            }
        }
    }
    .boxed()
}
