//! The Redis key layout of one queue.
//!
//! Every key of queue `q` in namespace `ns` starts with `{ns:q}:`. The braces are a
//! Redis Cluster hash tag: all of a queue's keys hash to one slot, so each Lua script
//! (which only ever touches one queue) runs on one shard, and a cluster spreads
//! queues over its shards.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{ns:q}:job:<id>` | hash | one job: payload, state, attempts, errors, timestamps… |
//! | `{ns:q}:wait` | zset | waiting job ids, by `(1000 - priority) · 2^42 + seq` |
//! | `{ns:q}:delayed` | zset | delayed job ids (incl. retries in backoff), by run time (ms) |
//! | `{ns:q}:active` | zset | leased job ids, by lease expiry (ms) |
//! | `{ns:q}:completed` | zset | completed job ids, by finish time (ms) |
//! | `{ns:q}:failed` | zset | failed job ids, by finish time (ms) |
//! | `{ns:q}:events` | stream | lifecycle and progress events, capped |
//! | `{ns:q}:seq` | string | FIFO sequence counter |
//! | `{ns:q}:paused` | string | present while the queue is paused |
//! | `{ns:q}:sleep` | string | present while some worker found the queue empty and waits to be woken |
//! | `{ns:q}:flow` | hash | flow control: rate limit, token bucket level, `max_active`, rate pause (see [`crate::flow`]) |
//! | `{ns:q}:capwait` | string | present while some worker found the queue at its `max_active` and waits for a job to finish |
//! | `{ns:q}:idem:<key>` | string | job id owning an idempotency key, with a TTL |
//! | `{ns:q}:stats:<minute>` | hash | per-minute counters, with a TTL |
//! | `{ns:q}:workers` | zset | worker ids, by last heartbeat (ms) |
//! | `{ns:q}:worker:<id>` | string | a worker's description (JSON), with a TTL |
//! | `{ns:q}:unconfirmed:<id>` | string | a worker's last fetched batch until it confirms having it (fetch sequence number, then id and token pairs), with a TTL of a day |
//! | `{ns:q}:retain` | zset | ids of jobs with a retention of their own, by enqueue sequence |
//! | `{ns:q}:retain:lock` | string | the worker enforcing the queue's retention, with a TTL |
//! | `{ns:q}:retain:head:<state>` | string | retention: score up to which the head of a finished set holds only jobs kept by their own retention |
//! | `{ns:q}:retain:sweep:<state>` | string | retention: where the sweep of `retain` stopped |
//!
//! Wake-up notices (the message is the queue name) go out on the pub/sub channel
//! `<ns>:wake` on one server. On a cluster, a plain `PUBLISH` is broadcast to every
//! node, so each queue has a shard channel of its own, `{ns:q}:wake`, in its slot:
//! the scripts send it with `SPUBLISH` (a channel that starts with the hash tag is a
//! shard channel), and only the queue's master relays it.

use crate::error::{QueueError, Result};

/// Checks a queue or namespace name: 1 to 64 of `a-z 0-9 _ -`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(QueueError::InvalidName(name.to_owned()))
    }
}

/// The keys of one queue.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `{ns:q}:`, the prefix every key of the queue shares.
    pub prefix: String,
    pub wait: String,
    pub delayed: String,
    pub active: String,
    pub completed: String,
    pub failed: String,
    pub events: String,
    pub seq: String,
    pub paused: String,
    pub sleep: String,
    /// Flow control: limits and the token bucket.
    pub flow: String,
    /// Set by a worker that found the queue at its `max_active`.
    pub capwait: String,
    pub workers: String,
    /// Jobs with a retention of their own (see [`crate::retention`]).
    pub retain: String,
    /// Held by the one worker that enforces the queue's retention.
    pub retain_lock: String,
    /// The pub/sub channel the queue's wake-ups go out on (see the module docs).
    pub wake_channel: String,
}

impl Keys {
    /// The keys of queue `queue` in namespace `ns`.
    pub fn new(ns: &str, queue: &str) -> Result<Self> {
        validate_name(ns)?;
        validate_name(queue)?;
        let prefix = format!("{{{ns}:{queue}}}:");
        let k = |s: &str| format!("{prefix}{s}");
        Ok(Self {
            wait: k("wait"),
            delayed: k("delayed"),
            active: k("active"),
            completed: k("completed"),
            failed: k("failed"),
            events: k("events"),
            seq: k("seq"),
            paused: k("paused"),
            sleep: k("sleep"),
            flow: k("flow"),
            capwait: k("capwait"),
            workers: k("workers"),
            retain: k("retain"),
            retain_lock: k("retain:lock"),
            wake_channel: wake_channel(ns),
            prefix,
        })
    }

    /// The same keys, for a cluster: wake-ups go out on the queue's shard channel.
    #[must_use]
    pub fn sharded(mut self) -> Self {
        self.wake_channel = shard_wake_channel(&self.prefix);
        self
    }

    /// The hash of job `id`.
    #[must_use]
    pub fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.prefix)
    }

    /// The counters of the minute starting at `minute * 60 s` since the epoch.
    #[must_use]
    pub fn stats(&self, minute: i64) -> String {
        format!("{}stats:{minute}", self.prefix)
    }

    /// The idempotency claim of `key`.
    #[must_use]
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}idem:{key}", self.prefix)
    }

    /// Retention's cursor over the head of the finished set of `state`.
    #[must_use]
    pub fn retain_head(&self, state: &str) -> String {
        format!("{}retain:head:{state}", self.prefix)
    }

    /// Retention's cursor over the jobs with a retention of their own, for `state`.
    #[must_use]
    pub fn retain_sweep(&self, state: &str) -> String {
        format!("{}retain:sweep:{state}", self.prefix)
    }

    /// The batch worker `id` fetched last, until it confirms having it.
    #[must_use]
    pub fn unconfirmed(&self, id: &str) -> String {
        format!("{}unconfirmed:{id}", self.prefix)
    }

    /// The description of worker `id`.
    #[must_use]
    pub fn worker(&self, id: &str) -> String {
        format!("{}worker:{id}", self.prefix)
    }
}

/// The pub/sub channel on which the scripts of namespace `ns` wake sleeping workers.
#[must_use]
pub fn wake_channel(ns: &str) -> String {
    format!("{ns}:wake")
}

/// The shard channel of the queue whose keys start with `prefix` (`{ns:q}:`).
#[must_use]
pub fn shard_wake_channel(prefix: &str) -> String {
    format!("{prefix}wake")
}

/// The Redis Cluster slot of a key (CRC16/XMODEM of its hash tag, mod 16384).
#[must_use]
pub fn cluster_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16_xmodem(tagged) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_matches_redis_reference_values() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(cluster_slot("foo"), 12182);
        assert_eq!(
            cluster_slot("{user1000}.following"),
            cluster_slot("user1000")
        );
        // An empty first tag does not count: the whole key is hashed. 8363 is
        // CRC16/XMODEM("foo{}{bar}") mod 16384, computed outside this code.
        assert_eq!(cluster_slot("foo{}{bar}"), 8363);
        assert_ne!(cluster_slot("foo{}{bar}"), cluster_slot("bar"));
    }

    #[test]
    fn every_key_of_a_queue_hashes_to_one_slot() {
        let keys = Keys::new("drover", "export").unwrap();
        let slot = cluster_slot(&keys.wait);
        let all = [
            keys.wait.clone(),
            keys.delayed.clone(),
            keys.active.clone(),
            keys.completed.clone(),
            keys.failed.clone(),
            keys.events.clone(),
            keys.seq.clone(),
            keys.paused.clone(),
            keys.sleep.clone(),
            keys.flow.clone(),
            keys.capwait.clone(),
            keys.workers.clone(),
            keys.job("01JABCDEF"),
            keys.stats(29_000_000),
            keys.idempotency("order-42"),
            keys.worker("w-1"),
            keys.unconfirmed("w-1"),
            keys.retain.clone(),
            keys.retain_lock.clone(),
            keys.retain_head("completed"),
            keys.retain_sweep("failed"),
            keys.clone().sharded().wake_channel,
        ];
        for key in &all {
            assert!(
                key.starts_with("{drover:export}:"),
                "{key} lacks the hash tag"
            );
            assert_eq!(cluster_slot(key), slot, "{key} is in another slot");
        }
        // Another queue is free to live elsewhere.
        let other = Keys::new("drover", "analysis").unwrap();
        assert_ne!(cluster_slot(&other.wait), slot);
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("export").is_ok());
        assert!(validate_name("bench-1_a").is_ok());
        for bad in ["", "Export", "a b", "a}b", "{x}", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
