//! Newline-delimited JSON from a TCP socket or stdin.
//!
//! Owns [`LinesConnector`]. A reader thread splits the byte stream into
//! lines and hands them over a bounded channel (backpressure: it stops
//! reading when the job falls behind). The partition is the connection; a
//! record's position is its line number (from 0). The stream ends when the
//! peer closes it (TCP) or at end of file (stdin), like Flink's socket source.
//! May use `crate::error` and the sibling modules.

use super::{Connector, Fetch, Position, RawRecord};
use crate::error::{Error, Result};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, TryRecvError};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::time::Duration;

/// Lines per message between the reader thread and the source.
const CHUNK: usize = 1024;

enum Chunk {
    Lines(Vec<Vec<u8>>),
    Failed(String),
    End,
}

/// Reads newline-delimited records from a socket or stdin.
pub struct LinesConnector {
    // config
    name: String,
    // resources
    rx: Receiver<Chunk>,
    socket: Option<TcpStream>,
    // state
    pending: std::collections::VecDeque<Vec<u8>>,
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
        let mut c = Self::spawn(endpoint, reader)?;
        c.socket = Some(socket);
        Ok(c)
    }

    /// Reads lines from this process's standard input until end of file.
    pub fn stdin() -> Result<Self> {
        Self::spawn("stdin".into(), std::io::stdin())
    }

    /// Reads lines from any reader (tests, pipes).
    pub fn from_reader(
        name: impl Into<String>,
        reader: impl Read + Send + 'static,
    ) -> Result<Self> {
        Self::spawn(name.into(), reader)
    }

    fn spawn(name: String, reader: impl Read + Send + 'static) -> Result<Self> {
        let (tx, rx) = bounded::<Chunk>(16);
        let thread_name = format!("read {name}");
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let mut reader = BufReader::with_capacity(1 << 16, reader);
                let mut lines = Vec::with_capacity(CHUNK);
                loop {
                    let mut line = Vec::new();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) => break,
                        Ok(_) => {
                            while matches!(line.last(), Some(b'\n' | b'\r')) {
                                line.pop();
                            }
                            lines.push(line);
                            // hand over a full chunk, or whatever we have
                            // when no more bytes are buffered
                            if lines.len() >= CHUNK || reader.buffer().is_empty() {
                                let chunk =
                                    std::mem::replace(&mut lines, Vec::with_capacity(CHUNK));
                                if tx.send(Chunk::Lines(chunk)).is_err() {
                                    return; // the source is gone
                                }
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
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
                endpoint: name.clone(),
                message: format!("cannot start the reader thread: {e}"),
            })?;
        Ok(LinesConnector {
            name,
            rx,
            socket: None,
            pending: Default::default(),
            next_line: 0,
            ended: false,
        })
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

    fn fetch(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<Fetch> {
        if self.pending.is_empty() && !self.ended {
            match self.rx.recv_timeout(Duration::from_millis(5)) {
                Ok(chunk) => self.take_chunk(chunk)?,
                Err(RecvTimeoutError::Timeout) => return Ok(Fetch::Idle),
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
            }
        }
        while self.pending.len() < max && !self.ended {
            match self.rx.try_recv() {
                Ok(chunk) => self.take_chunk(chunk)?,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.ended = true,
            }
        }
        while out.len() < max {
            let Some(line) = self.pending.pop_front() else {
                break;
            };
            let position = Position::Offset(self.next_line);
            self.next_line += 1;
            // blank lines carry no record
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            out.push(RawRecord {
                partition: 0,
                position,
                payload: line,
            });
        }
        Ok(if self.ended && self.pending.is_empty() {
            Fetch::End
        } else if out.is_empty() {
            Fetch::Idle
        } else {
            Fetch::Records
        })
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
