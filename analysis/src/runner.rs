//! The analysis loop over a dataset file: blocking, queue-free, resumable.
//!
//! [`Runner::step`] reads records from the dataset from the state's offset, scores
//! the selected cells, appends one line per row to the results file, and stops after
//! a number of rows or a time budget, on a record boundary, with the results flushed.
//! Its [`RunState`] is then a valid checkpoint: opening a runner on the same dataset
//! with that state and a results file cut to `results_len` produces, from there on,
//! exactly the bytes an uninterrupted run would.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::estimate::{CellTimes, Scored};
use crate::records::{Splitter, Step};
use crate::summary::{ColumnSummary, MAX_EXAMPLES, Malformed, UNITS};
use crate::vader::{Label, Scorer};

/// Where a run stands: what a checkpoint saves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// Dataset offset of the next record to read.
    pub offset: u64,
    /// Data rows read, malformed ones included.
    pub rows: u64,
    /// Bytes of the results file written so far.
    pub results_len: u64,
    pub summaries: Vec<ColumnSummary>,
    pub malformed: u64,
    pub examples: Vec<Malformed>,
    /// Whether the dataset has been read to its end.
    pub done: bool,
}

impl RunState {
    /// The state of a run that has not started: `data_start` is the offset of the
    /// first data row (the dataset's first chunk offset).
    #[must_use]
    pub fn fresh(data_start: u64, columns: &[String]) -> Self {
        Self {
            offset: data_start,
            rows: 0,
            results_len: 0,
            summaries: columns.iter().map(|c| ColumnSummary::new(c)).collect(),
            malformed: 0,
            examples: Vec::new(),
            done: false,
        }
    }
}

/// The columns to score: their index in the header, and the header's width.
#[derive(Debug, Clone)]
pub struct Selection {
    pub header_len: usize,
    pub indexes: Vec<usize>,
    pub names: Vec<String>,
}

impl Selection {
    /// Looks `columns` up in `header`; `Err` names the first unknown one.
    pub fn new(header: &[String], columns: &[String]) -> Result<Self, String> {
        let mut indexes = Vec::with_capacity(columns.len());
        for c in columns {
            let i = header
                .iter()
                .position(|h| h == c)
                .ok_or_else(|| c.clone())?;
            indexes.push(i);
        }
        Ok(Self {
            header_len: header.len(),
            indexes,
            names: columns.to_vec(),
        })
    }
}

const READ_BUF: usize = 256 * 1024;

/// The runner times the cells of one row in this many, one by one: enough for a
/// steady fit of their cost ([`CellTimes`]), few enough that the clock reads cost
/// under a thousandth of the loop.
pub const TIME_EVERY: u64 = 32;

/// What reading the clock twice costs, taken off each timed cell: the least of a few
/// tries, measured once per process.
fn clock_ns() -> f64 {
    static NS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *NS.get_or_init(|| {
        (0..64)
            .map(|_| {
                let t = Instant::now();
                t.elapsed().as_nanos() as f64
            })
            .fold(f64::INFINITY, f64::min)
    })
}

/// A run over one dataset file, writing one results file.
pub struct Runner {
    sel: Selection,
    state: RunState,
    input: File,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    eof: bool,
    split: Splitter,
    out: BufWriter<File>,
    line: Vec<u8>,
    scorer: Scorer,
    /// What this runner has scored (this attempt only), and its timed cells.
    cells: u64,
    cell_bytes: u64,
    times: CellTimes,
    clock_ns: f64,
}

/// `row,<col>_compound,<col>_label,…`, with names quoted as CSV needs.
fn header_line(names: &[String]) -> Vec<u8> {
    let mut line = b"row".to_vec();
    for n in names {
        for suffix in ["_compound", "_label"] {
            let name = format!("{n}{suffix}");
            line.push(b',');
            if name.contains([',', '"', '\n', '\r']) {
                line.push(b'"');
                line.extend(name.replace('"', "\"\"").bytes());
                line.push(b'"');
            } else {
                line.extend(name.bytes());
            }
        }
    }
    line.push(b'\n');
    line
}

/// Writes a compound in 1e-4 units as a decimal with 4 places.
fn push_units(line: &mut Vec<u8>, units: i64) {
    if units < 0 {
        line.push(b'-');
    }
    let u = units.unsigned_abs();
    push_u64(line, u / 10_000);
    let frac = u % 10_000;
    line.extend_from_slice(&[
        b'.',
        b'0' + (frac / 1000) as u8,
        b'0' + (frac / 100 % 10) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// Writes `n` in decimal (`write!` costs a formatter call per row and per cell).
fn push_u64(line: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line.extend_from_slice(&digits[at..]);
}

impl Runner {
    /// Opens `dataset` at the state's offset and `results` (already cut to
    /// `state.results_len`, its cursor at the end) for appending.
    pub fn open(
        dataset: &Path,
        results: File,
        sel: Selection,
        state: RunState,
    ) -> io::Result<Self> {
        let mut input = File::open(dataset)?;
        input.seek(SeekFrom::Start(state.offset))?;
        let mut runner = Self {
            split: Splitter::new(state.offset),
            sel,
            state,
            input,
            buf: vec![0; READ_BUF],
            lo: 0,
            hi: 0,
            eof: false,
            out: BufWriter::with_capacity(256 * 1024, results),
            line: Vec::with_capacity(256),
            scorer: Scorer::new(),
            cells: 0,
            cell_bytes: 0,
            times: CellTimes::default(),
            clock_ns: clock_ns(),
        };
        if runner.state.results_len == 0 {
            let h = header_line(&runner.sel.names);
            runner.out.write_all(&h)?;
            runner.state.results_len += h.len() as u64;
        }
        Ok(runner)
    }

    #[must_use]
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// Cells this runner has scored, and their bytes.
    #[must_use]
    pub fn counts(&self) -> (u64, u64) {
        (self.cells, self.cell_bytes)
    }

    /// What this runner has scored, and the cost per cell and per byte fitted on its
    /// timed cells (`None` before it has timed two).
    #[must_use]
    pub fn scored(&self) -> Option<Scored> {
        Some(Scored {
            cells: self.cells,
            bytes: self.cell_bytes,
            cost: self.times.fit()?,
        })
    }

    /// Reads and scores up to `max_rows` rows or for about `budget`, then flushes the
    /// results. Returns whether the dataset is finished.
    pub fn step(&mut self, max_rows: u64, budget: Duration) -> io::Result<bool> {
        let started = Instant::now();
        let mut n = 0u64;
        while !self.state.done && n < max_rows {
            if self.lo == self.hi && !self.eof {
                self.hi = self.input.read(&mut self.buf)?;
                self.lo = 0;
                self.eof = self.hi == 0;
            }
            let input = &self.buf[self.lo..self.hi];
            let (used, step) = self.split.next(input);
            self.lo += used;
            let rec = match step {
                Step::NeedInput => continue,
                Step::End => {
                    self.state.done = true;
                    break;
                }
                Step::Record(r) => r,
            };
            self.state.rows += 1;
            let row = self.state.rows;
            let reason = if rec.len() != self.sel.header_len {
                Some(format!(
                    "expected {} fields, found {}",
                    self.sel.header_len,
                    rec.len()
                ))
            } else {
                rec.invalid_utf8_field()
                    .map(|i| format!("field {} is not valid UTF-8", i + 1))
            };
            if let Some(reason) = reason {
                self.state.malformed += 1;
                if self.state.examples.len() < MAX_EXAMPLES {
                    self.state.examples.push(Malformed { row, reason });
                }
            } else {
                self.line.clear();
                push_u64(&mut self.line, row);
                let timed = row.is_multiple_of(TIME_EVERY);
                for (k, &i) in self.sel.indexes.iter().enumerate() {
                    let started = timed.then(Instant::now);
                    // Checked above: every field is UTF-8.
                    let cell = rec.field(i).unwrap_or_default();
                    self.cells += 1;
                    self.cell_bytes += cell.len() as u64;
                    let c = self.scorer.compound_bytes(cell).unwrap_or(0.0);
                    let units = (c * UNITS).round() as i64;
                    self.state.summaries[k].add(units);
                    self.line.push(b',');
                    push_units(&mut self.line, units);
                    self.line.push(b',');
                    self.line
                        .extend_from_slice(Label::of(c).as_str().as_bytes());
                    if let Some(t) = started {
                        let ns = t.elapsed().as_nanos() as f64 - self.clock_ns;
                        self.times.add(cell.len() as u64, ns.max(0.0));
                    }
                }
                self.line.push(b'\n');
                self.out.write_all(&self.line)?;
                self.state.results_len += self.line.len() as u64;
            }
            self.state.offset = rec.end_offset();
            n += 1;
            if n.is_multiple_of(1024) && started.elapsed() >= budget {
                break;
            }
        }
        self.out.flush()?;
        Ok(self.state.done)
    }

    /// Flushes and syncs the results file to disk (before a checkpoint names it).
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// Creates the results file of a new attempt at `path`: a copy of the first
/// `len` bytes of `previous` (the checkpointed attempt's file), or empty.
/// The previous attempt's file is only read, never written: a worker that lost its
/// lease may still hold it open.
pub fn start_results(path: &Path, previous: Option<(&Path, u64)>) -> io::Result<File> {
    let mut out = File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    if let Some((prev, len)) = previous {
        let mut src = File::open(prev)?.take(len);
        let copied = io::copy(&mut src, &mut out)?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} holds {copied} bytes, the checkpoint {len}",
                    prev.display()
                ),
            ));
        }
    }
    out.seek(SeekFrom::End(0))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_format_would() {
        for n in [0u64, 7, 10, 99_999, u64::MAX] {
            let mut line = Vec::new();
            push_u64(&mut line, n);
            assert_eq!(line, n.to_string().into_bytes());
        }
        for units in [0i64, 1, -1, 9_999, -10_000, 12_345, -4_404] {
            let mut line = Vec::new();
            push_units(&mut line, units);
            let want = format!(
                "{}{}.{:04}",
                if units < 0 { "-" } else { "" },
                units.abs() / 10_000,
                units.abs() % 10_000
            );
            assert_eq!(String::from_utf8(line).unwrap(), want, "{units}");
        }
    }

    fn run_all(dir: &Path, data: &[u8], stops: &[u64]) -> (Vec<u8>, RunState) {
        let ds = dir.join("d.csv");
        std::fs::write(&ds, data).unwrap();
        let header: Vec<String> = vec!["id".into(), "text".into()];
        let cols = vec!["text".to_string()];
        let sel = Selection::new(&header, &cols).unwrap();
        let start = data.iter().position(|&b| b == b'\n').unwrap() as u64 + 1;
        let mut state = RunState::fresh(start, &cols);
        let mut prev: Option<std::path::PathBuf> = None;
        // One attempt per stop, each resuming from the last one's state.
        for (a, &rows) in stops.iter().chain([&u64::MAX]).enumerate() {
            let path = dir.join(format!("r.{a}.part"));
            let file =
                start_results(&path, prev.as_deref().map(|p| (p, state.results_len))).unwrap();
            let mut r = Runner::open(&ds, file, sel.clone(), state.clone()).unwrap();
            r.step(rows, Duration::from_secs(60)).unwrap();
            state = r.state().clone();
            prev = Some(path);
            if state.done {
                break;
            }
        }
        (std::fs::read(prev.unwrap()).unwrap(), state)
    }

    #[test]
    fn a_runner_counts_what_it_scored_and_times_one_row_in_time_every() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dir.path().join("d.csv");
        let texts = [
            "I love it!",
            "a much longer text that is not bad at all really",
        ];
        let mut data = b"id,text\n".to_vec();
        for i in 0..640 {
            data.extend(format!("{i},{}\n", texts[i % 2]).bytes());
        }
        std::fs::write(&ds, &data).unwrap();
        let header: Vec<String> = vec!["id".into(), "text".into()];
        let cols = vec!["text".to_string()];
        let sel = Selection::new(&header, &cols).unwrap();
        let file = start_results(&dir.path().join("r"), None).unwrap();
        let mut r = Runner::open(&ds, file, sel, RunState::fresh(8, &cols)).unwrap();
        assert!(r.scored().is_none(), "nothing timed yet");
        while !r.step(u64::MAX, Duration::from_secs(60)).unwrap() {}
        let s = r.scored().unwrap();
        assert_eq!(s.cells, 640);
        assert_eq!(s.bytes, 320 * (texts[0].len() + texts[1].len()) as u64);
        assert_eq!(r.times.count(), 640 / TIME_EVERY);
        assert!(s.cost.secs(s.cells, s.bytes) > 0.0, "{s:?}");
    }

    #[test]
    fn resumed_runs_write_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = b"id,text\n".to_vec();
        for i in 0..500 {
            let t = ["I love it!", "\"bad, very bad\"", "meh", "not good at all"][i % 4];
            data.extend(format!("{i},{t}\n").bytes());
            if i == 77 {
                data.extend(b"oops\n");
            }
        }
        let (whole, s1) = run_all(dir.path(), &data, &[]);
        let (resumed, s2) = run_all(dir.path(), &data, &[1, 99, 250]);
        assert_eq!(whole, resumed);
        assert_eq!(s1, s2);
        assert_eq!(s1.rows, 501);
        assert_eq!(s1.malformed, 1);
        assert_eq!(s1.examples[0].row, 79);
        let text = String::from_utf8(whole).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("row,text_compound,text_label"));
        assert_eq!(lines.next(), Some("1,0.6696,positive"));
        assert_eq!(lines.next(), Some("2,-0.8070,negative"));
        assert_eq!(lines.next(), Some("3,-0.0772,negative"));
        assert_eq!(s1.summaries[0].rows, 500);
        assert_eq!(s1.summaries[0].positive, 125);
        assert_eq!(s1.summaries[0].negative, 375);
    }
}
