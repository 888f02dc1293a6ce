//! Spill files: writing record batches to an Arrow IPC file and reading them
//! back without copying.
//!
//! Owns [`SpillWriter`], [`SpillFile`] and [`SpillReader`]. Files use the
//! Arrow IPC *file* format with 64-byte aligned buffers, so a reader can
//! memory-map a file; uncompressed, the arrays it hands out point into the
//! map, compressed (LZ4 or Zstandard buffers, the manager's choice) they
//! are decoded into memory of their own. May use [`crate::error`] and the
//! parent module's metrics.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_ipc::writer::{FileWriter, IpcWriteOptions};
use arrow_ipc::{Block, CompressionType, MessageHeader, MetadataVersion};
use arrow_schema::{ArrowError, SchemaRef};

use super::SpillMetrics;
use crate::error::{Error, Result};

/// Buffer alignment in spill files: the strictest Arrow allows, so every
/// buffer in a page-aligned map is aligned for its type and needs no copy.
const ALIGNMENT: usize = 64;

/// `ARROW1`, which starts and ends every IPC file.
const ARROW_MAGIC: &[u8; 6] = b"ARROW1";

/// Writes record batches to one spill file.
///
/// Created by [`super::SpillManager::create_writer`]. [`SpillWriter::finish`]
/// completes the file and returns its [`SpillFile`]. A writer that is dropped
/// unfinished, or whose write failed, removes its partial file; after a
/// failed write every later call fails too.
pub struct SpillWriter {
    // config
    /// The file being written.
    path: PathBuf,
    /// Schema every batch must have.
    schema: SchemaRef,
    // state
    /// Rows written so far.
    rows: u64,
    /// The IPC writer; `None` once finished or after a failure.
    writer: Option<FileWriter<BufWriter<File>>>,
    /// True once [`SpillWriter::finish`] succeeded: the file now belongs to a
    /// [`SpillFile`] and must not be removed here.
    handed_over: bool,
    // resources
    /// Updated when the file is finished.
    metrics: Arc<SpillMetrics>,
}

impl std::fmt::Debug for SpillWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .field("open", &self.writer.is_some())
            .finish()
    }
}

impl SpillWriter {
    /// Creates `path` (which must not exist) and writes the IPC header.
    pub(super) fn create(
        path: PathBuf,
        schema: &SchemaRef,
        codec: Option<CompressionType>,
        metrics: Arc<SpillMetrics>,
    ) -> Result<SpillWriter> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600) // spilled rows are the user's data: owner only
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        SpillWriter::with_file(path, file, schema, codec, metrics)
    }

    /// Writes the IPC header to `file`, which is (or stands in for) `path`.
    /// On failure `path` is removed.
    fn with_file(
        path: PathBuf,
        file: File,
        schema: &SchemaRef,
        codec: Option<CompressionType>,
        metrics: Arc<SpillMetrics>,
    ) -> Result<SpillWriter> {
        let mut spill = SpillWriter {
            path,
            schema: Arc::clone(schema),
            rows: 0,
            writer: None,
            handed_over: false,
            metrics,
        };
        // Dropping `spill` on the error paths below removes the file.
        let options = IpcWriteOptions::try_new(ALIGNMENT, false, MetadataVersion::V5)
            .and_then(|o| o.try_with_compression(codec))
            .map_err(|e| spill.write_error(e))?;
        let writer = FileWriter::try_new_with_options(BufWriter::new(file), schema, options)
            .map_err(|e| spill.write_error(e))?;
        spill.writer = Some(writer);
        Ok(spill)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `batch`.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaMismatch`] if the batch's fields differ from the
    /// writer's schema; [`Error::Io`] naming the file if writing fails (e.g.
    /// disk full), in which case the partial file is removed at once.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.schema_ref().fields() != self.schema.fields() {
            return Err(Error::SchemaMismatch {
                location: format!("spill file {}", self.path.display()),
                message: format!(
                    "batch has fields {:?}, the file has {:?}",
                    batch.schema_ref().fields(),
                    self.schema.fields()
                ),
            });
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(self.failed_earlier());
        };
        match writer.write(batch) {
            Ok(()) => {
                self.rows += batch.num_rows() as u64;
                Ok(())
            }
            Err(e) => {
                let err = self.write_error(e);
                self.discard();
                Err(err)
            }
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the footer, flushes, and returns the finished file; updates
    /// the [`SpillMetrics`]. Does not `fsync`: spill files never outlive the
    /// process.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file; the partial file is removed.
    pub fn finish(mut self) -> Result<SpillFile> {
        let Some(writer) = self.writer.take() else {
            return Err(self.failed_earlier());
        };
        // `into_inner` writes the footer and flushes the `BufWriter`.
        let file = writer
            .into_inner()
            .map_err(|e| self.write_error(e))?
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        let bytes = file.metadata().map_err(|e| Error::io(&self.path, e))?.len();
        drop(file);
        self.metrics.record_file(bytes, self.rows);
        self.handed_over = true;
        Ok(SpillFile {
            path: std::mem::take(&mut self.path),
            rows: self.rows,
            bytes,
        })
    }

    /// Maps an Arrow error from writing to an error naming the file.
    fn write_error(&self, e: ArrowError) -> Error {
        match e {
            ArrowError::IoError(_, source) => Error::io(&self.path, source),
            other => Error::Arrow(ArrowError::IpcError(format!(
                "writing spill file {}: {other}",
                self.path.display()
            ))),
        }
    }

    /// The error for using a writer whose earlier write failed.
    fn failed_earlier(&self) -> Error {
        Error::io(
            &self.path,
            io::Error::other("an earlier write to this spill file failed; the file was removed"),
        )
    }

    /// Closes and removes the partial file.
    fn discard(&mut self) {
        // Dropping the `BufWriter` may try to flush into the file we are about
        // to remove; its error is ignored by `BufWriter` itself.
        self.writer = None;
        // Best effort: the directory is removed with the manager anyway.
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for SpillWriter {
    fn drop(&mut self) {
        if !self.handed_over {
            self.discard();
        }
    }
}

/// A finished spill file on disk; deleted when dropped.
///
/// Read it back with [`SpillFile::read`]. Batches already handed out by a
/// reader stay valid after the file is deleted (the mapping keeps the data
/// until the last of them is dropped).
#[derive(Debug)]
pub struct SpillFile {
    // config
    /// Where the file is.
    path: PathBuf,
    /// Rows in the file.
    rows: u64,
    /// Size of the file in bytes.
    bytes: u64,
}

impl SpillFile {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Size of the file in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Memory-maps the file and returns a reader over its batches. The
    /// batches' buffers are slices of the map, not copies.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file if it cannot be opened or mapped, or if
    /// it is truncated or corrupt.
    pub fn read(&self) -> Result<SpillReader> {
        SpillReader::open(&self.path)
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        // Best effort: the directory is removed with the manager anyway.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads the batches of a spill file, in the order they were written.
///
/// An iterator of `Result<RecordBatch>`. The file is memory-mapped; every
/// batch's buffers are zero-copy slices of the map, and the map stays alive
/// until the reader and all batches it returned are dropped. After an error
/// the iterator ends.
pub struct SpillReader {
    // config
    /// The file being read, for errors.
    path: PathBuf,
    /// The batches' schema, from the footer.
    schema: SchemaRef,
    /// The record batch blocks listed in the footer.
    blocks: Vec<Block>,
    // state
    /// Index of the next block to decode.
    next_block: usize,
    /// Bytes from the start of the map whose pages were released (see
    /// [`SpillReader::release_consumed`]).
    released: usize,
    // resources
    /// The whole mapped file.
    data: Buffer,
    /// Decodes blocks; holds the schema and any dictionaries.
    decoder: FileDecoder,
}

impl std::fmt::Debug for SpillReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillReader")
            .field("path", &self.path)
            .field("batches", &self.blocks.len())
            .field("next_block", &self.next_block)
            .finish()
    }
}

impl SpillReader {
    /// Maps `path` and reads its footer and dictionaries.
    fn open(path: &Path) -> Result<SpillReader> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        // Smallest possible file: magic + padding, footer length, magic.
        if len < 8 + 4 + 6 {
            return Err(corrupt(path, format!("{len} bytes is too short")));
        }
        // SAFETY: spill files are private to this process: created in its own
        // temporary directory, never modified once finished, and only removed
        // (which keeps an existing map valid on the platforms we support).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let data = Buffer::from(bytes::Bytes::from_owner(map));
        SpillReader::decode_footer(path, data)
    }

    /// Checks the framing, reads the footer, schema and dictionaries of the
    /// IPC file in `data`.
    fn decode_footer(path: &Path, data: Buffer) -> Result<SpillReader> {
        let len = data.len();
        if len < 8 + 4 + 6 || data[..6] != ARROW_MAGIC[..] {
            return Err(corrupt(path, "missing the leading ARROW1 magic"));
        }
        let trailer: [u8; 10] = data[len - 10..]
            .try_into()
            .expect("a 10-byte range converts to [u8; 10]");
        let footer_len = read_footer_length(trailer).map_err(|e| arrow_corrupt(path, e))?;
        let footer_start = (len - 10)
            .checked_sub(footer_len)
            .filter(|start| *start >= 8)
            .ok_or_else(|| corrupt(path, format!("footer length {footer_len} is too large")))?;
        let footer = arrow_ipc::root_as_footer(&data[footer_start..len - 10])
            .map_err(|e| corrupt(path, format!("unreadable footer: {e}")))?;
        let ipc_schema = footer
            .schema()
            .ok_or_else(|| corrupt(path, "the footer has no schema"))?;
        let schema =
            arrow_ipc::convert::try_fb_to_schema(ipc_schema).map_err(|e| arrow_corrupt(path, e))?;
        let schema = Arc::new(schema);
        let mut decoder = FileDecoder::new(Arc::clone(&schema), footer.version());
        for block in footer.dictionaries().iter().flatten() {
            let block_data = checked_block(path, &data, block)?;
            guard(path, || decoder.read_dictionary(block, &block_data))?;
        }
        let blocks = footer
            .recordBatches()
            .ok_or_else(|| corrupt(path, "the footer lists no record batches"))?
            .iter()
            .copied()
            .collect();
        Ok(SpillReader {
            path: path.to_path_buf(),
            schema,
            blocks,
            next_block: 0,
            released: 0,
            data,
            decoder,
        })
    }

    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Number of batches in the file.
    pub fn num_batches(&self) -> usize {
        self.blocks.len()
    }

    /// True once every batch was handed out.
    pub fn is_finished(&self) -> bool {
        self.next_block >= self.blocks.len()
    }

    /// Decodes the batches not handed out yet, without advancing the
    /// reader (a checkpoint reads what is still on disk and leaves the
    /// reader where it was).
    pub fn peek_rest(&self) -> Result<Vec<RecordBatch>> {
        (self.next_block..self.blocks.len())
            .map(|i| self.decode(i))
            .collect()
    }

    /// Drops the resident pages of the batches handed out before the last
    /// one (the last may still be in use), so that a file read forward once
    /// does not pile up in the process's resident set. Batches still holding
    /// such pages stay valid: the map is private and read-only and the file
    /// never changes, so a page touched again is read back from the file.
    pub fn release_consumed(&mut self) {
        let Some(last) = self.next_block.checked_sub(1) else {
            return;
        };
        let Ok(upto) = usize::try_from(self.blocks[last].offset()) else {
            return;
        };
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096);
        let end = upto.min(self.data.len()) & !(page - 1);
        if end <= self.released {
            return;
        }
        let base = self.data.as_ptr() as usize;
        if !base.is_multiple_of(page) {
            return;
        }
        // SAFETY: `data` is the whole private read-only mapping made by
        // `open` (page-aligned at `base`), and [released, end) lies within
        // it; MADV_DONTNEED on such a mapping only drops cached pages, which
        // are faulted back unchanged from the file if read again.
        let rc = unsafe {
            libc::madvise(
                (base + self.released) as *mut libc::c_void,
                end - self.released,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            self.released = end;
        }
    }

    /// Bytes at the start of the file whose pages were given back.
    pub fn released_bytes(&self) -> usize {
        self.released
    }

    /// Decodes batch `index` (counted from 0 in the order written) without
    /// moving the reader: random access for lookups in sorted files.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file if `index` is past the last batch or
    /// the block is corrupt.
    pub fn batch(&self, index: usize) -> Result<RecordBatch> {
        if index >= self.blocks.len() {
            return Err(corrupt(
                &self.path,
                format!("batch {index} asked of {} batches", self.blocks.len()),
            ));
        }
        self.decode(index)
    }

    /// Decodes the block at `index`.
    fn decode(&self, index: usize) -> Result<RecordBatch> {
        let block = &self.blocks[index];
        let block_data = checked_block(&self.path, &self.data, block)?;
        let batch = guard(&self.path, || {
            self.decoder.read_record_batch(block, &block_data)
        })?;
        batch.ok_or_else(|| corrupt(&self.path, format!("block {index} holds no record batch")))
    }
}

impl Iterator for SpillReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_block >= self.blocks.len() {
            return None;
        }
        // a file read forward keeps only the pages of the last batch or two
        self.release_consumed();
        let result = self.decode(self.next_block);
        self.next_block = match result {
            Ok(_) => self.next_block + 1,
            Err(_) => self.blocks.len(),
        };
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.blocks.len() - self.next_block;
        (0, Some(left))
    }
}

/// A deep copy of `batch` whose buffers are all newly allocated (none
/// shares memory with `batch`, e.g. with a spill file's map).
///
/// A batch decoded from an uncompressed spill file borrows the file's
/// pages; a consumer that keeps it (a join's build side) would keep those
/// pages resident outside the memory pool's view. The copy costs one pass
/// over the bytes, which the pool accounts like any other batch.
pub fn owned_copy(batch: &RecordBatch) -> RecordBatch {
    let columns: Vec<arrow_array::ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| {
            let data = column.to_data();
            let mut copy =
                arrow_data::transform::MutableArrayData::new(vec![&data], false, data.len());
            copy.try_extend(0, 0, data.len())
                .expect("copying an array into one of its own length cannot overflow its offsets");
            arrow_array::make_array(copy.freeze())
        })
        .collect();
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(batch.schema(), columns, &options)
        .expect("a column-by-column copy has the batch's schema and row count")
}

/// An [`Error::Io`] of kind `InvalidData` for a corrupt file.
fn corrupt(path: &Path, message: impl Into<String>) -> Error {
    Error::io(
        path,
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("corrupt spill file: {}", message.into()),
        ),
    )
}

/// [`corrupt`] wrapping an Arrow decoding error.
fn arrow_corrupt(path: &Path, e: ArrowError) -> Error {
    match e {
        ArrowError::IoError(_, source) => Error::io(path, source),
        other => corrupt(path, other.to_string()),
    }
}

/// Runs an Arrow decoding step, turning its error or panic into
/// [`corrupt`]. [`checked_block`] rules out the out-of-range slices we know
/// of; the panic guard covers malformed input that Arrow asserts on instead
/// of reporting (e.g. validating an offsets buffer whose corrupted length is
/// not a multiple of the offset width), so a bad file is an error rather than
/// a crash. The decoding steps only read the immutable map, so no state is
/// left half-updated by an unwind.
fn guard<T>(path: &Path, step: impl FnOnce() -> Result<T, ArrowError>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(result) => result.map_err(|e| arrow_corrupt(path, e)),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the decoder panicked".to_string());
            Err(corrupt(path, message))
        }
    }
}

/// The bytes of `block` (message header and body), after checking that the
/// block and every buffer its message lists lie inside the file and are
/// aligned, so the decoder never slices out of range and never copies.
fn checked_block(path: &Path, data: &Buffer, block: &Block) -> Result<Buffer> {
    let bad = |what: &str| corrupt(path, format!("block at offset {}: {what}", block.offset()));
    let offset = usize::try_from(block.offset()).map_err(|_| bad("negative offset"))?;
    let meta_len = usize::try_from(block.metaDataLength()).map_err(|_| bad("negative header"))?;
    let body_len = usize::try_from(block.bodyLength()).map_err(|_| bad("negative body"))?;
    let end = offset
        .checked_add(meta_len)
        .and_then(|n| n.checked_add(body_len))
        .filter(|end| *end <= data.len())
        .ok_or_else(|| bad("extends past the end of the file"))?;
    // Our writer aligns every block, header and buffer; anything else is
    // corruption (and would make the decoder copy, or panic).
    if offset % ALIGNMENT != 0 || meta_len % ALIGNMENT != 0 {
        return Err(bad("not aligned"));
    }
    // Encapsulated message: [0xFFFFFFFF] <i32 length> <flatbuffer> <padding>.
    let meta = &data[offset..offset + meta_len];
    let flatbuffer = match meta {
        [0xFF, 0xFF, 0xFF, 0xFF, _, _, _, _, rest @ ..] => rest,
        [_, _, _, _, rest @ ..] if meta.len() >= 8 => rest,
        _ => return Err(bad("header too short")),
    };
    let message = arrow_ipc::root_as_message(flatbuffer)
        .map_err(|e| bad(&format!("unreadable message header: {e}")))?;
    let batch = match message.header_type() {
        MessageHeader::RecordBatch => message.header_as_record_batch(),
        MessageHeader::DictionaryBatch => message
            .header_as_dictionary_batch()
            .and_then(|dictionary| dictionary.data()),
        _ => None,
    };
    if let Some(buffers) = batch.and_then(|batch| batch.buffers()) {
        for buffer in buffers.iter() {
            let start = usize::try_from(buffer.offset()).ok();
            let in_body = start
                .zip(usize::try_from(buffer.length()).ok())
                .and_then(|(start, len)| start.checked_add(len))
                .is_some_and(|buffer_end| buffer_end <= body_len);
            if !in_body {
                return Err(bad("a buffer lies outside the message body"));
            }
            if start.is_some_and(|start| start % ALIGNMENT != 0) {
                return Err(bad("a buffer is not aligned"));
            }
        }
    }
    Ok(data.slice_with_length(offset, end - offset))
}

#[cfg(test)]
mod tests;
