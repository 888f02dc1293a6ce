//! Newline-delimited records with a length limit, read without ever holding
//! more than the limit of one line in memory.
//!
//! Owns [`LineReader`] and [`Line`]. May use nothing else in the crate.
//!
//! ```text
//!  fill_buf ─► up to '\n': kept while the line is within max bytes,
//!              counted (and dropped) beyond ─► Record(bytes) | TooLong { prefix, len }
//! ```
//! A trailing `\r` is removed (CRLF files). Bytes are not checked as UTF-8
//! here: the JSON decoder refuses what is not text, record by record.

use std::io::{BufRead, BufReader, Read};

/// Bytes of an over-long record kept for its dead letter.
pub const PREFIX_BYTES: usize = 1024;

/// One line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line within the limit, without its line end.
    Record(Vec<u8>),
    /// A line longer than the limit: its first [`PREFIX_BYTES`] bytes and
    /// its full length (the rest was skipped).
    TooLong {
        /// The start of the line.
        prefix: Vec<u8>,
        /// Its length in bytes.
        len: u64,
    },
}

impl Line {
    /// Bytes this line holds in memory.
    pub fn held_bytes(&self) -> usize {
        match self {
            Line::Record(b) => b.len(),
            Line::TooLong { prefix, .. } => prefix.len(),
        }
    }
}

/// Reads lines of at most `max` bytes from a reader.
pub struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
}

impl<R: Read> LineReader<R> {
    /// Lines of `reader`; longer than `max` bytes become [`Line::TooLong`].
    pub fn new(reader: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(1 << 16, reader),
            max: max.max(1),
        }
    }

    /// True if bytes are buffered, so the next line needs no read call.
    pub fn has_buffered(&self) -> bool {
        !self.inner.buffer().is_empty()
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        let mut line = Vec::new();
        let mut len: u64 = 0;
        let mut any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (body, used, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            len += body.len() as u64;
            // keep one byte past the limit: a final '\r' may still be cut
            let room = (self.max + 1).saturating_sub(line.len());
            line.extend_from_slice(&body[..body.len().min(room)]);
            self.inner.consume(used);
            if done {
                break;
            }
        }
        if line.last() == Some(&b'\r') && len as usize == line.len() {
            line.pop();
            len -= 1;
        }
        if len > self.max as u64 {
            line.truncate(PREFIX_BYTES);
            line.shrink_to_fit();
            return Ok(Some(Line::TooLong { prefix: line, len }));
        }
        Ok(Some(Line::Record(line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` bytes of 'x' without allocating them.
    struct Xs(u64);
    impl Read for Xs {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = (buf.len() as u64).min(self.0) as usize;
            buf[..n].fill(b'x');
            self.0 -= n as u64;
            Ok(n)
        }
    }

    fn all<R: Read>(r: &mut LineReader<R>) -> Vec<Line> {
        std::iter::from_fn(|| r.next_line().unwrap()).collect()
    }

    #[test]
    fn lines_within_the_limit_come_whole_longer_ones_as_a_prefix() {
        let text = b"abc\r\n\nabcdef\nabcde\r\nab".to_vec();
        let mut r = LineReader::new(std::io::Cursor::new(text), 5);
        assert_eq!(
            all(&mut r),
            vec![
                Line::Record(b"abc".to_vec()),
                Line::Record(Vec::new()),
                Line::TooLong {
                    prefix: b"abcdef".to_vec(),
                    len: 6
                },
                Line::Record(b"abcde".to_vec()),
                Line::Record(b"ab".to_vec()),
            ]
        );
    }

    #[test]
    fn a_huge_line_is_skipped_holding_at_most_the_limit() {
        let huge = Xs(300 << 20).chain(std::io::Cursor::new(b"\n{}\n".to_vec()));
        let mut r = LineReader::new(huge, 1 << 20);
        let lines = all(&mut r);
        assert_eq!(lines.len(), 2);
        match &lines[0] {
            Line::TooLong { prefix, len } => {
                assert_eq!(*len, 300 << 20);
                assert_eq!(prefix.len(), PREFIX_BYTES);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lines[1], Line::Record(b"{}".to_vec()));
    }
}
