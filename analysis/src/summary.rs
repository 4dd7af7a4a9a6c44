//! Per-column summaries, kept in exact integers so that a resumed run adds up to the
//! same bytes as one that never stopped.

use serde::{Deserialize, Serialize};

use crate::vader::Label;

/// Bins of the compound histogram: 0.1 wide, from -1 to 1 (1 itself in the last).
pub const BINS: usize = 20;

/// Compounds are rounded to 4 decimals, so they are exact in units of 1e-4.
pub const UNITS: f64 = 10_000.0;

/// The running summary of one column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSummary {
    pub column: String,
    pub rows: u64,
    pub positive: u64,
    pub neutral: u64,
    pub negative: u64,
    /// Sum of the compounds, in 1e-4 units.
    pub sum_units: i64,
    pub histogram: [u64; BINS],
}

impl ColumnSummary {
    #[must_use]
    pub fn new(column: &str) -> Self {
        Self {
            column: column.to_owned(),
            rows: 0,
            positive: 0,
            neutral: 0,
            negative: 0,
            sum_units: 0,
            histogram: [0; BINS],
        }
    }

    /// Counts one scored cell, its compound in 1e-4 units.
    pub fn add(&mut self, units: i64) {
        self.rows += 1;
        match Label::of(units as f64 / UNITS) {
            Label::Positive => self.positive += 1,
            Label::Neutral => self.neutral += 1,
            Label::Negative => self.negative += 1,
        }
        self.sum_units += units;
        let bin = ((units + 10_000) / 1_000).clamp(0, BINS as i64 - 1) as usize;
        self.histogram[bin] += 1;
    }

    /// The mean compound, rounded to 4 decimals (0 for no rows).
    #[must_use]
    pub fn mean_compound(&self) -> f64 {
        if self.rows == 0 {
            return 0.0;
        }
        (self.sum_units as f64 / self.rows as f64).round() / UNITS
    }
}

/// A row the analysis could not score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Malformed {
    /// 1-based data row number (the header is row 0).
    pub row: u64,
    pub reason: String,
}

/// Most malformed rows kept as examples.
pub const MAX_EXAMPLES: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_labels_and_mean() {
        let mut s = ColumnSummary::new("t");
        for u in [-10_000, -9_000, -500, 0, 499, 500, 9_999, 10_000] {
            s.add(u);
        }
        assert_eq!(s.histogram[0], 1);
        assert_eq!(s.histogram[1], 1);
        assert_eq!(s.histogram[9], 1);
        assert_eq!(s.histogram[10], 3);
        assert_eq!(s.histogram[19], 2);
        assert_eq!((s.positive, s.neutral, s.negative), (3, 2, 3));
        assert_eq!(s.mean_compound(), 0.0187);
    }
}
