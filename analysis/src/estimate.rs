//! How long an analysis should take: a fixed part plus the file's bytes at the reading
//! loop's rate, both taken from the runs that completed on this installation.
//!
//! One rate over a whole run (its bytes ÷ its seconds) spreads the run's fixed costs
//! (looking up the dataset and its checkpoint, opening the files, the rename) over its bytes:
//! measured on a small run, it makes a big run look slower than it is, by as much as
//! those costs weigh in the small one. So each run records how much of its time was
//! outside its reading loop, and an estimate adds that once.

/// How fast one completed run went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSpeed {
    /// Bytes per second of the reading loop alone.
    pub reading_bytes_per_sec: f64,
    /// Seconds outside the reading loop.
    pub overhead_secs: f64,
}

impl RunSpeed {
    /// From what a run recorded: `bytes_per_sec` over its whole time of `secs`, of which
    /// `overhead_secs` were outside the reading loop.
    #[must_use]
    pub fn new(bytes_per_sec: f64, secs: f64, overhead_secs: f64) -> Self {
        let overhead_secs = overhead_secs.clamp(0.0, secs);
        let reading = (secs - overhead_secs).max(1e-3);
        Self {
            reading_bytes_per_sec: bytes_per_sec * secs / reading,
            overhead_secs,
        }
    }
}

/// What an estimate assumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// Seconds a run takes whatever its size.
    pub overhead_secs: f64,
    /// Bytes of CSV per second of the reading loop.
    pub bytes_per_sec: f64,
}

impl Model {
    /// The medians of the runs' figures, so that one odd run does not move the
    /// estimate; `None` without a run.
    #[must_use]
    pub fn from_runs(runs: &[RunSpeed]) -> Option<Self> {
        if runs.is_empty() {
            return None;
        }
        Some(Self {
            overhead_secs: median(runs.iter().map(|r| r.overhead_secs).collect()),
            bytes_per_sec: median(runs.iter().map(|r| r.reading_bytes_per_sec).collect()),
        })
    }

    /// A rate with nothing known of the fixed part (a worker's start-up calibration,
    /// which times the reading loop alone).
    #[must_use]
    pub fn from_rate(bytes_per_sec: f64) -> Self {
        Self {
            overhead_secs: 0.0,
            bytes_per_sec,
        }
    }

    /// The expected seconds of a run over `bytes` of CSV.
    #[must_use]
    pub fn seconds(&self, bytes: u64) -> f64 {
        self.overhead_secs + bytes as f64 / self.bytes_per_sec.max(1.0)
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        f64::midpoint(xs[n / 2 - 1], xs[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_runs_fixed_cost_is_charged_once_to_a_big_run() {
        // 30 MB in 0.35 s, 0.05 s of it outside the reading loop: 100 MB/s of reading.
        let small = RunSpeed::new(30e6 / 0.35, 0.35, 0.05);
        assert!(
            (small.reading_bytes_per_sec - 100e6).abs() < 1.0,
            "{small:?}"
        );
        let m = Model::from_runs(&[small]).unwrap();
        // 150 MB: 0.05 + 1.5 s, where one whole-run rate would say 1.75 s.
        assert!((m.seconds(150_000_000) - 1.55).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn the_model_is_the_median_of_the_runs() {
        let runs = [
            RunSpeed::new(100.0, 2.0, 1.0),
            RunSpeed::new(300.0, 1.0, 0.0),
            RunSpeed::new(1000.0, 1.0, 0.5),
        ];
        let m = Model::from_runs(&runs).unwrap();
        assert_eq!(m.overhead_secs, 0.5);
        assert_eq!(m.bytes_per_sec, 300.0);
        let even = Model::from_runs(&runs[..2]).unwrap();
        assert_eq!(even.bytes_per_sec, 250.0);
        assert!(Model::from_runs(&[]).is_none());
    }

    #[test]
    fn an_overhead_past_the_runs_time_is_taken_as_all_of_it() {
        let r = RunSpeed::new(100.0, 1.0, 5.0);
        assert_eq!(r.overhead_secs, 1.0);
        assert!(r.reading_bytes_per_sec.is_finite());
    }
}
