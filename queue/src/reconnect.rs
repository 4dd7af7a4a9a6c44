//! How long a process waits before it tries Redis again, shared by every loop that
//! survives an outage (the workers' fetch and maintenance, the API's event relay).
//!
//! One policy in one place, so an outage looks the same from every process: 50 ms
//! doubling to 5 s, half of it jittered so that a fleet does not reconnect in step.

use std::time::Duration;

use crate::options::{Backoff, BackoffKind};

/// The delay after the `failures`-th failure in a row (the first is 1).
#[must_use]
pub fn reconnect_delay(failures: u32) -> Duration {
    let policy = Backoff {
        kind: BackoffKind::Exponential,
        delay_ms: 50,
        factor: 2.0,
        max_delay_ms: 5000,
        jitter: 0.5,
    };
    policy.delay(failures.max(1), rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        for _ in 0..100 {
            let first = reconnect_delay(1);
            assert!(
                (Duration::from_millis(25)..=Duration::from_millis(50)).contains(&first),
                "{first:?}"
            );
            assert!(reconnect_delay(0) <= Duration::from_millis(50));
            let late = reconnect_delay(30);
            assert!(late <= Duration::from_secs(5), "{late:?}");
            assert!(late >= Duration::from_millis(2500), "{late:?}");
        }
    }
}
