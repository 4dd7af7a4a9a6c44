//! Resume positions: what a client's `Last-Event-ID` says it has seen.
//!
//! A stream entry id (`<ms>-<seq>`) is unique only within one queue's stream, so an
//! id from one queue says nothing about the others. A client of
//! `/api/v1/sse/events` follows several queues at once; the `id:` of each event sent
//! to it is therefore a [`Cursor`]: its position in *every* queue it follows, e.g.
//! `export:1714000000000-0,analysis:1713999990000-3`. Reconnecting with that as
//! `Last-Event-ID` replays each queue from its own position: no gap, no duplicate.
//!
//! A per-job stream follows one queue, so its ids are plain stream ids; a cursor is
//! accepted there too (the job's queue's position is used).

use std::fmt;

use drover_jobs::QueueName;
use drover_jobs::events::StreamPos;

/// A `Last-Event-ID` that is neither a stream id nor a cursor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Last-Event-ID {0:?}: send back the id of the last event received")]
pub struct BadEventId(pub String);

/// A position in each of some queues' streams (`None` where the client has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    positions: [Option<StreamPos>; QueueName::ALL.len()],
}

/// The index of a queue in [`QueueName::ALL`], used to keep per-queue arrays.
#[must_use]
pub fn queue_index(q: QueueName) -> usize {
    match q {
        QueueName::Export => 0,
        QueueName::Analysis => 1,
        QueueName::Aggregation => 2,
        QueueName::Cleanup => 3,
    }
}

impl Cursor {
    /// The position in queue `q`'s stream.
    #[must_use]
    pub fn get(&self, q: QueueName) -> Option<StreamPos> {
        self.positions[queue_index(q)]
    }

    /// Sets the position in queue `q`'s stream.
    pub fn set(&mut self, q: QueueName, pos: StreamPos) {
        self.positions[queue_index(q)] = Some(pos);
    }

    /// Forgets the position in queue `q`.
    pub fn clear(&mut self, q: QueueName) {
        self.positions[queue_index(q)] = None;
    }

    /// Whether no queue has a position.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.positions.iter().all(Option::is_none)
    }

    /// Parses a cursor (`queue:ms-seq,…`). Queues Drover does not know are an error:
    /// a silently dropped position would replay that queue from nowhere.
    pub fn parse(s: &str) -> Result<Self, BadEventId> {
        let bad = || BadEventId(s.to_owned());
        let mut c = Cursor::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (q, pos) = part.split_once(':').ok_or_else(bad)?;
            let q: QueueName = q.parse().map_err(|_| bad())?;
            let pos: StreamPos = parse_pos(pos).ok_or_else(bad)?;
            c.set(q, pos);
        }
        if c.is_empty() {
            return Err(bad());
        }
        Ok(c)
    }

    /// The position in queue `q` that a `Last-Event-ID` of a per-job stream names:
    /// a stream id, or a cursor's entry for `q` (`None` if it has none).
    pub fn position_for(s: &str, q: QueueName) -> Result<Option<StreamPos>, BadEventId> {
        if let Some(pos) = parse_pos(s) {
            return Ok(Some(pos));
        }
        Ok(Cursor::parse(s)?.get(q))
    }
}

/// A strict `<ms>-<seq>` (both parts present and numeric).
#[must_use]
pub fn parse_pos(s: &str) -> Option<StreamPos> {
    let (ms, seq) = s.trim().split_once('-')?;
    if ms.is_empty() || seq.is_empty() {
        return None;
    }
    Some(StreamPos {
        ms: ms.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for q in QueueName::ALL {
            if let Some(p) = self.get(q) {
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                write!(f, "{}:{}-{}", q.as_str(), p.ms, p.seq)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(ms: u64, seq: u64) -> StreamPos {
        StreamPos { ms, seq }
    }

    #[test]
    fn cursors_round_trip() {
        let mut c = Cursor::default();
        c.set(QueueName::Analysis, pos(1_714_000_000_000, 3));
        c.set(QueueName::Export, pos(5, 0));
        let s = c.to_string();
        assert_eq!(s, "export:5-0,analysis:1714000000000-3");
        assert_eq!(Cursor::parse(&s).unwrap(), c);
        assert_eq!(c.get(QueueName::Cleanup), None);
    }

    #[test]
    fn bad_ids_are_refused() {
        for s in [
            "",
            ",",
            "export",
            "export:",
            "export:12",
            "export:a-1",
            "jobs:1-0",
            "1-",
        ] {
            assert!(Cursor::parse(s).is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn per_job_ids_take_a_stream_id_or_a_cursor() {
        assert_eq!(
            Cursor::position_for("17-2", QueueName::Export).unwrap(),
            Some(pos(17, 2))
        );
        assert_eq!(
            Cursor::position_for("cleanup:9-1,export:4-0", QueueName::Export).unwrap(),
            Some(pos(4, 0))
        );
        assert_eq!(
            Cursor::position_for("cleanup:9-1", QueueName::Export).unwrap(),
            None
        );
        assert!(Cursor::position_for("nonsense", QueueName::Export).is_err());
    }
}
