//! The source side: [`KafkaConnector`], one per subtask, reading the
//! partitions it owns from their start offsets, with the positions a
//! checkpoint keeps (see the parent module's diagram).
//!
//! May use what the parent module imports.

use super::*;

/// One owned partition's reading state.
struct Part {
    // config
    name: String,
    end: Option<i64>,
    // resources
    client: PartitionClient,
    // state
    next: i64,
    /// The partition's high watermark at the last fetch (-1: none yet).
    head: i64,
    /// Skip records older than this until the first that is not (timestamp start).
    skip_before: Option<i64>,
}

impl Part {
    fn done(&self) -> bool {
        self.end.is_some_and(|e| self.next >= e)
    }
}

/// A fetched record not handed out yet: partition index, offset, value
/// (`None`: skipped, only moves the position).
type Pending = (usize, i64, Option<Vec<u8>>);

/// Reads the partitions of one subtask.
pub struct KafkaConnector {
    // config
    config: Arc<KafkaSourceConfig>,
    // resources
    kafka: Kafka,
    // state
    parts: Vec<Part>,
    pending: VecDeque<Pending>,
    cursor: usize,
}

impl KafkaConnector {
    /// Connects and resolves the start offsets of `partitions`.
    pub(super) fn open(config: Arc<KafkaSourceConfig>, partitions: Vec<i32>) -> Result<Self> {
        let kafka = Kafka::connect(&config.brokers, &config.topic, config.timeout)?;
        let mut parts = Vec::with_capacity(partitions.len());
        for p in partitions {
            let name = format!("{}/{p}", config.topic);
            let client = kafka.partition_client(p)?;
            // asked once (a list and a probe; see Kafka::earliest)
            let mut first = None;
            let mut earliest = || -> Result<i64> {
                if let Some(e) = first {
                    return Ok(e);
                }
                let e = kafka.earliest(&client)?;
                first = Some(e);
                Ok(e)
            };
            let end = if config.bounded || config.start == StartFrom::Latest {
                Some(kafka.high_watermark(&client, earliest()?)?)
            } else {
                None
            };
            let (next, skip_before) = match &config.start {
                StartFrom::Earliest => (earliest()?, None),
                StartFrom::Latest => (end.unwrap_or_default(), None),
                StartFrom::Timestamp(t) => {
                    let at =
                        rskafka::chrono::DateTime::from_timestamp_millis(*t).ok_or_else(|| {
                            Error::option("kafka.start", format!("{t} is not a valid timestamp"))
                        })?;
                    let found = kafka.offset(&client, OffsetAt::Timestamp(at))?;
                    // Kafka answers -1 when no record is that recent: start at the end
                    let next = if found < 0 {
                        kafka.high_watermark(&client, earliest()?)?
                    } else {
                        found
                    };
                    (next, Some(*t))
                }
                StartFrom::Positions(map) => match map.get(&name) {
                    Some(Position::Offset(o)) => (*o, None),
                    Some(Position::Id(id)) => {
                        return Err(Error::option(
                            "kafka.start",
                            format!("position `{id}` of {name} is not a Kafka offset"),
                        ))
                    }
                    None => (earliest()?, None),
                },
            };
            let end = end.filter(|_| config.bounded);
            parts.push(Part {
                name,
                end,
                client,
                next,
                // the end of a bounded read (or of the topic, started at
                // the latest) is its head until a fetch says more
                head: end.unwrap_or(-1),
                skip_before,
            });
        }
        Ok(KafkaConnector {
            config,
            kafka,
            parts,
            pending: VecDeque::new(),
            cursor: 0,
        })
    }

    /// Fetches from the owned partitions in turn until one has records.
    /// Returns false if none had any.
    fn fill(&mut self) -> Result<bool> {
        let n = self.parts.len();
        let active: Vec<usize> = (0..n)
            .map(|k| (self.cursor + k) % n)
            .filter(|&i| !self.parts[i].done())
            .collect();
        for (k, &i) in active.iter().enumerate() {
            // the last partition of an empty round may wait a little
            let wait = if k + 1 == active.len() {
                self.config.fetch_wait_ms
            } else {
                1
            };
            self.cursor = (i + 1) % n;
            if self.fetch_partition(i, wait)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn fetch_partition(&mut self, i: usize, wait_ms: i32) -> Result<bool> {
        let part = &self.parts[i];
        let wait = Duration::from_millis(wait_ms.max(1) as u64);
        let (records, head) = self.kafka.call(
            Some(part.client.partition()),
            &format!("fetch at offset {}", part.next),
            wait,
            part.client
                .fetch_records(part.next, 1..self.config.fetch_max_bytes, wait_ms.max(1)),
        )?;
        let part = &mut self.parts[i];
        part.head = head;
        let before = self.pending.len();
        for r in records {
            if r.offset < part.next {
                continue;
            }
            if let Some(end) = part.end.filter(|&e| r.offset >= e) {
                // everything before the end was seen (offsets may have gaps)
                self.pending.push_back((i, end - 1, None));
                break;
            }
            let ts = r.record.timestamp.timestamp_millis();
            let skip = match part.skip_before {
                Some(t) if ts < t => true,
                Some(_) => {
                    part.skip_before = None;
                    false
                }
                None => false,
            };
            // null values (tombstones of compacted topics) carry no row
            let value = if skip { None } else { r.record.value };
            self.pending.push_back((i, r.offset, value));
        }
        Ok(self.pending.len() > before)
    }
}

impl Connector for KafkaConnector {
    fn partitions(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.name.clone()).collect()
    }

    fn fetch(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<Fetch> {
        if self.pending.is_empty() && !self.parts.iter().all(Part::done) {
            self.fill()?;
        }
        let mut moved = false;
        while out.len() < max {
            let Some((i, offset, value)) = self.pending.pop_front() else {
                break;
            };
            self.parts[i].next = offset + 1;
            moved = true;
            if let Some(payload) = value {
                out.push(RawRecord {
                    partition: i,
                    position: Position::Offset(offset),
                    payload,
                });
            }
        }
        Ok(
            if self.pending.is_empty() && self.parts.iter().all(Part::done) {
                // a subtask without partitions ends at once: it never gets input
                Fetch::End
            } else if out.is_empty() && !moved {
                Fetch::Idle
            } else {
                Fetch::Records
            },
        )
    }

    fn records_behind(&self) -> Option<u64> {
        // unknown until every partition's head is (a partial sum would
        // understate it); records fetched but not handed out count too
        if self.parts.iter().any(|p| p.head < 0) {
            return None;
        }
        let behind = |p: &Part| {
            let head = p.end.map_or(p.head, |e| e.min(p.head));
            (head - p.next).max(0) as u64
        };
        Some(self.parts.iter().map(behind).sum())
    }

    fn finished_partitions(&self) -> Vec<usize> {
        (0..self.parts.len())
            .filter(|&i| self.parts[i].done() && !self.pending.iter().any(|r| r.0 == i))
            .collect()
    }

    fn positions(&self) -> BTreeMap<String, Position> {
        self.parts
            .iter()
            .map(|p| (p.name.clone(), Position::Offset(p.next)))
            .collect()
    }

    fn checkpoint(&self) -> Result<BTreeMap<String, Position>> {
        let mut saved = self.positions();
        for p in &self.parts {
            if let Some(end) = p.end {
                saved.insert(format!("{}{END}", p.name), Position::Offset(end));
            }
            if let Some(t) = p.skip_before {
                saved.insert(format!("{}{SKIP}", p.name), Position::Offset(t));
            }
        }
        // records fetched but not handed out come again from this partition
        let next = self.pending.front().map_or(self.cursor, |r| r.0);
        if let Some(part) = self.parts.get(next) {
            let id = part.client.partition();
            saved.insert(self.cursor_key(), Position::Offset(i64::from(id)));
        }
        Ok(saved)
    }

    fn seek(&mut self, saved: &BTreeMap<String, Position>) -> Result<()> {
        self.pending.clear();
        for part in &mut self.parts {
            let Some(position) = saved.get(&part.name) else {
                continue;
            };
            part.next = match position {
                Position::Offset(o) => *o,
                Position::Id(id) => {
                    return Err(Error::Checkpoint {
                        location: part.name.clone(),
                        message: format!("position `{id}` is not a Kafka offset"),
                    })
                }
            };
            let detail = |suffix: &str| match saved.get(&format!("{}{suffix}", part.name)) {
                Some(Position::Offset(v)) => Some(*v),
                _ => None,
            };
            if self.config.bounded {
                part.end = detail(END).or(part.end);
            }
            part.skip_before = detail(SKIP);
        }
        if let Some(Position::Offset(id)) = saved.get(&self.cursor_key()) {
            if let Some(i) = self
                .parts
                .iter()
                .position(|p| i64::from(p.client.partition()) == *id)
            {
                self.cursor = i;
            }
        }
        Ok(())
    }
}

/// Checkpoint key suffix of a bounded read's end offset.
const END: &str = "#end";
/// Checkpoint key suffix of a timestamp start still skipping.
const SKIP: &str = "#skip_before";

impl KafkaConnector {
    /// Checkpoint key of the partition fetched next.
    fn cursor_key(&self) -> String {
        format!("{}#cursor", self.config.topic)
    }
}
