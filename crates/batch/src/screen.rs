//! Record screening for text inputs: a reader between the file and the Arrow decoder that
//! passes every well-formed record through byte for byte and puts an empty record in place of
//! a malformed one, logging its index and why. The decoder then fails no batch for it, and the
//! scorer fails that row alone ([`crate::score::Scorer::score_marked`]).
//!
//! Malformed means what would otherwise fail the whole file in the decoder: a CSV record with
//! another number of fields than the header, a JSON line that is not one JSON object.
//! Values are not looked at here (the scorer parses the feature columns itself).
//!
//! Written by hand: the Arrow decoders stop at the first such record, and the `csv` crate's
//! flexible mode would parse every field a second time into owned records; `csv-core` (the
//! parser arrow-csv itself runs, with the same settings) only finds the record boundaries.

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Bytes of screened records gathered before the decoder gets them.
const CHUNK: usize = 64 * 1024;

/// A record replaced by an empty one: its index among the file's data records (the header not
/// counted) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The record's index among the data records, from 0.
    pub record: u64,
    /// What is wrong with it, with its line number.
    pub reason: String,
}

/// Where a [`Screen`] logs the records it replaces, in order; the source takes them out as
/// it hands out the batches they fall in.
pub type Rejections = Arc<Mutex<VecDeque<Rejected>>>;

/// The record syntax screened.
#[derive(Debug)]
enum Syntax {
    /// CSV with a header record (the expected field count).
    Csv {
        parser: Box<csv_core::Reader>,
        /// The header's field count, once read.
        header_fields: Option<usize>,
        /// Fields of the current record so far.
        fields: usize,
        /// csv-core's output (the fields' bytes, not needed here) and field ends.
        scratch: Vec<u8>,
        ends: Vec<usize>,
    },
    /// One JSON object per line (blank lines are not records).
    JsonLines,
}

/// A reader that screens the records of `inner` (see the module's doc).
#[derive(Debug)]
pub struct Screen<R> {
    inner: R,
    syntax: Syntax,
    /// The current record's bytes as read.
    record: Vec<u8>,
    /// CSV: input read ahead of the screen.
    ahead: Ahead,
    /// Screened bytes not yet read out, from `at`.
    out: Vec<u8>,
    at: usize,
    /// Data records passed (or replaced) so far.
    records: u64,
    /// Lines of the input consumed before the current record.
    lines: u64,
    log: Rejections,
    ended: bool,
}

impl<R: BufRead> Screen<R> {
    /// Screens CSV with a header record (comma-separated, `"` quoted, as arrow-csv reads it).
    pub fn csv(inner: R, log: Rejections) -> Screen<R> {
        let syntax = Syntax::Csv {
            parser: Box::new(csv_core::Reader::new()),
            header_fields: None,
            fields: 0,
            scratch: vec![0; 4096],
            ends: vec![0; 256],
        };
        Screen::new(inner, syntax, log)
    }

    /// Screens JSON lines.
    pub fn json_lines(inner: R, log: Rejections) -> Screen<R> {
        Screen::new(inner, Syntax::JsonLines, log)
    }

    fn new(inner: R, syntax: Syntax, log: Rejections) -> Screen<R> {
        Screen {
            inner,
            syntax,
            record: Vec::new(),
            ahead: Ahead::default(),
            out: Vec::with_capacity(CHUNK),
            at: 0,
            records: 0,
            lines: 0,
            log,
            ended: false,
        }
    }

    /// Screens records into `out` until it holds [`CHUNK`] bytes or the input ends.
    fn refill(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.at = 0;
        while !self.ended && self.out.len() < CHUNK {
            match self.syntax {
                Syntax::JsonLines => self.next_json_line()?,
                Syntax::Csv { .. } => self.next_csv_record()?,
            }
        }
        Ok(())
    }

    fn next_json_line(&mut self) -> std::io::Result<()> {
        self.record.clear();
        if self.inner.read_until(b'\n', &mut self.record)? == 0 {
            self.ended = true;
            return Ok(());
        }
        self.lines += 1;
        if self.record.iter().all(u8::is_ascii_whitespace) {
            // Not a record for the decoder either.
            self.out.extend_from_slice(&self.record);
            return Ok(());
        }
        match serde_json::from_slice::<AnObject>(&self.record) {
            Ok(AnObject) => self.out.extend_from_slice(&self.record),
            Err(e) => {
                let reason = format!("line {}: not one JSON object: {e}", self.lines);
                self.reject(reason);
                self.out.extend_from_slice(b"{}\n");
            }
        }
        self.records += 1;
        Ok(())
    }

    fn next_csv_record(&mut self) -> std::io::Result<()> {
        // Fast path, once the header is known: a line with no quote and no carriage return
        // (but one before its newline) is one record whose fields are its commas plus one.
        // csv-core reads every byte through a state machine: 20 % of a CSV run's time,
        // against about 2 % for this.
        if let Syntax::Csv {
            header_fields: Some(expected),
            ..
        } = self.syntax
        {
            let newline = loop {
                match memchr::memchr(b'\n', self.ahead.unread()) {
                    Some(i) => break Some(i),
                    None if !self.ahead.read_more(&mut self.inner)? => break None,
                    None => {}
                }
            };
            let unread = self.ahead.unread();
            let end = newline.map_or(unread.len(), |i| i + 1);
            if end == 0 {
                self.ended = true;
                return Ok(());
            }
            let line = &unread[..end];
            let content = line.strip_suffix(b"\n").unwrap_or(line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if memchr::memchr2(b'"', b'\r', content).is_none() {
                let found = content.iter().filter(|&&b| b == b',').count() + 1;
                let blank = content.is_empty();
                self.lines += 1;
                if blank || found == expected {
                    // A blank line is no record for the decoder either.
                    self.out.extend_from_slice(line);
                    self.records += u64::from(!blank);
                    self.ahead.taken += end;
                } else {
                    self.ahead.taken += end;
                    self.record.clear();
                    self.screened(found, expected, self.lines);
                }
                return Ok(());
            }
        }
        let Syntax::Csv {
            parser,
            header_fields,
            fields,
            scratch,
            ends,
        } = &mut self.syntax
        else {
            unreachable!("a CSV screen")
        };
        self.record.clear();
        let mut at_end = false;
        loop {
            if self.ahead.unread().is_empty() && !at_end {
                // Read more; at the input's end, csv-core is told so with an empty input.
                at_end = !self.ahead.read_more(&mut self.inner)?;
                continue;
            }
            let input = self.ahead.unread();
            let (result, read, _, ended_fields) = parser.read_record(input, scratch, ends);
            self.record.extend_from_slice(&input[..read]);
            self.ahead.taken += read;
            *fields += ended_fields;
            match result {
                csv_core::ReadRecordResult::InputEmpty
                | csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => continue,
                csv_core::ReadRecordResult::End => {
                    self.out.append(&mut self.record);
                    self.ended = true;
                    return Ok(());
                }
                csv_core::ReadRecordResult::Record => break,
            }
        }
        let found = std::mem::take(fields);
        // Blank lines before a record are skipped by the parser and kept in its bytes.
        let blank = self
            .record
            .iter()
            .take_while(|&&b| b == b'\n' || b == b'\r');
        let line = self.lines + blank.filter(|&&b| b == b'\n').count() as u64 + 1;
        self.lines += self.record.iter().filter(|&&b| b == b'\n').count() as u64;
        match *header_fields {
            None => {
                *header_fields = Some(found);
                self.out.append(&mut self.record);
            }
            Some(expected) => self.screened(found, expected, line),
        }
        Ok(())
    }

    /// Passes the record in `self.record` (`found` fields, at line `line`) through, or an empty
    /// record of `expected` fields in its place.
    fn screened(&mut self, found: usize, expected: usize, line: u64) {
        if found == expected {
            self.out.append(&mut self.record);
        } else {
            self.record.clear();
            let reason = format!("line {line}: {found} fields where the header has {expected}");
            self.reject(reason);
            self.out.extend(std::iter::repeat_n(b',', expected - 1));
            self.out.push(b'\n');
        }
        self.records += 1;
    }

    fn reject(&self, reason: String) {
        self.log.lock().expect("not poisoned").push_back(Rejected {
            record: self.records,
            reason,
        });
    }
}

/// Input read ahead of a CSV screen, screened up to `taken`.
#[derive(Debug, Default)]
struct Ahead {
    bytes: Vec<u8>,
    taken: usize,
}

impl Ahead {
    /// What is read and not yet screened.
    fn unread(&self) -> &[u8] {
        &self.bytes[self.taken..]
    }

    /// Appends `inner`'s next buffer to what is unread (dropping what was screened first);
    /// false at the input's end.
    fn read_more(&mut self, inner: &mut impl BufRead) -> std::io::Result<bool> {
        self.bytes.drain(..self.taken);
        self.taken = 0;
        let input = inner.fill_buf()?;
        self.bytes.extend_from_slice(input);
        let n = input.len();
        inner.consume(n);
        Ok(n > 0)
    }
}

impl<R: BufRead> Read for Screen<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.out.len() {
            self.refill()?;
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The keys of the JSON objects on the first `lines` lines of `input`, in the order they first
/// appear (lines that are not objects skipped). arrow-json's inferred schema orders its
/// fields by name; a file's own order is what the default column mapping follows, as for CSV.
pub fn json_key_order(input: impl BufRead, lines: usize) -> std::io::Result<Vec<String>> {
    let mut keys: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in input.split(b'\n').take(lines) {
        if let Ok(Keys(found)) = serde_json::from_slice::<Keys>(&line?) {
            for key in found {
                if seen.insert(key.clone()) {
                    keys.push(key);
                }
            }
        }
    }
    Ok(keys)
}

/// A JSON object's keys, in order, its values skipped.
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Keys, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

/// A reader run on a thread of its own, a few chunks ahead of its consumer: the screen's
/// parse then overlaps the Arrow decoder's on another core instead of adding to it (measured
/// on JSON lines, where it is a fifth of the reading: see bench/README.md).
#[derive(Debug)]
pub struct Prefetch {
    chunks: Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

/// Chunks read ahead.
const CHUNKS_AHEAD: usize = 4;

impl Prefetch {
    /// Starts reading `inner` on a new thread; it stops at the input's end, at an error (which
    /// the consumer gets), or when this is dropped.
    pub fn spawn<R: Read + Send + 'static>(mut inner: R) -> std::io::Result<Prefetch> {
        let (send, chunks) = sync_channel(CHUNKS_AHEAD);
        std::thread::Builder::new()
            .name("ferroserve-screen".into())
            .spawn(move || {
                loop {
                    // A full chunk, or what is left at the input's end.
                    let mut chunk = Vec::with_capacity(CHUNK);
                    let read = inner.by_ref().take(CHUNK as u64).read_to_end(&mut chunk);
                    let last = !matches!(read, Ok(CHUNK));
                    if send.send(read.map(|_| chunk)).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(Prefetch {
            chunks,
            chunk: Vec::new(),
            at: 0,
        })
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.chunk.len() {
            match self.chunks.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.at = 0;
                }
                // The thread is done: everything was read.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Any JSON object, its contents skipped.
struct AnObject;

impl<'de> Deserialize<'de> for AnObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AnObject, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = AnObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnObject)
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen_csv(text: &str) -> (String, Vec<Rejected>) {
        let log = Rejections::default();
        let mut out = String::new();
        Screen::csv(text.as_bytes(), Arc::clone(&log))
            .read_to_string(&mut out)
            .unwrap();
        let log = log.lock().unwrap().iter().cloned().collect();
        (out, log)
    }

    fn screen_json(text: &str) -> (String, Vec<Rejected>) {
        let log = Rejections::default();
        let mut out = String::new();
        Screen::json_lines(text.as_bytes(), Arc::clone(&log))
            .read_to_string(&mut out)
            .unwrap();
        let log = log.lock().unwrap().iter().cloned().collect();
        (out, log)
    }

    #[test]
    fn well_formed_csv_passes_byte_for_byte() {
        let text = "a,b,c\r\n1,\"x,\ny\",3\n\n4,5,6\r\n7,\"8\",9\r10,11,12";
        assert_eq!(screen_csv(text), (text.to_owned(), vec![]));
    }

    #[test]
    fn quoted_fields_and_bare_carriage_returns_are_counted_as_csv_reads_them() {
        // A quoted comma or newline is inside a field; a lone `\r` ends a record.
        let (out, log) = screen_csv("a,b\n\"1,2\",3\n\"x\ny\"\n4,5\r6\r7,8,9\n");
        assert_eq!(out, "a,b\n\"1,2\",3\n,\n4,5\r,\n,\n");
        let found: Vec<&str> = log.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            found,
            [
                "line 3: 1 fields where the header has 2",
                "line 5: 1 fields where the header has 2",
                "line 5: 3 fields where the header has 2",
            ]
        );
    }

    #[test]
    fn a_csv_record_with_other_field_counts_becomes_an_empty_one() {
        let (out, log) = screen_csv("a,b,c\n1,2,3\n4,5\n\n6,7,8,9\n10,11,12\n");
        assert_eq!(out, "a,b,c\n1,2,3\n,,\n\n,,\n10,11,12\n");
        assert_eq!(
            log,
            vec![
                Rejected {
                    record: 1,
                    reason: "line 3: 2 fields where the header has 3".into()
                },
                Rejected {
                    record: 2,
                    reason: "line 5: 4 fields where the header has 3".into()
                },
            ]
        );
    }

    #[test]
    fn a_json_line_that_is_not_one_object_becomes_an_empty_object() {
        let (out, log) = screen_json("{\"a\": 1}\n\n{\"a\": \n[1]\n{\"a\": {\"b\": [2]}}\n{} {}\n");
        assert_eq!(out, "{\"a\": 1}\n\n{}\n{}\n{\"a\": {\"b\": [2]}}\n{}\n");
        let records: Vec<u64> = log.iter().map(|r| r.record).collect();
        assert_eq!(records, vec![1, 2, 4]);
        assert!(
            log[0].reason.starts_with("line 3: not one JSON object"),
            "{log:?}"
        );
        assert!(log[1].reason.contains("a JSON object"), "{log:?}");
    }

    #[test]
    fn json_keys_keep_the_order_they_first_appear_in() {
        let text = "{\"b\": 1, \"a\": {\"z\": 1}}\nnot json\n{\"c\": 2, \"a\": 3}\n{\"d\": 4}\n";
        let keys = json_key_order(text.as_bytes(), 3).unwrap();
        assert_eq!(keys, ["b", "a", "c"]);
    }

    #[test]
    fn prefetch_reads_what_its_reader_reads() {
        let text: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut out = Vec::new();
        Prefetch::spawn(std::io::Cursor::new(text.clone()))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, text);

        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let error = Prefetch::spawn(Failing)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(error.to_string(), "disk on fire");
    }

    #[test]
    fn long_inputs_are_screened_in_chunks() {
        let mut text = String::from("x,y\n");
        for i in 0..50_000 {
            if i % 997 == 0 {
                text.push_str("1\n");
            } else {
                text.push_str(&format!("{i},{i}\n"));
            }
        }
        let (out, log) = screen_csv(&text);
        assert_eq!(log.len(), 51);
        assert_eq!(out.lines().count(), 50_001);
        assert_eq!(log[1].record, 997);
        assert_eq!(log[1].reason, "line 999: 1 fields where the header has 2");
    }
}
