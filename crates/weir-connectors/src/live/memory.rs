//! An in-memory connector: partitions of JSON records held in memory, for
//! tests, examples and benchmarks of the live path without a broker.
//!
//! Owns [`MemoryConnector`]. May use the sibling modules.

use super::{Connector, Fetch, Position, RawRecord};
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_core::error::{Error, Result};
use weir_core::operator::TaskInfo;

/// Reads partitions of JSON records; partition `p` belongs to subtask
/// `p % parallelism`. Positions are offsets within a partition. It ends
/// (bounded) after the last record, or idles forever (unbounded) so that
/// only a stop request ends the job.
#[derive(Debug)]
pub struct MemoryConnector {
    // config
    data: Arc<Vec<Vec<String>>>,
    owned: Vec<usize>,
    bounded: bool,
    // state
    next: Vec<usize>,
    turn: usize,
}

impl MemoryConnector {
    /// Subtask `info`'s share of `partitions`, starting at `start` offsets
    /// (by partition name `memory/P`; missing: 0).
    pub fn new(
        partitions: Arc<Vec<Vec<String>>>,
        info: &TaskInfo,
        start: &BTreeMap<String, Position>,
        bounded: bool,
    ) -> Self {
        let owned: Vec<usize> = (0..partitions.len())
            .filter(|p| p % info.parallelism == info.subtask)
            .collect();
        let next = owned
            .iter()
            .map(|p| match start.get(&format!("memory/{p}")) {
                Some(Position::Offset(o)) => (*o).max(0) as usize,
                _ => 0,
            })
            .collect();
        MemoryConnector {
            data: partitions,
            owned,
            bounded,
            next,
            turn: 0,
        }
    }

    fn done(&self, i: usize) -> bool {
        self.next[i] >= self.data[self.owned[i]].len()
    }
}

impl Connector for MemoryConnector {
    fn partitions(&self) -> Vec<String> {
        self.owned.iter().map(|p| format!("memory/{p}")).collect()
    }

    fn fetch(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<Fetch> {
        // one partition per call, in turn, like a consumer polling brokers
        for _ in 0..self.owned.len() {
            let i = self.turn % self.owned.len();
            self.turn += 1;
            if self.done(i) {
                continue;
            }
            let part = &self.data[self.owned[i]];
            let end = (self.next[i] + max).min(part.len());
            for (o, rec) in part.iter().enumerate().take(end).skip(self.next[i]) {
                out.push(RawRecord {
                    partition: i,
                    position: Position::Offset(o as i64),
                    payload: rec.as_bytes().to_vec(),
                });
            }
            self.next[i] = end;
            return Ok(Fetch::Records);
        }
        if self.bounded {
            Ok(Fetch::End)
        } else {
            std::thread::sleep(std::time::Duration::from_millis(2));
            Ok(Fetch::Idle)
        }
    }

    fn finished_partitions(&self) -> Vec<usize> {
        if !self.bounded {
            return Vec::new();
        }
        (0..self.owned.len()).filter(|&i| self.done(i)).collect()
    }

    fn positions(&self) -> BTreeMap<String, Position> {
        self.owned
            .iter()
            .zip(&self.next)
            .map(|(p, n)| (format!("memory/{p}"), Position::Offset(*n as i64)))
            .collect()
    }

    /// The positions, and the partition whose turn is next (`memory#turn`).
    fn checkpoint(&self) -> Result<BTreeMap<String, Position>> {
        let mut saved = self.positions();
        saved.insert(TURN.into(), Position::Offset(self.turn as i64));
        Ok(saved)
    }

    fn seek(&mut self, saved: &BTreeMap<String, Position>) -> Result<()> {
        for (i, p) in self.owned.iter().enumerate() {
            let name = format!("memory/{p}");
            match saved.get(&name) {
                Some(Position::Offset(o)) => self.next[i] = (*o).max(0) as usize,
                Some(other) => {
                    return Err(Error::Checkpoint {
                        location: name,
                        message: format!("position `{other}` is not an offset"),
                    })
                }
                None => {}
            }
        }
        // the turn only matters at unchanged parallelism; any value is valid
        if let Some(Position::Offset(t)) = saved.get(TURN) {
            self.turn = (*t).max(0) as usize;
        }
        Ok(())
    }
}

/// The checkpoint key of the round-robin turn.
const TURN: &str = "memory#turn";
