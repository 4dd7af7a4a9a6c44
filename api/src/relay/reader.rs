//! One queue's reader: `XREAD BLOCK` on the queue's event stream, forever.
//!
//! Each reader has a dedicated connection (a blocking read must not hold up the
//! shared one) and reads one stream only, so every command touches one key and one
//! cluster slot. It starts at the stream's last entry (clients that want history get
//! it by replay), reads after the last id it delivered, and survives anything Redis
//! does: on an error it drops the connection, backs off (the queue's
//! [`reconnect_delay`], as the workers do: 50 ms doubling to 5 s, with jitter),
//! reconnects and resumes after the same id, so an outage delays events but loses
//! none the stream still holds.

use std::sync::Arc;
use std::time::Duration;

use drover_jobs::QueueName;
use drover_jobs::events::{Event, StreamPos};
use drover_queue::Conn;
use drover_queue::reconnect::reconnect_delay;
use drover_queue::{Queue, QueueError};
use redis::streams::StreamReadReply;
use tokio_util::sync::CancellationToken;

use super::cursor::parse_pos;
use super::hub::Relayed;
use super::{Shared, now_ms};

/// How long one `XREAD` blocks when nothing comes.
const BLOCK: Duration = Duration::from_secs(5);
/// Extra time given to a blocked read before the connection is deemed dead.
const GRACE: Duration = Duration::from_secs(5);
/// Most entries read per call. Well under the default client buffer, so a burst
/// (a thousand jobs enqueued at once) reaches the clients in several deliveries, with
/// a round trip between them for the clients to drain.
const BATCH: usize = 256;

/// Runs the reader of `name` until `stop` is cancelled.
pub(super) async fn run(
    shared: Arc<Shared>,
    name: QueueName,
    queue: Queue,
    stop: CancellationToken,
) {
    let mut conn: Option<Conn> = None;
    let mut pos: Option<StreamPos> = None;
    let mut failures: u32 = 0;
    loop {
        let step = tokio::select! {
            () = stop.cancelled() => return,
            r = step(&shared, name, &queue, &mut conn, &mut pos) => r,
        };
        match step {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(queue = %name, failures, "event relay reconnected to Redis");
                }
                failures = 0;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                conn = None;
                shared.reader_failed(name, &e);
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(queue = %name, failures, error = %e, "event relay cannot read from Redis; retrying");
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(reconnect_delay(failures)) => {}
                }
            }
        }
    }
}

/// One read (connecting first if needed) and its delivery.
async fn step(
    shared: &Shared,
    name: QueueName,
    queue: &Queue,
    conn: &mut Option<Conn>,
    pos: &mut Option<StreamPos>,
) -> Result<(), QueueError> {
    let after = match *pos {
        Some(p) => p,
        None => {
            // Start at the end: what came before is history, served by replay.
            let last = parse_pos(&queue.last_event_id().await?).unwrap_or(StreamPos::ZERO);
            shared.set_start(name, last);
            *pos = Some(last);
            last
        }
    };
    let c = match conn {
        Some(c) => c,
        None => {
            let timeout = queue.redis().config().connect_timeout;
            let c = tokio::time::timeout(timeout, queue.redis().dedicated())
                .await
                .map_err(|_| QueueError::Timeout(timeout))??;
            conn.insert(c)
        }
    };
    shared.reader_connected(name);
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(BATCH)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(&queue.keys().events)
        .arg(after.to_string());
    let reply = tokio::time::timeout(BLOCK + GRACE, cmd.query_async::<Option<StreamReadReply>>(c))
        .await
        .map_err(|_| QueueError::Timeout(BLOCK + GRACE))??;
    let Some(reply) = reply else {
        return Ok(());
    };
    let mut last = after;
    let mut batch = Vec::new();
    for entry in reply.keys.iter().flat_map(|k| &k.ids) {
        let Some(p) = parse_pos(&entry.id) else {
            continue;
        };
        last = last.max(p);
        // An entry of another shape is skipped, but its id still moves the reader on.
        if let Some(e) = Event::from_entry(entry) {
            batch.push(Arc::new(Relayed::new(name, p, e)));
        }
    }
    let delivered_at = now_ms();
    shared.hub.deliver(name, last, &batch);
    *pos = Some(last);
    shared.reader_delivered(name, &batch, delivered_at);
    Ok(())
}
