//! The exchange between batch stages: spillable partition buffers, the
//! staged executor's shuffle output.
//!
//! Owns [`PartitionedBuffer`] (what one producing subtask writes into),
//! [`Partition`] (one partition's finished output) and [`PartitionReader`]
//! (reading it back). Memory is accounted in a [`MemoryPool`]; what does not
//! fit is spilled through a [`SpillManager`]. May use `weir-core`'s `error`,
//! `memory` and `spill` (its files); nothing else of the engine.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use weir_core::error::{Error, Result};
use weir_core::memory::{ConsumerKind, MemoryPool, MemoryReservation, FIXED_SHARE_DIVISOR};
use weir_core::spill::{
    batch_bytes, owned_copy, SpillCompression, SpillFile, SpillManager, SpillReader, SpillWriter,
};

/// The on-disk schema of `schema` if it has dictionary columns (unpacked).
fn disk_schema(schema: &SchemaRef) -> Option<SchemaRef> {
    let has_dict = schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Dictionary(_, _)));
    has_dict.then(|| {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, v) => f.as_ref().clone().with_data_type((**v).clone()),
                _ => f.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    })
}

/// Casts `batch` to `schema`, column by column (dictionary packing only).
fn cast_to(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow_cast::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn to_disk(batch: &RecordBatch, disk: &Option<SchemaRef>) -> Result<RecordBatch> {
    match disk {
        Some(schema) => cast_to(batch, schema),
        None => Ok(batch.clone()),
    }
}

/// A batch held in memory together with the bytes reserved for it.
type MemoryBatch = (RecordBatch, usize);

/// One partition's share of a [`PartitionedBuffer`] while it is filled.
#[derive(Debug, Default)]
struct PartitionState {
    /// Rows pushed to this partition (memory and disk).
    rows: u64,
    /// Batches pushed to this partition (memory and disk).
    batches: u64,
    /// Watermarks: `(batches before it, event time)`, in push order.
    marks: Vec<(u64, i64)>,
    /// Batches held in memory, in arrival order.
    memory: Vec<MemoryBatch>,
    /// The partition's spill file, opened at its first spill.
    writer: Option<SpillWriter>,
}

/// Collects one producer's output per partition, spilling to disk when the
/// memory pool refuses more.
///
/// ```text
///  push(p, batch) ──try_grow(size) (spillable)──▶ ok ──▶ memory[p].push(batch)
///        │
///        └─ refused ─▶ spill: for every partition q,
///                      memory[q] ──append──▶ writer[q] (one IPC file per q)
///                      reservation.free(); retry try_grow
///                        ├─ ok ──────▶ memory[p].push(batch)
///                        └─ refused ─▶ writer[p].write(batch)
///
///  finish() ─▶ more in memory than its part of half the fixed quarter? spill it
///           ─▶ Vec<Partition>: memory[p] (with its own, fixed reservation)
///                              + writer[p].finish() → SpillFile
///
///  push_watermark(p, t) ─▶ marks[p].push((batches pushed to p so far, t))
///
///  Partition::into_batches() ─▶ the spill file read through mmap (deleted
///        once read), then the memory batches (released from the reservation
///        as handed out): exactly arrival order, so the marks still apply
/// ```
///
/// Empty batches are dropped and partitions that never spilled get no file.
/// After an error from [`PartitionedBuffer::push`] the buffer's content is
/// incomplete: drop it (dropping removes every spill file it made).
#[derive(Debug)]
pub struct PartitionedBuffer {
    // config
    /// Names the reservation and the spill files.
    name: String,
    /// Schema of every pushed batch.
    schema: SchemaRef,
    /// The schema on disk when it differs: dictionaries unpacked (an IPC
    /// File cannot hold a dictionary that changes between batches).
    disk_schema: Option<SchemaRef>,
    // state
    /// One entry per partition index.
    partitions: Vec<PartitionState>,
    // resources
    /// Bytes of all in-memory batches of all partitions.
    reservation: MemoryReservation,
    /// Where spill files go.
    spill: Arc<SpillManager>,
}

impl PartitionedBuffer {
    /// An empty buffer named `name` with `num_partitions` partitions of
    /// batches of `schema`, accounting memory in `pool` and spilling through
    /// `spill`.
    pub fn new(
        name: impl Into<String>,
        schema: SchemaRef,
        num_partitions: usize,
        pool: &Arc<MemoryPool>,
        spill: &Arc<SpillManager>,
    ) -> Self {
        let name = name.into();
        PartitionedBuffer {
            reservation: MemoryReservation::spillable(pool, name.clone()),
            name,
            disk_schema: disk_schema(&schema),
            schema,
            partitions: (0..num_partitions)
                .map(|_| PartitionState::default())
                .collect(),
            spill: Arc::clone(spill),
        }
    }

    #[cfg(test)]
    /// Bytes of batches currently held in memory.
    pub fn memory_size(&self) -> usize {
        self.reservation.size()
    }

    /// Adds `batch` to `partition`, in memory if the pool allows, otherwise
    /// after spilling everything held in memory; a batch that alone does not
    /// fit goes straight to disk.
    ///
    /// # Errors
    ///
    /// [`Error::Plan`] if `partition` is out of range;
    /// [`Error::SchemaMismatch`] if the batch's fields differ from the
    /// buffer's schema; [`Error::Io`] naming the spill file if spilling fails.
    pub fn push(&mut self, partition: usize, batch: RecordBatch) -> Result<()> {
        if partition >= self.partitions.len() {
            return Err(Error::Plan(format!(
                "buffer `{}`: partition {partition} out of range (it has {})",
                self.name,
                self.partitions.len()
            )));
        }
        if batch.schema_ref().fields() != self.schema.fields() {
            return Err(Error::SchemaMismatch {
                location: format!("buffer `{}`", self.name),
                message: format!(
                    "pushed batch has fields {:?}, the buffer has {:?}",
                    batch.schema_ref().fields(),
                    self.schema.fields()
                ),
            });
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = batch.num_rows() as u64;
        let size = batch_bytes(&batch);
        if self.reservation.try_grow(size).is_err() {
            self.spill_memory()?;
            if self.reservation.try_grow(size).is_err() {
                let disk = self.disk_schema.clone();
                self.writer(partition)?.write(&to_disk(&batch, &disk)?)?;
                self.partitions[partition].rows += rows;
                self.partitions[partition].batches += 1;
                return Ok(());
            }
        }
        let state = &mut self.partitions[partition];
        state.memory.push((batch, size));
        state.rows += rows;
        state.batches += 1;
        Ok(())
    }

    /// Records that the producer's watermark reached `event_time` after the
    /// batches pushed to `partition` so far. A consumer replays the marks
    /// while reading, so it sees event time advance as a pipelined run would.
    pub fn push_watermark(&mut self, partition: usize, event_time: i64) {
        if let Some(state) = self.partitions.get_mut(partition) {
            if state.marks.last().is_none_or(|&(_, t)| t < event_time) {
                state.marks.push((state.batches, event_time));
            }
        }
    }

    /// Appends every in-memory batch to its partition's spill file and frees
    /// the reservation.
    fn spill_memory(&mut self) -> Result<()> {
        for index in 0..self.partitions.len() {
            if self.partitions[index].memory.is_empty() {
                continue;
            }
            let memory = std::mem::take(&mut self.partitions[index].memory);
            let disk = self.disk_schema.clone();
            let writer = self.writer(index)?;
            for (batch, _) in &memory {
                writer.write(&to_disk(batch, &disk)?)?;
            }
            let bytes: usize = memory.iter().map(|(_, size)| size).sum();
            self.reservation.shrink(bytes);
            self.spill.metrics().record_state_spilled(bytes as u64);
        }
        Ok(())
    }

    /// The spill writer of `partition`, opened on first use.
    fn writer(&mut self, partition: usize) -> Result<&mut SpillWriter> {
        let state = &mut self.partitions[partition];
        if state.writer.is_none() {
            let name = format!("{}-p{partition}", self.name);
            let schema = self.disk_schema.as_ref().unwrap_or(&self.schema);
            state.writer = Some(self.spill.create_writer(schema, &name)?);
        }
        Ok(state
            .writer
            .as_mut()
            .expect("the writer was opened just above"))
    }

    /// Finishes the spill files and returns one [`Partition`] per partition
    /// index, in order. Each partition takes over the reservation for its
    /// in-memory batches.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming a spill file that could not be finished; all
    /// spill files of this buffer are then removed.
    pub fn finish(mut self) -> Result<Vec<Partition>> {
        // finished partitions are fixed until read: keep them within half
        // the fixed consumers' quarter (shared with the other producers,
        // about one per partition; the other half is for the read-back
        // steps of the operators reading them); a spill here still writes
        // each row once
        let keep = self.reservation.pool().budget()
            / FIXED_SHARE_DIVISOR
            / 2
            / self.partitions.len().max(1);
        if self.reservation.size() > keep {
            self.spill_memory()?;
        }
        let PartitionedBuffer {
            name,
            schema,
            disk_schema,
            partitions,
            mut reservation,
            spill,
        } = self;
        let restore = disk_schema.map(|_| schema);
        let mut finished = Vec::with_capacity(partitions.len());
        for (index, state) in partitions.into_iter().enumerate() {
            let files = match state.writer {
                Some(writer) => vec![writer.finish()?],
                None => Vec::new(),
            };
            let bytes = state.memory.iter().map(|(_, size)| size).sum();
            finished.push(Partition {
                #[cfg(test)]
                rows: state.rows,
                marks: state.marks,
                memory: state.memory,
                files,
                // a finished partition can only be read: its memory is fixed
                reservation: reservation.split_as(
                    bytes,
                    format!("{name}[{index}]"),
                    ConsumerKind::Fixed,
                ),
                spill: Arc::clone(&spill),
                restore: restore.clone(),
            });
        }
        Ok(finished)
    }
}

/// One partition of a finished [`PartitionedBuffer`]: batches still in
/// memory (with their own, fixed [`MemoryReservation`]) and the spill
/// files, each in arrival order.
///
/// Dropping it frees the memory and deletes the files. It keeps the
/// [`SpillManager`] (and so its directory) alive until then.
#[derive(Debug)]
pub struct Partition {
    // state
    /// Rows in memory and on disk.
    #[cfg(test)]
    rows: u64,
    /// Watermark marks: `(batches before it, event time)`.
    marks: Vec<(u64, i64)>,
    /// Batches in memory, in arrival order.
    memory: Vec<MemoryBatch>,
    /// Spill files, in arrival order.
    files: Vec<SpillFile>,
    // resources
    /// Bytes of `memory`.
    reservation: MemoryReservation,
    /// Keeps the spill directory alive while `files` exist.
    spill: Arc<SpillManager>,
    /// The schema to cast spilled batches back to (dictionary columns).
    restore: Option<SchemaRef>,
}

impl Partition {
    #[cfg(test)]
    /// Rows in the partition (memory and disk).
    pub fn num_rows(&self) -> u64 {
        self.rows
    }

    /// The producer's watermarks: `(number of batches of this partition
    /// before it, event time)`, rising, in order.
    pub fn watermarks(&self) -> &[(u64, i64)] {
        &self.marks
    }

    #[cfg(test)]
    /// Number of spill files holding part of this partition (0 or 1 per
    /// producer).
    pub fn spilled_files(&self) -> usize {
        self.files.len()
    }

    /// Reads the partition back.
    ///
    /// Yields the batches of the spill file first (memory-mapped and copied
    /// out of the map when uncompressed, see [`owned_copy`]; decoded
    /// into memory when compressed; pages already read are given back as it
    /// goes and the file is deleted once read),
    /// then the in-memory batches, releasing each from the reservation as it
    /// is handed out. Since a spill moves
    /// everything held in memory to disk, every spilled batch arrived before
    /// every in-memory one: the order is exactly arrival order, one batch
    /// per pushed batch, so [`Partition::watermarks`] positions apply.
    pub fn into_batches(self) -> PartitionReader {
        let Partition {
            memory,
            files,
            reservation,
            spill,
            restore,
            ..
        } = self;
        PartitionReader {
            restore,
            failed: false,
            memory: memory.into_iter(),
            files: files.into_iter(),
            current: None,
            reservation,
            _spill: spill,
        }
    }
}

/// Iterator over a [`Partition`]'s batches; see [`Partition::into_batches`].
///
/// After an error it ends. Dropping it early frees the remaining memory and
/// deletes the remaining files.
#[derive(Debug)]
pub struct PartitionReader {
    // state
    /// Set after an error; the iterator then ends.
    failed: bool,
    // resources
    /// In-memory batches not handed out yet.
    memory: std::vec::IntoIter<MemoryBatch>,
    /// Spill files not opened yet.
    files: std::vec::IntoIter<SpillFile>,
    /// The spill file being read, with its reader; the file is deleted when
    /// this is dropped.
    current: Option<(SpillReader, SpillFile)>,
    /// Bytes of the in-memory batches not handed out yet.
    reservation: MemoryReservation,
    /// Keeps the spill directory alive while files are read.
    _spill: Arc<SpillManager>,
    /// The schema to cast spilled batches back to (dictionary columns).
    restore: Option<SchemaRef>,
}

impl PartitionReader {
    /// Marks the reader failed and passes `e` on.
    fn fail(&mut self, e: Error) -> Option<Result<RecordBatch>> {
        self.failed = true;
        self.current = None;
        Some(Err(e))
    }
}

impl Iterator for PartitionReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some((reader, _file)) = self.current.as_mut() {
                let next = reader.next();
                // pages of batches already handed out leave the resident set
                reader.release_consumed();
                match next {
                    Some(Ok(batch)) => {
                        // An uncompressed batch points into the map: copied
                        // out, it lives in (accounted) anonymous memory and
                        // its file pages leave the resident set at the next
                        // `release_consumed`, however long the consumer
                        // holds it (a join's build side holds everything).
                        let batch = match self._spill.compression() {
                            SpillCompression::None => owned_copy(&batch),
                            _ => batch,
                        };
                        return match &self.restore {
                            None => Some(Ok(batch)),
                            Some(schema) => Some(cast_to(&batch, schema)),
                        };
                    }
                    Some(Err(e)) => return self.fail(e),
                    // Read to the end: dropping the pair deletes the file.
                    None => self.current = None,
                }
            }
            let Some(file) = self.files.next() else { break };
            match file.read() {
                Ok(reader) => self.current = Some((reader, file)),
                Err(e) => return self.fail(e),
            }
        }
        let (batch, size) = self.memory.next()?;
        self.reservation.shrink(size);
        Some(Ok(batch))
    }
}

#[cfg(test)]
mod tests;
