//! Lifecycle and progress events, as the scripts append them to each queue's stream.
//!
//! Every state change appends its event in the same script as the change, so the
//! stream never tells of a change that did not happen, nor misses one that did.
//! The stream is capped (approximately, `MAXLEN ~`) so it cannot grow without bound.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use redis::streams::StreamId;
use serde::{Deserialize, Serialize};

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "job:queued")]
    JobQueued,
    #[serde(rename = "job:active")]
    JobActive,
    #[serde(rename = "job:progress")]
    JobProgress,
    #[serde(rename = "job:completed")]
    JobCompleted,
    #[serde(rename = "job:failed")]
    JobFailed,
    #[serde(rename = "job:retrying")]
    JobRetrying,
    #[serde(rename = "job:stalled")]
    JobStalled,
    #[serde(rename = "job:removed")]
    JobRemoved,
    #[serde(rename = "queue:paused")]
    QueuePaused,
    #[serde(rename = "queue:resumed")]
    QueueResumed,
    #[serde(rename = "queue:cleaned")]
    QueueCleaned,
}

impl EventType {
    /// Every type.
    pub const ALL: [EventType; 11] = [
        EventType::JobQueued,
        EventType::JobActive,
        EventType::JobProgress,
        EventType::JobCompleted,
        EventType::JobFailed,
        EventType::JobRetrying,
        EventType::JobStalled,
        EventType::JobRemoved,
        EventType::QueuePaused,
        EventType::QueueResumed,
        EventType::QueueCleaned,
    ];

    /// The wire name, e.g. `job:completed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::JobQueued => "job:queued",
            EventType::JobActive => "job:active",
            EventType::JobProgress => "job:progress",
            EventType::JobCompleted => "job:completed",
            EventType::JobFailed => "job:failed",
            EventType::JobRetrying => "job:retrying",
            EventType::JobStalled => "job:stalled",
            EventType::JobRemoved => "job:removed",
            EventType::QueuePaused => "queue:paused",
            EventType::QueueResumed => "queue:resumed",
            EventType::QueueCleaned => "queue:cleaned",
        }
    }

    /// Whether a job's story ends with this event (it may still be retried by hand).
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventType::JobCompleted | EventType::JobFailed | EventType::JobRemoved
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not an event type.
#[derive(Debug, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The stream entry id (`<ms>-<seq>`), unique and increasing within the queue.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub queue: String,
    /// Empty for queue events.
    pub job_id: String,
    pub attempt: u32,
    /// 0 to 100.
    pub progress: u8,
    pub message: String,
    /// A JSON object whose fields depend on the type.
    pub data: serde_json::Value,
    /// When it happened, ms since the epoch (Redis's clock).
    pub ts: i64,
}

impl Event {
    /// Builds an event from a stream entry; `None` for an entry of another shape.
    #[must_use]
    pub fn from_entry(entry: &StreamId) -> Option<Self> {
        let get = |k: &str| -> Option<String> {
            entry
                .map
                .get(k)
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        };
        let kind = get("type")?.parse().ok()?;
        let data = get("data")
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        Some(Self {
            id: entry.id.clone(),
            kind,
            queue: get("queue").unwrap_or_default(),
            job_id: get("job_id").unwrap_or_default(),
            attempt: get("attempt").and_then(|v| v.parse().ok()).unwrap_or(0),
            progress: get("progress").and_then(|v| v.parse().ok()).unwrap_or(0),
            message: get("message").unwrap_or_default(),
            data,
            ts: get("ts").and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }

    /// The fields to `XADD` for this event (used for test events published by hand).
    #[must_use]
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("type", self.kind.as_str().to_owned()),
            ("queue", self.queue.clone()),
            ("job_id", self.job_id.clone()),
            ("attempt", self.attempt.to_string()),
            ("progress", self.progress.to_string()),
            ("message", self.message.clone()),
            ("data", self.data.to_string()),
            ("ts", self.ts.to_string()),
        ]
    }
}

/// A stream entry id, compared numerically (`<ms>-<seq>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamPos {
    pub ms: u64,
    pub seq: u64,
}

impl StreamPos {
    /// The position before every entry.
    pub const ZERO: StreamPos = StreamPos { ms: 0, seq: 0 };
}

impl FromStr for StreamPos {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        Ok(Self {
            ms: ms.parse().map_err(|_| ())?,
            seq: seq.parse().map_err(|_| ())?,
        })
    }
}

impl fmt::Display for StreamPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Parses the entries of an `XREAD`/`XRANGE` reply, skipping foreign ones.
#[must_use]
pub fn parse_entries(ids: &[StreamId]) -> Vec<Event> {
    ids.iter().filter_map(Event::from_entry).collect()
}

/// Groups events by job id (test and tooling helper).
#[must_use]
pub fn by_job(events: &[Event]) -> HashMap<&str, Vec<&Event>> {
    let mut m: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in events {
        m.entry(e.job_id.as_str()).or_default().push(e);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
    }

    #[test]
    fn stream_positions_order_numerically() {
        let a: StreamPos = "999-5".parse().unwrap();
        let b: StreamPos = "1000-0".parse().unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "1000-0");
        assert!("x-1".parse::<StreamPos>().is_err());
    }
}
