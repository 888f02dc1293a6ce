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
mod tests {
    use super::*;
    use crate::spill::{SpillCompression, SpillManager};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("score", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("flag", DataType::Boolean, true),
        ]))
    }

    fn batch(start: i64, rows: i64) -> RecordBatch {
        let ids = Int64Array::from_iter((start..start + rows).map(|i| (i % 7 != 3).then_some(i)));
        let scores = Float64Array::from_iter(
            (start..start + rows).map(|i| (i % 5 != 0).then_some(i as f64 / 4.0)),
        );
        let names = StringArray::from_iter(
            (start..start + rows).map(|i| (i % 11 != 2).then(|| format!("name-{i}"))),
        );
        let flags = BooleanArray::from_iter(
            (start..start + rows).map(|i| (i % 3 != 1).then_some(i % 2 == 0)),
        );
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(ids),
                Arc::new(scores),
                Arc::new(names),
                Arc::new(flags),
            ],
        )
        .unwrap()
    }

    /// A manager writing uncompressed files (read back zero-copy).
    fn plain() -> Arc<SpillManager> {
        SpillManager::try_with_compression(None, SpillCompression::None).unwrap()
    }

    #[test]
    fn compressed_files_round_trip_and_are_smaller() {
        // repetitive rows, as spilled state mostly is
        let batches: Vec<RecordBatch> = (0..8).map(|i| batch(i * 2000, 2000)).collect();
        let plain_bytes = write_file(&plain(), &batches).bytes();
        for compression in [SpillCompression::Lz4, SpillCompression::Zstd] {
            let manager = SpillManager::try_with_compression(None, compression).unwrap();
            assert_eq!(manager.compression(), compression);
            let file = write_file(&manager, &batches);
            assert_eq!(file.rows(), 16_000);
            assert!(
                file.bytes() * 3 < plain_bytes * 2,
                "{compression}: {} bytes, uncompressed {plain_bytes}",
                file.bytes()
            );
            let mut reader = file.read().unwrap();
            let back: Vec<RecordBatch> = reader.by_ref().collect::<Result<_>>().unwrap();
            assert_eq!(back, batches, "{compression}");
            assert_eq!(reader.batch(3).unwrap(), batches[3], "{compression}");
        }
    }

    #[test]
    fn compression_names_parse_and_a_wrong_one_is_named() {
        for (name, want) in [
            ("lz4", SpillCompression::Lz4),
            ("ZSTD", SpillCompression::Zstd),
            ("none", SpillCompression::None),
        ] {
            let got: SpillCompression = name.parse().unwrap();
            assert_eq!(got, want);
            assert_eq!(got.to_string(), name.to_ascii_lowercase());
        }
        assert_eq!(SpillCompression::default(), SpillCompression::None);
        let err = "gzip".parse::<SpillCompression>().unwrap_err().to_string();
        assert!(
            err.contains("spill-compression") && err.contains("gzip"),
            "{err}"
        );
    }

    fn write_file(manager: &SpillManager, batches: &[RecordBatch]) -> SpillFile {
        let mut writer = manager.create_writer(&schema(), "test").unwrap();
        for b in batches {
            writer.write(b).unwrap();
        }
        writer.finish().unwrap()
    }

    /// True if `ptr` lies inside `[base, base + len)`.
    fn inside(ptr: *const u8, base: *const u8, len: usize) -> bool {
        let (ptr, base) = (ptr as usize, base as usize);
        ptr >= base && ptr < base + len
    }

    /// Resident kB of the mapping in this process (`/proc/self/smaps`).
    fn resident_pages(reader: &SpillReader) -> usize {
        let base = reader.data.as_ptr() as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = lo <= base && base < hi;
                    continue;
                }
            }
            if inside && line.starts_with("Rss:") {
                return line.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
        panic!("mapping not found")
    }

    #[test]
    fn released_pages_leave_the_resident_set_and_batches_stay_readable() {
        let manager = plain();
        let batches: Vec<RecordBatch> = (0..8).map(|i| batch(i * 5000, 5000)).collect();
        let file = write_file(&manager, &batches);
        let mut reader = file.read().unwrap();
        let mut back = Vec::new();
        for _ in 0..6 {
            back.push(reader.next().unwrap().unwrap());
        }
        // touch every byte handed out so far
        let sum: f64 = back
            .iter()
            .map(|b| {
                b.column(1)
                    .as_primitive::<Float64Type>()
                    .iter()
                    .flatten()
                    .sum::<f64>()
            })
            .sum();
        let before = resident_pages(&reader);
        reader.release_consumed();
        let after = resident_pages(&reader);
        assert!(
            after + 80 < before,
            "five batches' pages released (kB): {before} -> {after}"
        );
        reader.release_consumed(); // nothing more to release: a no-op
                                   // batches handed out before still read the same values
        assert_eq!(back, batches[..6]);
        let again: f64 = back
            .iter()
            .map(|b| {
                b.column(1)
                    .as_primitive::<Float64Type>()
                    .iter()
                    .flatten()
                    .sum::<f64>()
            })
            .sum();
        assert_eq!(sum, again);
        let rest: Vec<RecordBatch> = reader.collect::<Result<_>>().unwrap();
        assert_eq!(rest, batches[6..]);
    }

    #[test]
    fn round_trip_is_equal_and_zero_copy() {
        let manager = plain();
        let full = batch(0, 1000);
        let batches = vec![batch(-50, 100), full.slice(317, 45), batch(7, 1), full];
        let file = write_file(&manager, &batches);
        assert_eq!(file.rows(), 1146);
        assert_eq!(file.bytes(), std::fs::metadata(file.path()).unwrap().len());
        let metrics = manager.metrics();
        assert_eq!(
            (metrics.files(), metrics.rows(), metrics.bytes()),
            (1, 1146, file.bytes())
        );

        let mut reader = file.read().unwrap();
        assert_eq!(reader.schema(), schema());
        assert_eq!(reader.num_batches(), 4);
        let (base, len) = (reader.data.as_ptr(), reader.data.len());
        assert_eq!(len as u64, file.bytes());
        let back: Vec<RecordBatch> = reader.by_ref().collect::<Result<_>>().unwrap();
        assert_eq!(back, batches);

        for b in &back {
            for (i, ptr) in buffer_pointers(b).into_iter().enumerate() {
                assert!(
                    inside(ptr, base, len),
                    "buffer {i} is a copy, not a slice of the map"
                );
                assert_eq!((ptr as usize - base as usize) % ALIGNMENT, 0, "buffer {i}");
            }
        }
    }

    /// Every buffer of a [`batch`]-shaped batch: values, offsets, nulls.
    fn buffer_pointers(b: &RecordBatch) -> Vec<*const u8> {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let scores = b.column(1).as_primitive::<Float64Type>();
        let names = b.column(2).as_string::<i32>();
        let flags = b.column(3).as_boolean();
        let mut pointers = vec![
            ids.values().inner().as_ptr(),
            scores.values().inner().as_ptr(),
            names.offsets().inner().inner().as_ptr(),
            names.values().as_ptr(),
            flags.values().inner().as_ptr(),
        ];
        let columns = [b.column(0), b.column(1), b.column(2), b.column(3)];
        pointers.extend(
            columns
                .iter()
                .filter_map(|c| c.nulls())
                .map(|n| n.buffer().as_ptr()),
        );
        pointers
    }

    #[test]
    fn owned_copy_is_equal_and_shares_nothing_with_the_map() {
        let manager = plain();
        let full = batch(0, 1000);
        // a slice, a single row and whole batches, all with nulls
        let batches = vec![full.slice(317, 45), batch(7, 1), full];
        let file = write_file(&manager, &batches);
        let mut reader = file.read().unwrap();
        let (base, len) = (reader.data.as_ptr(), reader.data.len());
        let back: Vec<RecordBatch> = reader.by_ref().collect::<Result<_>>().unwrap();
        for (b, want) in back.iter().zip(&batches) {
            let copy = owned_copy(b);
            assert_eq!(&copy, want);
            assert_eq!(copy.schema(), schema());
            for (i, ptr) in buffer_pointers(&copy).into_iter().enumerate() {
                assert!(
                    !inside(ptr, base, len),
                    "buffer {i} still points into the map"
                );
            }
        }
        drop(reader);
        drop(file);
        // the copies outlive the file and its map
        assert_eq!(owned_copy(&back[2]), batches[2]);
    }

    #[test]
    fn reading_forward_gives_consumed_pages_back_and_earlier_batches_stay_valid() {
        let manager = plain();
        // about 5 MiB in 40 batches
        let batches: Vec<RecordBatch> = (0..40).map(|i| batch(i * 4000, 4000)).collect();
        let file = write_file(&manager, &batches);
        let mut reader = file.read().unwrap();
        let mut read = Vec::new();
        for b in reader.by_ref() {
            read.push(b.unwrap());
        }
        let released = reader.released_bytes();
        assert!(released as u64 >= file.bytes() / 2, "released {released}");
        assert!((released as u64) < file.bytes(), "the last blocks are kept");
        // batches in given-back pages read the same (paged in from the file)
        assert_eq!(read, batches);
        drop(reader);
        drop(file);
        assert_eq!(read, batches, "and after the file is gone");
    }

    #[test]
    fn batches_outlive_reader_and_file() {
        let manager = plain();
        let file = write_file(&manager, &[batch(0, 10)]);
        let path = file.path().to_path_buf();
        let back: Vec<RecordBatch> = file.read().unwrap().collect::<Result<_>>().unwrap();
        assert!(path.exists());
        drop(file);
        assert!(!path.exists(), "dropping the SpillFile deletes it");
        assert_eq!(back, vec![batch(0, 10)]);
    }

    #[test]
    fn truncated_file_is_an_error_naming_the_path() {
        let manager = plain();
        let file = write_file(&manager, &[batch(0, 500), batch(500, 500)]);
        let original = std::fs::read(file.path()).unwrap();
        for keep in [0, 5, 17, original.len() / 2, original.len() - 1] {
            std::fs::write(file.path(), &original[..keep]).unwrap();
            let err = file.read().unwrap_err();
            assert!(
                matches!(&err, Error::Io { path, .. } if path == file.path()),
                "{err:?}"
            );
            assert!(
                err.to_string().contains(&file.path().display().to_string()),
                "{err}"
            );
        }
    }

    #[test]
    fn file_with_body_cut_out_is_an_error_not_a_panic() {
        // Keep the footer but drop part of the data before it: the blocks the
        // footer lists then point past the end or at the wrong bytes.
        let manager = plain();
        let file = write_file(&manager, &[batch(0, 500), batch(500, 500)]);
        let original = std::fs::read(file.path()).unwrap();
        let mut cut = original[..400].to_vec();
        cut.extend_from_slice(&original[original.len() - 600..]);
        std::fs::write(file.path(), &cut).unwrap();
        let result = file.read().and_then(|r| r.collect::<Result<Vec<_>>>());
        let err = result.unwrap_err();
        assert!(
            err.to_string().contains(&file.path().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let manager = plain();
        let file = write_file(&manager, &[batch(0, 300), batch(300, 20)]);
        let original = std::fs::read(file.path()).unwrap();
        let mut errors = 0;
        for pos in (0..original.len()).step_by(7) {
            for value in [0x00, 0xFF, 0x7F] {
                let mut corrupt = original.clone();
                corrupt[pos] = value;
                std::fs::write(file.path(), &corrupt).unwrap();
                let result = std::panic::catch_unwind(|| {
                    file.read().and_then(|r| r.collect::<Result<Vec<_>>>())
                });
                let result =
                    result.unwrap_or_else(|_| panic!("panicked at byte {pos} = {value:#x}"));
                if let Err(err) = result {
                    errors += 1;
                    assert!(
                        err.to_string().contains(&file.path().display().to_string()),
                        "{err}"
                    );
                }
            }
        }
        assert!(errors > 0);
    }

    #[test]
    fn dropped_writer_removes_partial_file() {
        let manager = plain();
        let mut writer = manager.create_writer(&schema(), "partial").unwrap();
        writer.write(&batch(0, 100)).unwrap();
        assert_eq!(writer.rows(), 100);
        let path = writer.path().to_path_buf();
        assert!(path.exists());
        drop(writer);
        assert!(!path.exists());
        assert_eq!(manager.metrics().files(), 0);
    }

    #[test]
    fn wrong_schema_is_rejected() {
        let manager = plain();
        let mut writer = manager.create_writer(&schema(), "x").unwrap();
        let other = RecordBatch::try_from_iter([(
            "id",
            Arc::new(Int64Array::from(vec![1])) as arrow_array::ArrayRef,
        )])
        .unwrap();
        let err = writer.write(&other).unwrap_err();
        assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
        // The writer is still usable.
        writer.write(&batch(0, 3)).unwrap();
        assert_eq!(writer.finish().unwrap().rows(), 3);
    }

    #[test]
    fn disk_full_is_an_error_and_removes_the_partial_file() {
        let Ok(full) = OpenOptions::new().write(true).open("/dev/full") else {
            eprintln!("no /dev/full on this system; skipping");
            return;
        };
        let manager = plain();
        let path = manager.dir().join("full.arrow");
        std::fs::write(&path, b"").unwrap();
        let metrics = Arc::clone(manager.metrics());
        // The header is small enough to sit in the BufWriter.
        let mut writer =
            SpillWriter::with_file(path.clone(), full, &schema(), None, metrics).unwrap();
        let err = writer.write(&batch(0, 10_000)).unwrap_err();
        assert!(
            matches!(&err, Error::Io { path: p, .. } if *p == path),
            "{err:?}"
        );
        assert!(err.to_string().contains("No space left"), "{err}");
        assert!(!path.exists(), "the partial file is removed at once");
        // Later calls fail too, naming the file.
        let err = writer.write(&batch(0, 1)).unwrap_err();
        assert!(
            matches!(&err, Error::Io { path: p, .. } if *p == path),
            "{err:?}"
        );
        let err = writer.finish().unwrap_err();
        assert!(
            matches!(&err, Error::Io { path: p, .. } if *p == path),
            "{err:?}"
        );
        assert_eq!(manager.metrics().files(), 0);
    }

    #[test]
    fn disk_full_at_finish_is_an_error() {
        let Ok(full) = OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let manager = plain();
        let path = manager.dir().join("full.arrow");
        std::fs::write(&path, b"").unwrap();
        let metrics = Arc::clone(manager.metrics());
        let mut writer =
            SpillWriter::with_file(path.clone(), full, &schema(), None, metrics).unwrap();
        writer.write(&batch(0, 2)).unwrap(); // still buffered
        let err = writer.finish().unwrap_err();
        assert!(
            matches!(&err, Error::Io { path: p, .. } if *p == path),
            "{err:?}"
        );
        assert!(!path.exists());
    }

    #[test]
    fn empty_file_round_trips() {
        let manager = plain();
        let file = write_file(&manager, &[]);
        assert_eq!(file.rows(), 0);
        let mut reader = file.read().unwrap();
        assert_eq!(reader.num_batches(), 0);
        assert!(reader.next().is_none());
    }
}
