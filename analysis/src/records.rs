//! CSV records from a byte stream fed in pieces, with their byte offsets.
//!
//! Both the upload (bytes arrive from the network) and the analysis (bytes come from
//! a file, from a checkpointed offset) split records with the same parser
//! (`csv-core`, RFC 4180: quoted fields may hold commas and newlines), so an offset
//! one of them records is a place the other can start from: the position just after
//! a record is always the start of the next one.

use csv_core::{ReadRecordResult, Reader};

/// One record, borrowed from the splitter until its next call.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    data: &'a [u8],
    ends: &'a [usize],
    end: u64,
}

impl<'a> Record<'a> {
    /// The stream offset just after this record: where the next one starts.
    #[must_use]
    pub fn end_offset(&self) -> u64 {
        self.end
    }

    /// How many fields it has.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i` (unquoted), or `None` past the last one.
    #[must_use]
    pub fn field(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.data.get(start..end)
    }

    /// The index of the first field that is not valid UTF-8.
    #[must_use]
    pub fn invalid_utf8_field(&self) -> Option<usize> {
        if self.data.is_ascii() {
            return None;
        }
        (0..self.len()).find(|&i| {
            self.field(i)
                .is_some_and(|f| std::str::from_utf8(f).is_err())
        })
    }
}

/// What [`Splitter::next`] found.
#[derive(Debug)]
pub enum Step<'a> {
    /// The input is used up: feed more (or an empty slice at the end of the stream).
    NeedInput,
    /// A whole record; [`Splitter::position`] is now just after it.
    Record(Record<'a>),
    /// The stream ended (only after an empty input).
    End,
}

/// An incremental record splitter.
pub struct Splitter {
    core: Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    outlen: usize,
    endlen: usize,
    reset: bool,
    pos: u64,
}

impl Splitter {
    /// A splitter whose first input byte is at offset `pos` of the stream.
    #[must_use]
    pub fn new(pos: u64) -> Self {
        Self {
            core: Reader::new(),
            out: vec![0; 4096],
            ends: vec![0; 64],
            outlen: 0,
            endlen: 0,
            reset: false,
            pos,
        }
    }

    /// The stream offset of the next byte to parse.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Parses `input` until a record completes or the input runs out. Returns how
    /// many bytes of `input` it consumed; call again with the rest. An empty `input`
    /// means the stream has ended (a last record without a newline completes then):
    /// never pass one before that.
    pub fn next<'s>(&'s mut self, input: &[u8]) -> (usize, Step<'s>) {
        if self.reset {
            self.outlen = 0;
            self.endlen = 0;
            self.reset = false;
        }
        let mut used = 0;
        loop {
            let (res, nin, nout, nend) = self.core.read_record(
                &input[used..],
                &mut self.out[self.outlen..],
                &mut self.ends[self.endlen..],
            );
            used += nin;
            self.pos += nin as u64;
            self.outlen += nout;
            self.endlen += nend;
            match res {
                ReadRecordResult::InputEmpty => {
                    if input.is_empty() {
                        // csv-core wants one more empty read to report the end.
                        continue;
                    }
                    return (used, Step::NeedInput);
                }
                ReadRecordResult::OutputFull => {
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => {
                    self.reset = true;
                    let rec = Record {
                        data: &self.out[..self.outlen],
                        ends: &self.ends[..self.endlen],
                        end: self.pos,
                    };
                    return (used, Step::Record(rec));
                }
                ReadRecordResult::End => return (used, Step::End),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `data` fed `piece` bytes at a time; returns (fields, end offset) per record.
    fn split(data: &[u8], piece: usize) -> Vec<(Vec<String>, u64)> {
        let mut s = Splitter::new(0);
        let mut got = Vec::new();
        let mut chunks: Vec<&[u8]> = data.chunks(piece).collect();
        chunks.push(&[]);
        for chunk in chunks {
            let mut rest = chunk;
            loop {
                if rest.is_empty() && !chunk.is_empty() {
                    break;
                }
                let (n, step) = s.next(rest);
                rest = &rest[n..];
                match step {
                    Step::NeedInput => break,
                    Step::End => return got,
                    Step::Record(r) => {
                        let fields = (0..r.len())
                            .map(|i| String::from_utf8_lossy(r.field(i).unwrap()).into_owned())
                            .collect();
                        got.push((fields, r.end_offset()));
                    }
                }
            }
        }
        got
    }

    #[test]
    fn records_and_offsets_do_not_depend_on_how_bytes_arrive() {
        let data = b"a,b\n1,\"x,\ny\"\r\n2,z\n\n3,last";
        let whole = split(data, data.len());
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[1].0, vec!["1", "x,\ny"]);
        assert_eq!(whole[3].0, vec!["3", "last"]);
        for piece in 1..data.len() {
            assert_eq!(split(data, piece), whole, "pieces of {piece}");
        }
        // Reading from a recorded offset gives the same records from there on.
        let (_, off) = whole[1];
        let from = split(&data[off as usize..], 3);
        assert_eq!(from[0].0, whole[2].0);
        assert_eq!(from.len(), 2);
    }
}
