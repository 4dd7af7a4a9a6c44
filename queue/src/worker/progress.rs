//! A progress meter for handlers that work through a known (or growing) number of
//! units: rows exported, rows scored, jobs archived.
//!
//! A handler calls [`ProgressMeter::add`] as it goes, as often as it likes; the meter
//! turns that into reports that mean something to a person watching a progress bar —
//! a percentage, a message such as `scoring: 12000 of 50000 rows, 850 rows/s, about
//! 45 s left`, and data `{rows_done, rows_total, rows_per_s, eta_s, elapsed_s}` — at
//! most one per interval (half a second by default), plus one at [`ProgressMeter::finish`].
//!
//! The rate is smoothed (an exponential moving average with a 10 s time constant), so
//! the ETA follows a job that speeds up or slows down without jumping at every
//! report. The percentage stays at 99 until `finish`: a handler that has done every
//! row may still be writing its file or its summary.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::JobContext;

/// Where a meter's reports go.
pub trait ProgressSink {
    /// One report: percent (0 to 100), message, data (a JSON object).
    fn report(&self, percent: u8, message: String, data: Value);
}

impl ProgressSink for JobContext {
    fn report(&self, percent: u8, message: String, data: Value) {
        self.progress(percent, message, data);
    }
}

/// Time constant of the rate's moving average.
const RATE_TAU: Duration = Duration::from_secs(10);

/// Turns "n more units done" into rate-limited progress reports.
#[derive(Debug)]
pub struct ProgressMeter<S: ProgressSink = JobContext> {
    sink: S,
    label: String,
    unit: String,
    total: Option<u64>,
    done: u64,
    every: Duration,
    started: Instant,
    last_report: Option<Instant>,
    /// The last rate sample: when, and how much was done then.
    sample: (Instant, u64),
    /// Units per second, smoothed; `None` until time has passed.
    rate: Option<f64>,
}

/// What a report says, in numbers.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    percent: u8,
    done: u64,
    total: Option<u64>,
    /// Units per second, smoothed.
    per_s: Option<f64>,
    /// Seconds left at the current rate.
    eta_s: Option<u64>,
    elapsed_s: f64,
}

impl<S: ProgressSink> ProgressMeter<S> {
    /// A meter of `total` units (`None` when unknown), reporting to `sink`.
    pub fn new(sink: S, total: Option<u64>) -> Self {
        Self::starting_at(sink, total, Instant::now())
    }

    fn starting_at(sink: S, total: Option<u64>, now: Instant) -> Self {
        Self {
            sink,
            label: "working".to_owned(),
            unit: "rows".to_owned(),
            total,
            done: 0,
            every: Duration::from_millis(500),
            started: now,
            last_report: None,
            sample: (now, 0),
            rate: None,
        }
    }

    /// What the job is doing, the start of each message (`exporting`, `scoring`).
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// What is counted, in messages (`rows` by default; the data keys stay `rows_*`).
    #[must_use]
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = unit.into();
        self
    }

    /// Reports at most this often.
    #[must_use]
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Sets the total once it is known (or when it changes).
    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    /// Counts `n` more units done; reports if the last report is old enough.
    pub fn add(&mut self, n: u64) {
        self.add_at(n, Instant::now());
    }

    /// Sets the units done (a resumed job starts from its checkpoint).
    pub fn set(&mut self, done: u64) {
        self.done = done;
        self.sample.1 = self.sample.1.min(done);
        self.tick(Instant::now(), false);
    }

    /// Units done so far.
    #[must_use]
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Reports 100 % (whatever was counted): the work is done.
    pub fn finish(&mut self) {
        self.finish_at(Instant::now());
    }

    fn add_at(&mut self, n: u64, now: Instant) {
        self.done = self.done.saturating_add(n);
        self.tick(now, false);
    }

    fn finish_at(&mut self, now: Instant) {
        self.update_rate(now);
        let mut s = self.snapshot_at(now);
        s.percent = 100;
        s.eta_s = Some(0);
        self.send(&s);
        self.last_report = Some(now);
    }

    fn tick(&mut self, now: Instant, force: bool) {
        let due = self
            .last_report
            .is_none_or(|t| now.duration_since(t) >= self.every);
        if !(due || force) {
            return;
        }
        self.update_rate(now);
        let s = self.snapshot_at(now);
        self.send(&s);
        self.last_report = Some(now);
    }

    /// Folds the units done since the last sample into the smoothed rate.
    fn update_rate(&mut self, now: Instant) {
        let (at, done) = self.sample;
        let dt = now.duration_since(at).as_secs_f64();
        if dt <= 0.0 {
            return;
        }
        let inst = (self.done.saturating_sub(done)) as f64 / dt;
        self.rate = Some(match self.rate {
            None => inst,
            Some(r) => {
                let alpha = 1.0 - (-dt / RATE_TAU.as_secs_f64()).exp();
                r + alpha * (inst - r)
            }
        });
        self.sample = (now, self.done);
    }

    /// The numbers a report at `now` would carry.
    fn snapshot_at(&self, now: Instant) -> Snapshot {
        let percent = match self.total {
            Some(t) if t > 0 => ((self.done.min(t) * 100) / t).min(99) as u8,
            _ => 0,
        };
        let eta_s = match (self.total, self.rate) {
            (Some(t), Some(r)) if r > 0.0 => {
                Some((t.saturating_sub(self.done) as f64 / r).ceil() as u64)
            }
            (Some(t), _) if self.done >= t => Some(0),
            _ => None,
        };
        Snapshot {
            percent,
            done: self.done,
            total: self.total,
            per_s: self.rate,
            eta_s,
            elapsed_s: now.duration_since(self.started).as_secs_f64(),
        }
    }

    fn send(&self, s: &Snapshot) {
        let mut msg = match s.total {
            Some(t) => format!("{}: {} of {} {}", self.label, s.done, t, self.unit),
            None => format!("{}: {} {}", self.label, s.done, self.unit),
        };
        if let Some(r) = s.per_s {
            msg.push_str(&format!(", {} {}/s", round(r, 0), self.unit));
        }
        match s.eta_s {
            Some(0) if s.percent == 100 => msg.push_str(", done"),
            Some(eta) => msg.push_str(&format!(", about {} left", human(eta))),
            None => {}
        }
        let data = json!({
            "rows_done": s.done,
            "rows_total": s.total,
            "rows_per_s": s.per_s.map(|r| round(r, 1)),
            "eta_s": s.eta_s,
            "elapsed_s": round(s.elapsed_s, 1),
        });
        self.sink.report(s.percent, msg, data);
    }
}

fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// A duration for people: `45 s`, `12 min`, `2 h 5 min`.
fn human(secs: u64) -> String {
    match secs {
        0..90 => format!("{secs} s"),
        90..5400 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(u8, String, Value)>>>);

    impl ProgressSink for Recorder {
        fn report(&self, percent: u8, message: String, data: Value) {
            self.0.lock().unwrap().push((percent, message, data));
        }
    }

    impl Recorder {
        fn take(&self) -> Vec<(u8, String, Value)> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    #[test]
    fn reports_rate_eta_and_percent_at_most_once_per_interval() {
        let rec = Recorder::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut m = ProgressMeter::starting_at(rec.clone(), Some(1000), t0)
            .label("scoring")
            .every(Duration::from_secs(1));
        // 100 rows per second, one call per row.
        for i in 1..=300u64 {
            m.add_at(1, at(i * 10));
        }
        let reports = rec.take();
        // The first call reports; then one per second (at 1.01 s, 2.01 s, 3.0 s…).
        assert_eq!(reports.len(), 3, "{reports:?}");
        let (percent, msg, data) = reports.last().unwrap();
        assert_eq!(*percent, 20);
        assert_eq!(data["rows_done"], 201);
        assert_eq!(data["rows_total"], 1000);
        let rate = data["rows_per_s"].as_f64().unwrap();
        assert!((rate - 100.0).abs() < 1.0, "rate {rate}");
        let eta = data["eta_s"].as_u64().unwrap();
        assert!((7..=9).contains(&eta), "eta {eta}");
        assert!(
            msg.starts_with("scoring: 201 of 1000 rows, 100 rows/s, about"),
            "{msg}"
        );
    }

    #[test]
    fn the_rate_follows_a_slowdown_smoothly() {
        let rec = Recorder::default();
        let t0 = Instant::now();
        let mut m =
            ProgressMeter::starting_at(rec.clone(), Some(100_000), t0).every(Duration::ZERO);
        // 1000/s for 20 s, then 100/s.
        for s in 1..=20u64 {
            m.add_at(1000, t0 + Duration::from_secs(s));
        }
        let fast = m.rate.unwrap();
        assert!((fast - 1000.0).abs() < 1.0, "{fast}");
        m.add_at(100, t0 + Duration::from_secs(21));
        let after_one = m.rate.unwrap();
        assert!(after_one < 1000.0 && after_one > 800.0, "{after_one}");
        for s in 22..=80u64 {
            m.add_at(100, t0 + Duration::from_secs(s));
        }
        let slow = m.rate.unwrap();
        assert!((slow - 100.0).abs() < 10.0, "{slow}");
    }

    #[test]
    fn percent_waits_for_finish_and_unknown_totals_have_no_eta() {
        let rec = Recorder::default();
        let t0 = Instant::now();
        let mut m = ProgressMeter::starting_at(rec.clone(), Some(10), t0).every(Duration::ZERO);
        m.add_at(10, t0 + Duration::from_secs(1));
        assert_eq!(rec.take().last().unwrap().0, 99);
        m.finish_at(t0 + Duration::from_secs(2));
        let (p, msg, data) = rec.take().pop().unwrap();
        assert_eq!(p, 100);
        assert_eq!(data["eta_s"], 0);
        assert!(msg.ends_with(", done"), "{msg}");

        let mut u = ProgressMeter::starting_at(rec.clone(), None, t0).unit("jobs");
        u.add_at(5, t0 + Duration::from_secs(1));
        let (p, msg, data) = rec.take().pop().unwrap();
        assert_eq!(p, 0);
        assert_eq!(data["eta_s"], Value::Null);
        assert_eq!(data["rows_total"], Value::Null);
        assert_eq!(msg, "working: 5 jobs, 5 jobs/s");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(45), "45 s");
        assert_eq!(human(600), "10 min");
        assert_eq!(human(7500), "2 h 5 min");
    }
}
