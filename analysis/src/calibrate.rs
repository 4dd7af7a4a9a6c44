//! The fresh-install calibration: how many bytes of CSV per second this machine's
//! analysis loop gets through, measured by the worker when it starts, before any real
//! run has recorded its own throughput.
//!
//! It runs the real [`Runner`] (split, score, write results) over a sample of
//! review-like rows generated in memory and written to a scratch file under the data
//! dir's `tmp/` (so it sits in the page cache, as a freshly uploaded dataset does),
//! and stores the rate, and how it splits between reading the file and scoring its
//! cells, in `analysis_calibrations`. Estimates use it until completed runs have
//! recorded theirs.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::estimate::CellCost;
use crate::runner::{RunState, Runner, Selection, start_results};

/// Rows of the sample: about 4 MB, a few hundred milliseconds of scoring.
pub const SAMPLE_ROWS: usize = 40_000;

const TEXTS: &[&str] = &[
    "The food was great and the staff were very friendly!",
    "Terrible service, we waited an hour for cold soup.",
    "Not bad at all, but the rooms were small and noisy.",
    "It was OK I guess, nothing special about the place",
    "Absolutely LOVED it :) would come back again",
    "The product broke after two days... very disappointing",
    "Delivery was fast, packaging was fine, works as described.",
    "Worst purchase ever. Do not buy!!",
];

/// The sample: `id,title,review,rating`, two text columns as reviews have.
#[must_use]
pub fn sample() -> Vec<u8> {
    let mut out = b"id,title,review,rating\n".to_vec();
    for i in 0..SAMPLE_ROWS {
        let a = TEXTS[i % TEXTS.len()];
        let b = TEXTS[(i * 5 + 3) % TEXTS.len()];
        let c = TEXTS[(i * 3 + 1) % TEXTS.len()];
        let _ = writeln!(
            out,
            "{i},\"{}\",\"{b} {c}\",{}",
            &a[..a.len().min(24)],
            i % 5 + 1
        );
    }
    out
}

/// Passes over the sample; the figures are the median pass's, so that one pass slowed
/// by whatever else the machine was doing at the worker's start does not set them.
pub const PASSES: usize = 3;

/// What a worker's start-up calibration measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Bytes of CSV per second scoring the sample's two text columns.
    pub bytes_per_sec: f64,
    /// How that splits: bytes per second of the reading alone, and what scoring a
    /// cell costs (`None` if the pass timed too few cells to say).
    pub split: Option<(f64, CellCost)>,
}

/// Times the real runner scoring the sample's two text columns, [`PASSES`] times, in
/// `scratch_dir` (files removed afterwards).
///
/// # Errors
/// If the scratch files cannot be written or read.
pub fn measure(scratch_dir: &Path) -> std::io::Result<Calibration> {
    std::fs::create_dir_all(scratch_dir)?;
    let tag = std::process::id();
    let input = scratch_dir.join(format!("calibration.{tag}.csv"));
    let output = scratch_dir.join(format!("calibration.{tag}.out"));
    let data = sample();
    let result = (|| {
        std::fs::write(&input, &data)?;
        let header: Vec<String> = ["id", "title", "review", "rating"]
            .map(str::to_owned)
            .to_vec();
        let cols = vec!["title".to_owned(), "review".to_owned()];
        let start = data.iter().position(|&b| b == b'\n').unwrap_or(0) as u64 + 1;
        let file_bytes = (data.len() as u64 - start) as f64;
        let mut passes = Vec::with_capacity(PASSES);
        for _ in 0..PASSES {
            let sel = Selection::new(&header, &cols).map_err(std::io::Error::other)?;
            let started = Instant::now();
            let file = start_results(&output, None)?;
            let mut r = Runner::open(&input, file, sel, RunState::fresh(start, &cols))?;
            while !r.step(u64::MAX, Duration::from_secs(60))? {}
            let secs = started.elapsed().as_secs_f64().max(1e-6);
            passes.push((secs, r.scored()));
        }
        passes.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (secs, scored) = passes[PASSES / 2];
        Ok(Calibration {
            bytes_per_sec: file_bytes / secs,
            split: scored.map(|s| (s.read_bytes_per_sec(file_bytes, secs), s.cost)),
        })
    })();
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_calibration_measures_a_rate_and_its_split_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = super::measure(dir.path()).unwrap();
        assert!(c.bytes_per_sec > 100_000.0, "{c:?}");
        // Reading alone is faster than reading and scoring, and a cell costs something
        // to score.
        let (read, cost) = c.split.expect("the passes timed their cells");
        assert!(read > c.bytes_per_sec, "{c:?}");
        assert!(cost.secs(1000, 100_000) > 0.0, "{c:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
