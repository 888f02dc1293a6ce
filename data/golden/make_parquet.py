"""Writes the golden Parquet files in data/golden/parquet/ (run once; the
files are committed). Needs pyarrow (`python3 -m venv v && v/bin/pip install
pyarrow`), an independent writer, so weir's reader is checked against files it
did not write itself.

- codec_<name>.parquet: the same 1,000 rows compressed with each codec real
  files use, with page CRC checksums.
- crc_corrupt.parquet: uncompressed, plain-encoded, with page checksums, and
  one byte of row 500's `speed` flipped after writing: without checking the
  CRC a reader returns a wrong value silently.
"""

import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

OUT = pathlib.Path(__file__).parent / "parquet"
OUT.mkdir(exist_ok=True)

N = 1000
table = pa.table(
    {
        "vehicle_id": pa.array([i % 7 for i in range(N)], pa.int64()),
        "event_time": pa.array(
            [1_700_000_000_000 + i * 100 for i in range(N)], pa.timestamp("ms", tz="UTC")
        ),
        "speed": pa.array([(i * 37 % 1000) / 10.0 for i in range(N)], pa.float64()),
    }
)

for codec in ["gzip", "lz4", "brotli", "snappy", "zstd"]:
    pq.write_table(
        table,
        OUT / f"codec_{codec}.parquet",
        compression=codec,
        row_group_size=400,
        write_page_checksum=True,
    )

path = OUT / "crc_corrupt.parquet"
pq.write_table(
    table,
    path,
    compression="none",
    use_dictionary=False,
    column_encoding={"vehicle_id": "PLAIN", "event_time": "PLAIN", "speed": "PLAIN"},
    row_group_size=N,
    write_page_checksum=True,
)
data = bytearray(path.read_bytes())
needle = pa.array([table["speed"][500].as_py()], pa.float64()).buffers()[1].to_pybytes()
at = bytes(data).index(needle)
data[at + 7] ^= 0x01  # the sign/exponent byte: 50.0 becomes another number
path.write_bytes(bytes(data))
print("flipped byte", at + 7, "of", path)
