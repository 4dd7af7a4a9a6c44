//! The upload's parse-on-the-way: sha256, header, rows, malformed rows, chunk offsets
//! and the column profile, computed while the bytes stream to disk, in constant memory.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::profile::{ColumnProfile, Profiler};
use crate::records::{Splitter, Step};

/// Rows the profile samples (the first ones).
pub const SAMPLE_ROWS: u64 = 10_000;
/// Most columns a dataset may have.
pub const MAX_COLUMNS: usize = 1024;

/// Why an upload is refused. Each one is the uploader's to fix (a 4xx).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScanError {
    #[error("the file is empty")]
    Empty,
    #[error("the file has no header row")]
    NoHeader,
    #[error("the header is not valid UTF-8 (column {0})")]
    HeaderNotUtf8(usize),
    #[error("column {0} of the header has an empty name")]
    EmptyColumn(usize),
    #[error("the header names column {0:?} twice")]
    DuplicateColumn(String),
    #[error("the header has {0} columns; at most {MAX_COLUMNS} are allowed")]
    TooManyColumns(usize),
    #[error("the file is larger than the limit of {0} bytes")]
    TooLarge(u64),
}

/// What the scan learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scan {
    pub bytes: u64,
    pub sha256: String,
    pub header: Vec<String>,
    /// Data rows, malformed ones included.
    pub rows: u64,
    pub malformed_rows: u64,
    /// Record-aligned offsets: the first data row, then one every chunk.
    pub chunk_offsets: Vec<u64>,
    pub profile: Vec<ColumnProfile>,
}

/// Feed it the bytes in any pieces, then [`Scanner::finish`].
pub struct Scanner {
    split: Splitter,
    sha: Sha256,
    bytes: u64,
    max_bytes: u64,
    chunk_bytes: u64,
    next_mark: u64,
    header: Option<Vec<String>>,
    rows: u64,
    malformed: u64,
    offsets: Vec<u64>,
    profiler: Option<Profiler>,
}

impl Scanner {
    /// A scanner that refuses more than `max_bytes` and marks an offset every
    /// `chunk_bytes`.
    #[must_use]
    pub fn new(max_bytes: u64, chunk_bytes: u64) -> Self {
        Self {
            split: Splitter::new(0),
            sha: Sha256::new(),
            bytes: 0,
            max_bytes,
            chunk_bytes: chunk_bytes.max(1),
            next_mark: 0,
            header: None,
            rows: 0,
            malformed: 0,
            offsets: Vec::new(),
            profiler: None,
        }
    }

    /// Bytes fed so far.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Scans the next piece of the file.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.bytes += chunk.len() as u64;
        if self.bytes > self.max_bytes {
            return Err(ScanError::TooLarge(self.max_bytes));
        }
        self.sha.update(chunk);
        self.parse(chunk)
    }

    /// Parses `rest`; an empty `rest` ends the stream.
    fn parse(&mut self, mut rest: &[u8]) -> Result<(), ScanError> {
        let end = rest.is_empty();
        loop {
            if rest.is_empty() && !end {
                return Ok(());
            }
            let (n, step) = self.split.next(rest);
            rest = &rest[n..];
            let rec = match step {
                Step::NeedInput | Step::End => return Ok(()),
                Step::Record(r) => r,
            };
            let pos = rec.end_offset();
            match &self.header {
                None => {
                    let header = header_of(rec)?;
                    self.profiler = Some(Profiler::new(header.clone()));
                    self.header = Some(header);
                    self.offsets.push(pos);
                    self.next_mark = pos + self.chunk_bytes;
                }
                Some(header) => {
                    self.rows += 1;
                    let bad = rec.len() != header.len() || rec.invalid_utf8_field().is_some();
                    if bad {
                        self.malformed += 1;
                    } else if self.rows <= SAMPLE_ROWS
                        && let Some(p) = &mut self.profiler
                    {
                        p.add((0..rec.len()).map(|i| {
                            rec.field(i)
                                .and_then(|f| std::str::from_utf8(f).ok())
                                .unwrap_or("")
                        }));
                    }
                    if pos >= self.next_mark {
                        self.offsets.push(pos);
                        self.next_mark = pos + self.chunk_bytes;
                    }
                }
            }
        }
    }

    /// Ends the stream and returns what was learned.
    pub fn finish(mut self) -> Result<Scan, ScanError> {
        if self.bytes == 0 {
            return Err(ScanError::Empty);
        }
        self.parse(&[])?;
        let header = self.header.ok_or(ScanError::NoHeader)?;
        // The last mark may be the end of the file: no chunk starts there.
        if self.offsets.len() > 1 && self.offsets.last() == Some(&self.bytes) {
            self.offsets.pop();
        }
        Ok(Scan {
            bytes: self.bytes,
            sha256: hex::encode(self.sha.finalize()),
            header,
            rows: self.rows,
            malformed_rows: self.malformed,
            chunk_offsets: self.offsets,
            profile: self.profiler.map(Profiler::finish).unwrap_or_default(),
        })
    }
}

fn header_of(rec: crate::records::Record<'_>) -> Result<Vec<String>, ScanError> {
    if rec.len() > MAX_COLUMNS {
        return Err(ScanError::TooManyColumns(rec.len()));
    }
    let mut names = Vec::with_capacity(rec.len());
    let mut seen = HashSet::new();
    for i in 0..rec.len() {
        let raw = rec.field(i).unwrap_or_default();
        let raw = if i == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let name = std::str::from_utf8(raw)
            .map_err(|_| ScanError::HeaderNotUtf8(i + 1))?
            .trim()
            .to_owned();
        if name.is_empty() {
            return Err(ScanError::EmptyColumn(i + 1));
        }
        if !seen.insert(name.clone()) {
            return Err(ScanError::DuplicateColumn(name));
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(data: &[u8], piece: usize) -> Result<Scan, ScanError> {
        let mut s = Scanner::new(1 << 20, 16);
        for c in data.chunks(piece.max(1)) {
            s.feed(c)?;
        }
        s.finish()
    }

    #[test]
    fn counts_rows_malformed_rows_and_marks_chunks() {
        let data = b"\xEF\xBB\xBFid,text\n1,\"good, \nvery\"\n2,bad\n3\n4,\xff\xfe\n5,fine\n";
        let s = scan(data, 5).unwrap();
        assert_eq!(s, scan(data, data.len()).unwrap());
        assert_eq!(s.header, vec!["id", "text"]);
        assert_eq!(s.rows, 5);
        assert_eq!(s.malformed_rows, 2);
        assert_eq!(s.chunk_offsets[0], 11);
        assert!(s.chunk_offsets.len() >= 2);
        assert_eq!(s.bytes, data.len() as u64);
        assert_eq!(s.sha256.len(), 64);
    }

    #[test]
    fn refuses_bad_files() {
        assert_eq!(scan(b"", 4), Err(ScanError::Empty));
        assert_eq!(scan(b"\n\n", 4), Err(ScanError::NoHeader));
        assert_eq!(scan(b"a,,b\n1,2,3\n", 4), Err(ScanError::EmptyColumn(2)));
        assert_eq!(
            scan(b"a,b,a\n", 4),
            Err(ScanError::DuplicateColumn("a".into()))
        );
        assert_eq!(scan(b"a,\xff\n", 4), Err(ScanError::HeaderNotUtf8(2)));
        let mut s = Scanner::new(10, 4);
        assert_eq!(s.feed(b"a,b\n1,2\n3,4\n"), Err(ScanError::TooLarge(10)));
    }
}
