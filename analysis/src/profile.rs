//! A profile of each column, from a sample of rows: which columns are worth scoring.
//!
//! The sample is the first rows of the file (deterministic, and known before the
//! upload ends). The text score favours columns of long, varied, mostly-letter values:
//! `letters_share × (1 − null_share) × min(1, avg_len / 32) × min(1, 2 × distinct_share)`,
//! and 0 for columns whose values all parse as numbers, booleans or dates.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::{Deserialize, Serialize};

/// The type every non-empty sampled value of a column has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Text,
    Integer,
    Float,
    Boolean,
    Date,
    /// Every sampled value was empty.
    Empty,
}

/// What the sample says about one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Share of empty values.
    pub null_share: f64,
    /// Average length in characters of the non-empty values.
    pub avg_len: f64,
    pub max_len: u64,
    /// Distinct non-empty values over non-empty values.
    pub distinct_share: f64,
    /// Letters over all characters of the non-empty values.
    pub letters_share: f64,
    /// 0 to 1: how much the column looks like free text.
    pub text_score: f64,
}

/// The bytes an analysis of `columns` should score over `rows` rows: for each, its
/// share of non-empty values times their average length (in characters, which are
/// bytes in ASCII text). A column the profile lacks counts 0.
#[must_use]
pub fn expected_scored_bytes(profile: &[ColumnProfile], columns: &[String], rows: u64) -> u64 {
    columns
        .iter()
        .filter_map(|c| profile.iter().find(|p| &p.name == c))
        .map(|p| {
            (rows as f64 * (1.0 - p.null_share).clamp(0.0, 1.0) * p.avg_len.max(0.0)).round() as u64
        })
        .sum()
}

#[derive(Default)]
struct Acc {
    n: u64,
    nulls: u64,
    ints: u64,
    floats: u64,
    bools: u64,
    dates: u64,
    chars: u64,
    letters: u64,
    max_len: u64,
    distinct: HashSet<u64>,
}

/// Accumulates the sample, one row at a time.
pub struct Profiler {
    names: Vec<String>,
    cols: Vec<Acc>,
}

fn is_int(s: &str) -> bool {
    let d = s.strip_prefix(['-', '+']).unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

fn is_bool(s: &str) -> bool {
    ["true", "false", "yes", "no"]
        .iter()
        .any(|w| s.eq_ignore_ascii_case(w))
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && (b.len() == 10 || matches!(b[10], b'T' | b' '))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Profiler {
    #[must_use]
    pub fn new(names: Vec<String>) -> Self {
        let cols = names.iter().map(|_| Acc::default()).collect();
        Self { names, cols }
    }

    /// Adds one row's values (as many as the header has).
    pub fn add<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) {
        for (acc, v) in self.cols.iter_mut().zip(values) {
            acc.n += 1;
            let v = v.trim();
            if v.is_empty() {
                acc.nulls += 1;
                continue;
            }
            if is_int(v) {
                acc.ints += 1;
            } else if v.parse::<f64>().is_ok_and(f64::is_finite) {
                acc.floats += 1;
            } else if is_bool(v) {
                acc.bools += 1;
            } else if is_date(v) {
                acc.dates += 1;
            }
            let len = v.chars().count() as u64;
            acc.chars += len;
            acc.max_len = acc.max_len.max(len);
            acc.letters += v.chars().filter(|c| c.is_alphabetic()).count() as u64;
            let mut h = DefaultHasher::new();
            v.hash(&mut h);
            acc.distinct.insert(h.finish());
        }
    }

    /// The profiles, in header order.
    #[must_use]
    pub fn finish(self) -> Vec<ColumnProfile> {
        self.names
            .into_iter()
            .zip(self.cols)
            .map(|(name, a)| {
                let present = a.n - a.nulls;
                let share = |x: u64, of: u64| if of == 0 { 0.0 } else { x as f64 / of as f64 };
                let kind = if present == 0 {
                    ColumnType::Empty
                } else if a.ints == present {
                    ColumnType::Integer
                } else if a.ints + a.floats == present {
                    ColumnType::Float
                } else if a.bools == present {
                    ColumnType::Boolean
                } else if a.dates == present {
                    ColumnType::Date
                } else {
                    ColumnType::Text
                };
                let null_share = share(a.nulls, a.n);
                let avg_len = share(a.chars, present);
                let distinct_share = share(a.distinct.len() as u64, present);
                let letters_share = share(a.letters, a.chars);
                let text_score = if kind == ColumnType::Text {
                    letters_share
                        * (1.0 - null_share)
                        * (avg_len / 32.0).min(1.0)
                        * (2.0 * distinct_share).min(1.0)
                } else {
                    0.0
                };
                ColumnProfile {
                    name,
                    kind,
                    null_share: round3(null_share),
                    avg_len: round3(avg_len),
                    max_len: a.max_len,
                    distinct_share: round3(distinct_share),
                    letters_share: round3(letters_share),
                    text_score: round3(text_score),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_text_outranks_ids_and_cities() {
        let mut p = Profiler::new(vec![
            "id".into(),
            "city".into(),
            "review".into(),
            "day".into(),
        ]);
        let reviews = [
            "The food was great and the staff were very friendly",
            "Terrible service, we waited an hour for cold soup",
            "",
            "Nice view but the rooms were small and noisy at night",
        ];
        for (i, r) in reviews.iter().enumerate() {
            let id = i.to_string();
            p.add([id.as_str(), "Paris", r, "2026-12-01"]);
        }
        let prof = p.finish();
        assert_eq!(prof[0].kind, ColumnType::Integer);
        assert_eq!(prof[1].kind, ColumnType::Text);
        assert_eq!(prof[2].kind, ColumnType::Text);
        assert_eq!(prof[3].kind, ColumnType::Date);
        assert_eq!(prof[2].null_share, 0.25);
        assert!(prof[2].text_score > prof[1].text_score);
        assert_eq!(prof[0].text_score, 0.0);

        // Over 1,000 such rows, the reviews (three of four present) hold about 38,000
        // bytes to score, the cities 5,000; an unknown column holds none.
        let cols = |c: &[&str]| c.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
        let present: usize = reviews.iter().map(|r| r.len()).sum();
        let reviews_bytes = (present as f64 / 4.0 * 1000.0).round() as u64;
        // (Within a byte: the profile keeps average lengths to three decimals.)
        let review = expected_scored_bytes(&prof, &cols(&["review"]), 1000);
        assert!(
            review.abs_diff(reviews_bytes) <= 1,
            "{review} {reviews_bytes}"
        );
        let both = expected_scored_bytes(&prof, &cols(&["city", "review"]), 1000);
        assert_eq!(both, review + 5000);
        assert_eq!(expected_scored_bytes(&prof, &cols(&["stars"]), 1000), 0);
    }
}
