//! The leader lock: one scheduler replica fires at a time.

use std::time::Duration;

use drover_queue::Redis;

/// Holds (or tries to hold) the lock `<ns>:scheduler:leader`.
pub struct Leader {
    redis: Redis,
    key: String,
    me: String,
    ttl: Duration,
    leading: bool,
}

/// Takes the lock if free, or extends it if ours. Returns 1 if we hold it.
const HOLD: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Deletes the lock if ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

impl Leader {
    /// A contender for the lock of namespace `ns`.
    #[must_use]
    pub fn new(redis: Redis, ns: &str, ttl: Duration) -> Self {
        Self {
            redis,
            key: format!("{ns}:scheduler:leader"),
            me: format!("{}-{}", std::process::id(), ulid::Ulid::new()),
            ttl,
            leading: false,
        }
    }

    /// Takes or keeps the lock; true while this replica leads.
    pub async fn hold(&mut self) -> drover_queue::Result<bool> {
        let script = redis::Script::new(HOLD);
        let mut inv = script.prepare_invoke();
        inv.key(&self.key)
            .arg(&self.me)
            .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX));
        let held: i64 = self.redis.invoke(&inv).await?;
        let now = held == 1;
        if now != self.leading {
            if now {
                tracing::info!(id = self.me, "this scheduler leads: it fires the schedules");
            } else {
                tracing::info!(id = self.me, "another scheduler leads");
            }
            self.leading = now;
        }
        Ok(now)
    }

    /// Gives the lock up (at shutdown), so another replica takes over at once.
    pub async fn release(&mut self) {
        if !self.leading {
            return;
        }
        let script = redis::Script::new(RELEASE);
        let mut inv = script.prepare_invoke();
        inv.key(&self.key).arg(&self.me);
        let _ = self.redis.invoke::<i64>(&inv).await;
        self.leading = false;
    }
}
