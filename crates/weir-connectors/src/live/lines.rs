//! Newline-delimited JSON from a TCP socket or stdin.
//!
//! Owns [`LinesConnector`]. A reader thread (started by the first fetch)
//! splits the byte stream into lines of at most `max_record_bytes` (longer
//! ones are skipped to their end, keeping a prefix for the dead letter, so
//! one huge line never fills memory) and hands them over a bounded channel
//! in chunks of at most 1024 lines or 1 MiB (backpressure: it stops reading
//! when the job falls behind). The partition is the connection; a record's
//! position is its line number (from 0). The stream ends when the peer
//! closes it (TCP) or at end of file (stdin), like Flink's socket source.
//! May use `weir_core::error` and the sibling modules.

use super::line_reader::{Line, LineReader};
use super::{Connector, DeadLetter, Fetch, Position, RawRecord, RecordRules};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, TryRecvError};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;
use weir_core::error::{Error, Result};

/// Lines per message between the reader thread and the source.
const CHUNK: usize = 1024;
/// Bytes per message (a chunk closes at whichever bound comes first).
const CHUNK_BYTES: usize = 1 << 20;

enum Chunk {
    Lines(Vec<Line>),
    Failed(String),
    End,
}

/// Reads newline-delimited records from a socket or stdin.
pub struct LinesConnector {
    // config
    name: String,
    max_record_bytes: usize,
    // resources
    /// The input until the reader thread takes it (first fetch).
    input: Option<Box<dyn Read + Send>>,
    rx: Option<Receiver<Chunk>>,
    socket: Option<TcpStream>,
    // state
    pending: std::collections::VecDeque<Line>,
    letters: Vec<DeadLetter>,
    next_line: i64,
    ended: bool,
}

impl LinesConnector {
    /// Connects to `addr` (`host:port`) and reads lines until the peer closes.
    pub fn connect_tcp(addr: &str) -> Result<Self> {
        let endpoint = format!("tcp {addr}");
        let socket = TcpStream::connect(addr).map_err(|e| Error::Connector {
            endpoint: endpoint.clone(),
            message: format!("cannot connect: {e}"),
        })?;
        let reader = socket.try_clone().map_err(|e| Error::Connector {
            endpoint: endpoint.clone(),
            message: e.to_string(),
        })?;
        let mut c = Self::from_reader(endpoint, reader)?;
        c.socket = Some(socket);
        Ok(c)
    }

    /// Reads lines from this process's standard input until end of file.
    pub fn stdin() -> Result<Self> {
        Self::from_reader("stdin", std::io::stdin())
    }

    /// Reads lines from any reader (tests, pipes).
    pub fn from_reader(
        name: impl Into<String>,
        reader: impl Read + Send + 'static,
    ) -> Result<Self> {
        Ok(LinesConnector {
            name: name.into(),
            max_record_bytes: RecordRules::default().max_record_bytes,
            input: Some(Box::new(reader)),
            rx: None,
            socket: None,
            pending: Default::default(),
            letters: Vec::new(),
            next_line: 0,
            ended: false,
        })
    }

    /// Lines longer than `max` bytes become dead letters (default 1 MiB).
    /// Takes effect if set before the first fetch.
    pub fn with_max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max.max(1);
        self
    }

    /// Starts the reader thread (once).
    fn receiver(&mut self) -> Result<Receiver<Chunk>> {
        if let Some(rx) = &self.rx {
            return Ok(rx.clone());
        }
        let input = self.input.take().expect("the input is taken only here");
        let (tx, rx) = bounded::<Chunk>(16);
        let max = self.max_record_bytes;
        std::thread::Builder::new()
            .name(format!("read {}", self.name))
            .spawn(move || {
                let mut reader = LineReader::new(input, max);
                let mut lines = Vec::with_capacity(CHUNK);
                let mut bytes = 0;
                loop {
                    match reader.next_line() {
                        Ok(None) => break,
                        Ok(Some(line)) => {
                            bytes += line.held_bytes();
                            lines.push(line);
                            // hand over a full chunk, or whatever we have
                            // when no more bytes are buffered
                            if lines.len() >= CHUNK
                                || bytes >= CHUNK_BYTES
                                || !reader.has_buffered()
                            {
                                let chunk =
                                    std::mem::replace(&mut lines, Vec::with_capacity(CHUNK));
                                bytes = 0;
                                if tx.send(Chunk::Lines(chunk)).is_err() {
                                    return; // the source is gone
                                }
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Chunk::Lines(std::mem::take(&mut lines)));
                            let _ = tx.send(Chunk::Failed(e.to_string()));
                            return;
                        }
                    }
                }
                let _ = tx.send(Chunk::Lines(lines));
                let _ = tx.send(Chunk::End);
            })
            .map_err(|e| Error::Connector {
                endpoint: self.name.clone(),
                message: format!("cannot start the reader thread: {e}"),
            })?;
        self.rx = Some(rx.clone());
        Ok(rx)
    }

    fn take_chunk(&mut self, chunk: Chunk) -> Result<()> {
        match chunk {
            Chunk::Lines(lines) => self.pending.extend(lines),
            Chunk::Failed(message) => {
                return Err(Error::Connector {
                    endpoint: self.name.clone(),
                    message: format!("read failed after line {}: {message}", self.next_line),
                })
            }
            Chunk::End => self.ended = true,
        }
        Ok(())
    }
}

impl Drop for LinesConnector {
    fn drop(&mut self) {
        // unblocks the reader thread of a socket; a stdin reader ends with the process
        if let Some(s) = &self.socket {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Connector for LinesConnector {
    fn partitions(&self) -> Vec<String> {
        vec![self.name.clone()]
    }

    fn set_record_rules(&mut self, rules: &RecordRules) {
        if self.rx.is_none() {
            self.max_record_bytes = rules.max_record_bytes.max(1);
        }
    }

    fn fetch(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<Fetch> {
        let rx = self.receiver()?;
        if self.pending.is_empty() && !self.ended {
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(chunk) => self.take_chunk(chunk)?,
                Err(RecvTimeoutError::Timeout) => return Ok(Fetch::Idle),
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
            }
        }
        while self.pending.len() < max && !self.ended {
            match rx.try_recv() {
                Ok(chunk) => self.take_chunk(chunk)?,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.ended = true,
            }
        }
        let mut refused = 0;
        while out.len() + refused < max {
            let Some(line) = self.pending.pop_front() else {
                break;
            };
            let position = Position::Offset(self.next_line);
            self.next_line += 1;
            match line {
                // blank lines carry no record
                Line::Record(b) if b.iter().all(|b| b.is_ascii_whitespace()) => {}
                Line::Record(payload) => out.push(RawRecord {
                    partition: 0,
                    position,
                    payload,
                }),
                Line::TooLong { prefix, len } => {
                    refused += 1;
                    self.letters.push(DeadLetter::too_long(
                        0,
                        position,
                        &prefix,
                        len,
                        self.max_record_bytes,
                    ));
                }
            }
        }
        Ok(if self.ended && self.pending.is_empty() {
            Fetch::End
        } else if out.is_empty() && refused == 0 {
            Fetch::Idle
        } else {
            Fetch::Records
        })
    }

    fn take_dead_letters(&mut self, out: &mut Vec<DeadLetter>) {
        out.append(&mut self.letters);
    }

    fn finished_partitions(&self) -> Vec<usize> {
        if self.ended && self.pending.is_empty() {
            vec![0]
        } else {
            Vec::new()
        }
    }

    fn positions(&self) -> BTreeMap<String, Position> {
        BTreeMap::from([(self.name.clone(), Position::Offset(self.next_line))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(c: &mut LinesConnector) -> Vec<(i64, String)> {
        let mut got = Vec::new();
        loop {
            let mut out = Vec::new();
            let f = c.fetch(3, &mut out).unwrap();
            for r in out {
                let Position::Offset(o) = r.position else {
                    panic!()
                };
                got.push((o, String::from_utf8(r.payload).unwrap()));
            }
            if f == Fetch::End {
                return got;
            }
        }
    }

    #[test]
    fn lines_keep_their_numbers_and_blank_lines_are_skipped() {
        let text = "{\"a\":1}\r\n\n{\"a\":2}\n   \n{\"a\":3}";
        let mut c = LinesConnector::from_reader("test", std::io::Cursor::new(text)).unwrap();
        let got = drain(&mut c);
        assert_eq!(
            got,
            vec![
                (0, "{\"a\":1}".into()),
                (2, "{\"a\":2}".into()),
                (4, "{\"a\":3}".into())
            ]
        );
        assert_eq!(c.positions()["test"], Position::Offset(5));
        assert_eq!(c.finished_partitions(), vec![0]);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_a_dead_letter_with_its_number() {
        let text = format!(
            "{{\"a\":1}}\n{{\"a\":\"{}\"}}\n{{\"a\":3}}\n",
            "y".repeat(5000)
        );
        let mut c = LinesConnector::from_reader("test", std::io::Cursor::new(text))
            .unwrap()
            .with_max_record_bytes(100);
        let got = drain(&mut c);
        assert_eq!(got, vec![(0, "{\"a\":1}".into()), (2, "{\"a\":3}".into())]);
        let mut letters = Vec::new();
        c.take_dead_letters(&mut letters);
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].position, Position::Offset(1));
        assert!(
            letters[0].reason.contains("5008 bytes"),
            "{}",
            letters[0].reason
        );
        assert!(
            letters[0].reason.contains("max_record_bytes (100)"),
            "{}",
            letters[0].reason
        );
        assert!(
            letters[0].record.len() < 1100,
            "{}",
            letters[0].record.len()
        );
    }

    #[test]
    fn a_refused_connection_names_the_address() {
        // bind then drop: nothing listens on this port any more
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = LinesConnector::connect_tcp(&format!("127.0.0.1:{port}"))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains(&format!("tcp 127.0.0.1:{port}")),
            "{err}"
        );
    }
}
