//! The bytes of an export file: rows encoded as CSV or JSON lines, optionally gzipped,
//! counted and hashed on their way to the file.
//!
//! Everything here is blocking I/O: the export runs it on the blocking pool, one page
//! of rows at a time, and moves the [`Encoder`] back and forth between pages.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use drover_jobs::kinds::ExportFormat;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::rows::Row;

/// What the file ended up as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// The file, with a running count and hash of what reached it.
struct Sink {
    file: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sink {
    /// Flushes and syncs the file, so a rename after this publishes complete bytes.
    fn finish(self) -> io::Result<Written> {
        let file = self
            .file
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok(Written {
            bytes: self.bytes,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }
}

/// The sink, compressed or not.
enum Body {
    Plain(Sink),
    Gzip(GzEncoder<Sink>),
}

impl Write for Body {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Body::Plain(s) => s.write(buf),
            Body::Gzip(g) => g.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Body::Plain(s) => s.flush(),
            Body::Gzip(g) => g.flush(),
        }
    }
}

impl Body {
    fn finish(self) -> io::Result<Written> {
        match self {
            Body::Plain(s) => s.finish(),
            Body::Gzip(g) => g.finish()?.finish(),
        }
    }
}

/// Encodes rows into the file.
pub struct Encoder {
    format: Format,
    header_written: bool,
}

enum Format {
    Csv(Box<csv::Writer<Body>>),
    Jsonl(Box<BufWriter<Body>>),
}

/// The write buffer in front of the file (and of the compressor).
const BUFFER: usize = 256 * 1024;

impl Encoder {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path, format: ExportFormat, gzip: bool) -> io::Result<Self> {
        let sink = Sink {
            file: BufWriter::with_capacity(BUFFER, File::create(path)?),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let body = if gzip {
            Body::Gzip(GzEncoder::new(sink, Compression::fast()))
        } else {
            Body::Plain(sink)
        };
        let format = match format {
            ExportFormat::Csv => Format::Csv(Box::new(
                csv::WriterBuilder::new()
                    .buffer_capacity(BUFFER)
                    .from_writer(body),
            )),
            ExportFormat::Jsonl => Format::Jsonl(Box::new(BufWriter::with_capacity(BUFFER, body))),
        };
        Ok(Self {
            format,
            header_written: false,
        })
    }

    /// Writes the CSV header, once, even for an export of no rows.
    fn header<R: Row>(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            if let Format::Csv(w) = &mut self.format {
                w.write_record(R::HEADER)?;
            }
        }
        Ok(())
    }

    /// Writes rows.
    pub fn write_rows<R: Row>(&mut self, rows: &[R]) -> io::Result<()> {
        self.header::<R>()?;
        match &mut self.format {
            Format::Csv(w) => {
                for r in rows {
                    w.write_record(r.csv_record())?;
                }
            }
            Format::Jsonl(w) => {
                for r in rows {
                    serde_json::to_writer(&mut **w, &r.json())?;
                    w.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    }

    /// Ends the file: flushes every layer, finishes the compression, syncs.
    pub fn finish<R: Row>(mut self) -> io::Result<Written> {
        self.header::<R>()?;
        let body = match self.format {
            Format::Csv(w) => w
                .into_inner()
                .map_err(|e| io::Error::other(e.to_string()))?,
            Format::Jsonl(w) => w.into_inner().map_err(io::IntoInnerError::into_error)?,
        };
        body.finish()
    }
}
