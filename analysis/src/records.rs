//! CSV records from a byte stream fed in pieces, with their byte offsets.
//!
//! Both the upload (bytes arrive from the network) and the analysis (bytes come from
//! a file, from a checkpointed offset) split records with the same parser, so an
//! offset one of them records is a place the other can start from: the position
//! just after a record is always the start of the next one.
//!
//! The parser is `csv-core` (RFC 4180: quoted fields may hold commas and newlines),
//! with a fast path in front of it for the common record: whole in the input, its
//! quoted fields without escaped quotes, no `\r`. That record is cut with `memchr`
//! and borrowed from the input instead of copied (the byte-at-a-time parser was a
//! tenth of the analysis's time). Any other record goes to `csv-core`, so the two
//! give the same records and offsets for every input: a differential test feeds
//! both random CSV in random pieces.

use csv_core::{ReadRecordResult, Reader};
use memchr::{memchr, memchr3};

/// One record, borrowed from the splitter (or its input) until its next call.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Bytes that hold every field.
    data: &'a [u8],
    /// Each field's place in `data`.
    spans: &'a [(usize, usize)],
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
        self.spans.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Field `i` (unquoted), or `None` past the last one.
    #[must_use]
    pub fn field(&self, i: usize) -> Option<&'a [u8]> {
        let &(start, end) = self.spans.get(i)?;
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
    spans: Vec<(usize, usize)>,
    outlen: usize,
    endlen: usize,
    reset: bool,
    /// Whether `core` is at the start of a record with nothing pending, so that a
    /// record may be cut by the fast path. False at first (`csv-core` strips a
    /// byte-order mark from the very first bytes it reads), after a record it
    /// ended at a `\r` (it may take a `\n` next as the rest of a `\r\n`), and
    /// when it ran out of input (it may be inside a record).
    fast_ok: bool,
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
            spans: Vec::with_capacity(64),
            outlen: 0,
            endlen: 0,
            reset: false,
            fast_ok: false,
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
    pub fn next<'s>(&'s mut self, input: &'s [u8]) -> (usize, Step<'s>) {
        if self.reset {
            self.outlen = 0;
            self.endlen = 0;
            self.reset = false;
        }
        if self.fast_ok
            && self.outlen == 0
            && self.endlen == 0
            && let Some(used) = fast_record(input, &mut self.spans)
        {
            self.pos += used as u64;
            let rec = Record {
                data: &input[..used],
                spans: &self.spans,
                end: self.pos,
            };
            return (used, Step::Record(rec));
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
                    // It may be inside a record now (a quote read, nothing output).
                    self.fast_ok = false;
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
                    self.fast_ok = used > 0 && input[used - 1] == b'\n';
                    self.spans.clear();
                    let mut start = 0;
                    for &end in &self.ends[..self.endlen] {
                        self.spans.push((start, end));
                        start = end;
                    }
                    let rec = Record {
                        data: &self.out[..self.outlen],
                        spans: &self.spans,
                        end: self.pos,
                    };
                    return (used, Step::Record(rec));
                }
                ReadRecordResult::End => return (used, Step::End),
            }
        }
    }
}

/// Cuts the record at the start of `input` if it is a simple one: ends in `\n`
/// within `input`, no `\r` in it, and each field either unquoted without a `"` or
/// quoted without an escaped `""` and followed by `,` or the `\n`. Fills `spans`
/// and returns the record's length, or `None` (the caller's parser decides then).
fn fast_record(input: &[u8], spans: &mut Vec<(usize, usize)>) -> Option<usize> {
    // An empty line is skipped, not a record: left to csv-core.
    if matches!(input.first(), None | Some(b'\n' | b'\r')) {
        return None;
    }
    spans.clear();
    let mut i = 0;
    let end = loop {
        if input.get(i) == Some(&b'"') {
            let close = i + 1 + memchr(b'"', input.get(i + 1..)?)?;
            spans.push((i + 1, close));
            i = close + 1;
            match input.get(i)? {
                b',' => i += 1,
                b'\n' => break i + 1,
                _ => return None,
            }
        } else {
            let rest = input.get(i..)?;
            let at = i + memchr3(b',', b'\n', b'"', rest)?;
            spans.push((i, at));
            match input[at] {
                b',' => i = at + 1,
                b'\n' => break at + 1,
                _ => return None,
            }
        }
    };
    if memchr(b'\r', &input[..end]).is_some() {
        return None;
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a parser under test did with the bytes it was handed.
    enum Fed {
        /// Call it again with what is left.
        Again,
        /// It wants the next piece.
        MoreInput,
        /// It saw the end of the input.
        Done,
    }

    /// Feeds `data` to `parse` `piece` bytes at a time, then an empty piece for the end
    /// of the input. `parse(rest, at_end)` returns how many bytes it took and what next.
    fn feed(data: &[u8], piece: usize, mut parse: impl FnMut(&[u8], bool) -> (usize, Fed)) {
        let mut chunks: Vec<&[u8]> = data.chunks(piece).collect();
        chunks.push(&[]);
        for chunk in chunks {
            let mut rest = chunk;
            while !rest.is_empty() || chunk.is_empty() {
                let (n, fed) = parse(rest, chunk.is_empty());
                rest = &rest[n..];
                match fed {
                    Fed::Again => {}
                    Fed::MoreInput => break,
                    Fed::Done => return,
                }
            }
        }
    }

    /// Splits `data` fed `piece` bytes at a time; returns (fields, end offset) per record.
    fn split(data: &[u8], piece: usize) -> Vec<(Vec<String>, u64)> {
        let mut s = Splitter::new(0);
        let mut got = Vec::new();
        feed(data, piece, |rest, _| {
            let (n, step) = s.next(rest);
            let fed = match step {
                Step::NeedInput => Fed::MoreInput,
                Step::End => Fed::Done,
                Step::Record(r) => {
                    let fields = (0..r.len())
                        .map(|i| String::from_utf8_lossy(r.field(i).unwrap()).into_owned())
                        .collect();
                    got.push((fields, r.end_offset()));
                    Fed::Again
                }
            };
            (n, fed)
        });
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

    /// A small deterministic generator for the differential test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Records and offsets from `csv-core` alone, fed the same way.
    fn split_core(data: &[u8], piece: usize) -> Vec<(Vec<String>, u64)> {
        let mut core = Reader::new();
        let (mut out, mut ends) = (vec![0u8; 1 << 16], vec![0usize; 1024]);
        let (mut outlen, mut endlen, mut pos) = (0, 0, 0u64);
        let mut got = Vec::new();
        feed(data, piece, |rest, at_end| {
            let (res, nin, nout, nend) =
                core.read_record(rest, &mut out[outlen..], &mut ends[endlen..]);
            pos += nin as u64;
            outlen += nout;
            endlen += nend;
            let fed = match res {
                ReadRecordResult::InputEmpty if at_end => Fed::Again,
                ReadRecordResult::InputEmpty => Fed::MoreInput,
                ReadRecordResult::Record => {
                    let mut start = 0;
                    let fields = ends[..endlen]
                        .iter()
                        .map(|&e| {
                            let f = String::from_utf8_lossy(&out[start..e]).into_owned();
                            start = e;
                            f
                        })
                        .collect();
                    got.push((fields, pos));
                    outlen = 0;
                    endlen = 0;
                    Fed::Again
                }
                ReadRecordResult::End => Fed::Done,
                other => panic!("{other:?}"),
            };
            (nin, fed)
        });
        got
    }

    #[test]
    fn the_fast_path_splits_as_csv_core_does() {
        // Bytes that matter to CSV, weighted toward the simple records the fast path
        // takes, so that both paths and their hand-overs are exercised.
        const ALPHABET: &[u8] = b"aaaabbbb,,,,\n\n\"\"\r \xef\xbb\xbf";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000 {
            let len = (rng.next() % 120) as usize;
            let mut data: Vec<u8> = (0..len)
                .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize])
                .collect();
            if case % 3 == 0 {
                // Well-formed quoted fields, some with commas and newlines inside.
                data.extend_from_slice(b"1,\"x,\ny\",z\n2,\"q\"\"q\",\n");
            }
            let piece = 1 + (rng.next() % 40) as usize;
            assert_eq!(
                split(&data, piece),
                split_core(&data, piece),
                "case {case}: {:?} in pieces of {piece}",
                String::from_utf8_lossy(&data)
            );
        }
    }
}
