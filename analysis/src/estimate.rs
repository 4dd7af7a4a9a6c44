//! How long an analysis should take: a fixed part, the file's bytes at the reading
//! rate, and the chosen cells at what scoring a cell costs, all taken from the runs
//! that completed on this installation.
//!
//! Two things shape the model:
//! - One rate over a whole run (its bytes ÷ its seconds) spreads the run's fixed costs
//!   (looking up the dataset and its checkpoint, opening the files, the rename) over its
//!   bytes: measured on a small run, it makes a big run look slower than it is. So each
//!   run records how much of its time was outside its reading loop, and an estimate
//!   adds that once.
//! - The reading loop splits every record but scores only the chosen cells, and
//!   scoring costs several times what splitting does: an analysis of one short column
//!   of a file takes a fraction of the time of one of all its text columns. So the
//!   runner times the cells of one row in [`TIME_EVERY`](crate::runner::TIME_EVERY)
//!   and fits their nanoseconds to a cost per cell plus a cost per byte
//!   ([`CellTimes`]). A run's reading rate is then its file's bytes over the rest of
//!   its loop's time, and an estimate adds the chosen cells at the fitted costs.

/// Sums over timed cells, for a least-squares line of nanoseconds against length.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CellTimes {
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

/// What scoring one cell costs: a part per cell (the scorer's setup, writing the
/// compound and label, the summary) and a part per byte of its text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellCost {
    pub ns_per_cell: f64,
    pub ns_per_byte: f64,
}

impl CellTimes {
    /// One timed cell of `len` bytes that took `ns`.
    pub fn add(&mut self, len: u64, ns: f64) {
        let x = len as f64;
        self.n += 1.0;
        self.sx += x;
        self.sy += ns;
        self.sxx += x * x;
        self.sxy += x * ns;
    }

    /// The cells timed so far.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.n as u64
    }

    /// The least-squares cost per cell and per byte; `None` before two cells. When the
    /// lengths barely vary, or noise makes a part negative, the whole time goes to
    /// the other part.
    #[must_use]
    pub fn fit(&self) -> Option<CellCost> {
        if self.n < 2.0 || self.sy <= 0.0 {
            return None;
        }
        let spread = self.n * self.sxx - self.sx * self.sx;
        let per_byte = if spread > 1e-9 * self.n * self.sxx.max(1.0) {
            (self.n * self.sxy - self.sx * self.sy) / spread
        } else {
            0.0
        };
        let per_cell = (self.sy - per_byte * self.sx) / self.n;
        Some(if per_byte <= 0.0 {
            CellCost {
                ns_per_cell: self.sy / self.n,
                ns_per_byte: 0.0,
            }
        } else if per_cell < 0.0 {
            CellCost {
                ns_per_cell: 0.0,
                ns_per_byte: self.sxy / self.sxx,
            }
        } else {
            CellCost {
                ns_per_cell: per_cell,
                ns_per_byte: per_byte,
            }
        })
    }
}

impl CellCost {
    /// From the two nullable columns a run or a calibration stores it in.
    #[must_use]
    pub fn from_columns(ns_per_cell: Option<f64>, ns_per_byte: Option<f64>) -> Option<Self> {
        Some(Self {
            ns_per_cell: ns_per_cell?,
            ns_per_byte: ns_per_byte?,
        })
    }

    /// Seconds to score `cells` cells holding `bytes` bytes.
    #[must_use]
    pub fn secs(&self, cells: u64, bytes: u64) -> f64 {
        (self.ns_per_cell * cells as f64 + self.ns_per_byte * bytes as f64) / 1e9
    }
}

/// What a run (or a calibration pass) scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub cells: u64,
    pub bytes: u64,
    pub cost: CellCost,
}

impl Scored {
    /// The reading rate of a loop over `file_bytes` that took `loop_secs`, this
    /// scoring included: the file's bytes over the time left once the scoring is
    /// taken out (never less than a tenth of the loop, against a fit gone wrong).
    #[must_use]
    pub fn read_bytes_per_sec(&self, file_bytes: f64, loop_secs: f64) -> f64 {
        let scoring = self.cost.secs(self.cells, self.bytes);
        file_bytes / (loop_secs - scoring).max(loop_secs * 0.1).max(1e-6)
    }
}

/// How fast one completed run went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSpeed {
    /// Bytes of the file it read.
    pub bytes: f64,
    /// Seconds of its reading loop.
    pub reading_secs: f64,
    /// Seconds outside the reading loop.
    pub overhead_secs: f64,
    /// What it scored, and at what cost (`None`: a run recorded before runs timed
    /// their cells).
    pub scored: Option<Scored>,
}

impl RunSpeed {
    /// From what a run recorded: `bytes_per_sec` over its whole time of `secs`, of which
    /// `overhead_secs` were outside the reading loop, and what it scored.
    #[must_use]
    pub fn new(bytes_per_sec: f64, secs: f64, overhead_secs: f64, scored: Option<Scored>) -> Self {
        let overhead_secs = overhead_secs.clamp(0.0, secs);
        Self {
            bytes: bytes_per_sec * secs,
            reading_secs: (secs - overhead_secs).max(1e-3),
            overhead_secs,
            scored,
        }
    }
}

/// What an estimate assumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// Seconds a run takes whatever its size.
    pub overhead_secs: f64,
    /// Bytes of the file per second of reading: of the loop's time apart from scoring
    /// when `cost` is known, else of all of it.
    pub bytes_per_sec: f64,
    /// What scoring a cell costs (`None`: not known, and every byte of the file counts
    /// the same, whichever columns are chosen).
    pub cost: Option<CellCost>,
}

impl Model {
    /// The medians of the runs' rates and costs, so that one odd run does not move
    /// the estimate, and the least of their fixed parts; `None` without a run. Runs
    /// that timed their cells are used when there are any, the others only when none
    /// did.
    #[must_use]
    pub fn from_runs(runs: &[RunSpeed]) -> Option<Self> {
        let timed: Vec<(RunSpeed, Scored)> =
            runs.iter().filter_map(|r| Some((*r, r.scored?))).collect();
        if !timed.is_empty() {
            let med =
                |f: &dyn Fn(&(RunSpeed, Scored)) -> f64| median(timed.iter().map(f).collect());
            return Some(Self {
                overhead_secs: least(timed.iter().map(|(r, _)| r.overhead_secs)),
                bytes_per_sec: med(&|(r, s)| s.read_bytes_per_sec(r.bytes, r.reading_secs)),
                cost: Some(CellCost {
                    ns_per_cell: med(&|(_, s)| s.cost.ns_per_cell),
                    ns_per_byte: med(&|(_, s)| s.cost.ns_per_byte),
                }),
            });
        }
        if runs.is_empty() {
            return None;
        }
        Some(Self {
            overhead_secs: least(runs.iter().map(|r| r.overhead_secs)),
            bytes_per_sec: median(runs.iter().map(|r| r.bytes / r.reading_secs).collect()),
            cost: None,
        })
    }

    /// A worker's start-up calibration, which times the reading loop alone (no fixed
    /// part): its reading rate and cell cost when it timed its cells, else its
    /// overall rate.
    #[must_use]
    pub fn from_calibration(bytes_per_sec: f64, split: Option<(f64, CellCost)>) -> Self {
        match split {
            Some((read, cost)) => Self {
                overhead_secs: 0.0,
                bytes_per_sec: read,
                cost: Some(cost),
            },
            None => Self::from_rate(bytes_per_sec),
        }
    }

    /// One rate for every byte of the file, with nothing known of the fixed part.
    #[must_use]
    pub fn from_rate(bytes_per_sec: f64) -> Self {
        Self {
            overhead_secs: 0.0,
            bytes_per_sec,
            cost: None,
        }
    }

    /// The expected seconds of a run over `bytes` of CSV that scores `cells` cells
    /// holding `scored_bytes` bytes.
    #[must_use]
    pub fn seconds(&self, bytes: u64, cells: u64, scored_bytes: u64) -> f64 {
        self.overhead_secs
            + bytes as f64 / self.bytes_per_sec.max(1.0)
            + self.scoring_secs(cells, scored_bytes)
    }

    /// The scoring part of [`Model::seconds`].
    #[must_use]
    pub fn scoring_secs(&self, cells: u64, scored_bytes: u64) -> f64 {
        self.cost.map_or(0.0, |c| c.secs(cells, scored_bytes))
    }
}

/// The fixed part every run pays: the least any of them spent outside its reading
/// loop. More than that was a one-off (a worker's first run opens its database
/// connections: on PostgreSQL that made the first run's fixed part several times the
/// next ones', and a median of two carried half of it into every estimate).
fn least(xs: impl Iterator<Item = f64>) -> f64 {
    xs.fold(f64::INFINITY, f64::min).max(0.0)
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
        let small = RunSpeed::new(30e6 / 0.35, 0.35, 0.05, None);
        assert!((small.reading_secs - 0.3).abs() < 1e-9, "{small:?}");
        let m = Model::from_runs(&[small]).unwrap();
        assert!((m.bytes_per_sec - 100e6).abs() < 1.0, "{m:?}");
        // 150 MB: 0.05 + 1.5 s, where one whole-run rate would say 1.75 s.
        assert!((m.seconds(150_000_000, 0, 0) - 1.55).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn the_model_is_the_median_of_the_runs_rates_and_the_least_fixed_part() {
        let runs = [
            RunSpeed::new(100.0, 2.0, 1.0, None),
            RunSpeed::new(300.0, 1.0, 0.0, None),
            RunSpeed::new(1000.0, 1.0, 0.5, None),
        ];
        let m = Model::from_runs(&runs).unwrap();
        assert_eq!(m.overhead_secs, 0.0);
        assert_eq!(m.bytes_per_sec, 300.0);
        let even = Model::from_runs(&runs[..2]).unwrap();
        assert_eq!(even.bytes_per_sec, 250.0);
        assert!(Model::from_runs(&[]).is_none());
    }

    #[test]
    fn an_overhead_past_the_runs_time_is_taken_as_all_of_it() {
        let r = RunSpeed::new(100.0, 1.0, 5.0, None);
        assert_eq!(r.overhead_secs, 1.0);
        assert!(r.reading_secs > 0.0);
    }

    #[test]
    fn timed_cells_fit_a_cost_per_cell_and_per_byte() {
        // 150 ns a cell plus 8 ns a byte, with ±5 ns of alternating noise.
        let mut t = CellTimes::default();
        for i in 0..1000u64 {
            let len = 5 + i % 200;
            let noise = if i % 2 == 0 { 5.0 } else { -5.0 };
            t.add(len, 150.0 + 8.0 * len as f64 + noise);
        }
        let c = t.fit().unwrap();
        assert!((c.ns_per_cell - 150.0).abs() < 1.0, "{c:?}");
        assert!((c.ns_per_byte - 8.0).abs() < 0.01, "{c:?}");
        assert_eq!(t.count(), 1000);
        // Cells all of one length: the whole time per cell.
        let mut same = CellTimes::default();
        same.add(10, 100.0);
        same.add(10, 120.0);
        let c = same.fit().unwrap();
        assert_eq!((c.ns_per_cell, c.ns_per_byte), (110.0, 0.0));
        // Longer cells that took less (noise): the whole time per cell, never a
        // negative cost.
        let mut odd = CellTimes::default();
        odd.add(1, 200.0);
        odd.add(100, 100.0);
        assert_eq!(odd.fit().unwrap().ns_per_byte, 0.0);
        assert!(CellTimes::default().fit().is_none());
    }

    /// A loop that reads at 400 MB/s and scores at 100 ns a cell plus 10 ns a byte.
    const COST: CellCost = CellCost {
        ns_per_cell: 100.0,
        ns_per_byte: 10.0,
    };
    fn loop_secs(bytes: u64, cells: u64, scored: u64) -> f64 {
        bytes as f64 / 400e6 + COST.secs(cells, scored)
    }

    #[test]
    fn a_run_of_two_columns_predicts_a_run_of_one() {
        // A run over a 100 MB file of 1,000,000 rows that scored a long column and a
        // short one (80 MB and 5 MB) ...
        let (file, rows) = (100_000_000, 1_000_000);
        let (long, short) = (80_000_000, 5_000_000);
        let secs = loop_secs(file, 2 * rows, long + short) + 0.1;
        let scored = Scored {
            cells: 2 * rows,
            bytes: long + short,
            cost: COST,
        };
        let run = RunSpeed::new(file as f64 / secs, secs, 0.1, Some(scored));
        let m = Model::from_runs(&[run]).unwrap();
        assert!((m.bytes_per_sec - 400e6).abs() < 1.0, "{m:?}");
        assert!((m.seconds(file, 2 * rows, long + short) - secs).abs() < 1e-9);
        // ... says how long one of the short column alone takes: about a third, where
        // one rate for every byte says the same time again.
        let want = loop_secs(file, rows, short) + 0.1;
        assert!((m.seconds(file, rows, short) - want).abs() < 1e-9, "{m:?}");
        assert!(want < secs / 2.0);
        let flat = Model::from_runs(&[RunSpeed {
            scored: None,
            ..run
        }])
        .unwrap();
        assert!((flat.seconds(file, rows, short) - secs).abs() < 1e-9);
    }

    #[test]
    fn a_calibration_that_timed_its_cells_weighs_them() {
        let m = Model::from_calibration(100e6, Some((400e6, COST)));
        assert!((m.seconds(400_000_000, 1_000_000, 10_000_000) - 1.2).abs() < 1e-9);
        let m = Model::from_calibration(100e6, None);
        assert!((m.seconds(400_000_000, 1_000_000, 10_000_000) - 4.0).abs() < 1e-9);
    }

    #[test]
    fn runs_that_did_not_time_their_cells_are_left_out_when_others_did() {
        let old = RunSpeed::new(1.0, 1.0, 0.0, None);
        let scored = Scored {
            cells: 1_000_000,
            bytes: 50_000_000,
            cost: COST,
        };
        let secs = loop_secs(200_000_000, scored.cells, scored.bytes);
        let new = RunSpeed::new(200e6 / secs, secs, 0.0, Some(scored));
        let m = Model::from_runs(&[old, new, old]).unwrap();
        assert!((m.bytes_per_sec - 400e6).abs() < 1.0, "{m:?}");
        assert_eq!(m.cost, Some(COST));
    }
}
