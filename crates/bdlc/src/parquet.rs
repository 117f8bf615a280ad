//! A small Parquet writer for draws: one `DOUBLE` column per scalar quantity, required (no
//! nulls), PLAIN-encoded and uncompressed, in one row group, with the run's comment lines as
//! key-value metadata. pandas (`read_parquet`), polars, pyarrow and ArviZ through pandas read
//! it; `scripts/check_parquet.py` checks a file written by this module against pyarrow.
//!
//! Why not the `parquet` crate: it brings `arrow`'s dependency tree (about a hundred crates),
//! which costs more build time than the whole of `bdlc` on the development machine, for a
//! format of which draws need one column type and one encoding. See `docs/dependencies.md`.
//!
//! Draws arrive row by row (a draw is a row), but Parquet stores each column's values together.
//! The writer keeps neither: each chunk of rows is transposed and appended to a spool file
//! beside the output (`FILE.partial`), and [`ParquetDraws::finish`] copies every column's
//! pieces from the spool into the file, then removes the spool. Memory stays at one chunk of
//! rows whatever the number of draws.
//!
//! The layout (Apache Parquet format 2.x, `parquet.thrift`): the magic `PAR1`, one data page
//! per column (a `PageHeader` in Thrift's compact protocol, then the little-endian doubles),
//! the `FileMetaData` (compact protocol), its length as a little-endian `u32`, and `PAR1`.

use crate::output::io_failure;
use crate::session::Failure;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Parquet's physical type `DOUBLE`.
const TYPE_DOUBLE: i32 = 5;
/// `FieldRepetitionType::REQUIRED`.
const REQUIRED: i32 = 0;
/// `Encoding::PLAIN` and `Encoding::RLE` (the level encoding a data page header names).
const PLAIN: i32 = 0;
const RLE: i32 = 3;
/// `PageType::DATA_PAGE`.
const DATA_PAGE: i32 = 0;
/// `CompressionCodec::UNCOMPRESSED`.
const UNCOMPRESSED: i32 = 0;

/// Thrift compact protocol type codes.
mod compact {
    pub const I32: u8 = 5;
    pub const I64: u8 = 6;
    pub const BINARY: u8 = 8;
    pub const LIST: u8 = 9;
    pub const STRUCT: u8 = 12;
}

/// A Thrift compact-protocol encoder: fields carry the difference to the previous field id of
/// their struct, integers are zigzag varints.
struct Thrift {
    bytes: Vec<u8>,
    /// The last field id of each open struct.
    last_ids: Vec<i16>,
}

impl Thrift {
    fn new() -> Thrift {
        Thrift {
            bytes: Vec::new(),
            last_ids: vec![0],
        }
    }

    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    fn zigzag(value: i64) -> u64 {
        ((value << 1) ^ (value >> 63)) as u64
    }

    fn field(&mut self, id: i16, kind: u8) {
        let last = self.last_ids.last_mut().expect("an open struct");
        let delta = id - *last;
        if (1..=15).contains(&delta) {
            self.bytes.push(((delta as u8) << 4) | kind);
        } else {
            self.bytes.push(kind);
            let zigzag = Thrift::zigzag(i64::from(id));
            self.varint(zigzag);
        }
        *self.last_ids.last_mut().expect("an open struct") = id;
    }

    fn i32(&mut self, id: i16, value: i32) {
        self.field(id, compact::I32);
        self.varint(Thrift::zigzag(i64::from(value)));
    }

    fn i64(&mut self, id: i16, value: i64) {
        self.field(id, compact::I64);
        self.varint(Thrift::zigzag(value));
    }

    fn raw_string(&mut self, text: &str) {
        self.varint(text.len() as u64);
        self.bytes.extend_from_slice(text.as_bytes());
    }

    fn string(&mut self, id: i16, text: &str) {
        self.field(id, compact::BINARY);
        self.raw_string(text);
    }

    fn list(&mut self, id: i16, element: u8, size: usize) {
        self.field(id, compact::LIST);
        if size < 15 {
            self.bytes.push(((size as u8) << 4) | element);
        } else {
            self.bytes.push(0xF0 | element);
            self.varint(size as u64);
        }
    }

    /// Opens a struct that is a field.
    fn begin_field_struct(&mut self, id: i16) {
        self.field(id, compact::STRUCT);
        self.last_ids.push(0);
    }

    /// Opens a struct that is a list element.
    fn begin_element_struct(&mut self) {
        self.last_ids.push(0);
    }

    /// Closes a struct: the stop byte.
    fn end_struct(&mut self) {
        self.bytes.push(0);
        self.last_ids.pop();
    }
}

/// Where one column's page landed in the file.
struct ColumnPlace {
    page_offset: u64,
    total_size: u64,
}

/// A Parquet file of draws being written (see the module's documentation).
pub struct ParquetDraws {
    path: PathBuf,
    spool_path: PathBuf,
    spool: BufWriter<File>,
    names: Vec<String>,
    metadata: Vec<(String, String)>,
    /// Each spooled chunk's offset and number of rows.
    chunks: Vec<(u64, usize)>,
    spool_len: u64,
    rows: usize,
    scratch: Vec<u8>,
}

impl ParquetDraws {
    /// Starts a file of the columns `names`, with `metadata` as its key-value metadata.
    pub fn create(
        path: &Path,
        names: Vec<String>,
        metadata: Vec<(String, String)>,
    ) -> Result<ParquetDraws, Failure> {
        let mut spool_name = path.as_os_str().to_owned();
        spool_name.push(".partial");
        let spool_path = PathBuf::from(spool_name);
        let spool = File::create(&spool_path).map_err(|e| io_failure(&spool_path, &e))?;
        Ok(ParquetDraws {
            path: path.to_path_buf(),
            spool_path,
            spool: BufWriter::with_capacity(1 << 20, spool),
            names,
            metadata,
            chunks: Vec::new(),
            spool_len: 0,
            rows: 0,
            scratch: Vec::new(),
        })
    }

    /// Appends rows (`n_columns` values each, row after row).
    pub fn push_rows(&mut self, rows: &[f64]) -> Result<(), Failure> {
        let n_columns = self.names.len();
        if n_columns == 0 || rows.is_empty() {
            return Ok(());
        }
        let n_rows = rows.len() / n_columns;
        self.scratch.clear();
        self.scratch.reserve(rows.len() * 8);
        for column in 0..n_columns {
            for row in rows.chunks_exact(n_columns) {
                self.scratch.extend_from_slice(&row[column].to_le_bytes());
            }
        }
        self.spool
            .write_all(&self.scratch)
            .map_err(|e| io_failure(&self.spool_path, &e))?;
        self.chunks.push((self.spool_len, n_rows));
        self.spool_len += self.scratch.len() as u64;
        self.rows += n_rows;
        Ok(())
    }

    /// Writes the file from the spool and removes the spool; returns the file's size in bytes.
    pub fn finish(mut self) -> Result<u64, Failure> {
        self.spool
            .flush()
            .map_err(|e| io_failure(&self.spool_path, &e))?;
        let result = self.assemble();
        let _ = std::fs::remove_file(&self.spool_path);
        result
    }

    fn assemble(&mut self) -> Result<u64, Failure> {
        let spool = File::open(&self.spool_path).map_err(|e| io_failure(&self.spool_path, &e))?;
        let path = self.path.clone();
        let file = File::create(&path).map_err(|e| io_failure(&path, &e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let fail = |e: std::io::Error| io_failure(&path, &e);
        out.write_all(b"PAR1").map_err(fail)?;
        let mut offset = 4_u64;
        let page_bytes = self.rows * 8;
        let page_size = i32::try_from(page_bytes).map_err(|_| {
            Failure::run(
                "E0918",
                format!(
                    "{} draws are too many for one Parquet page per column (at most {})",
                    self.rows,
                    i32::MAX / 8
                ),
            )
        })?;
        let mut places = Vec::with_capacity(self.names.len());
        let mut piece = Vec::new();
        for column in 0..self.names.len() {
            let mut header = Thrift::new();
            header.i32(1, DATA_PAGE);
            header.i32(2, page_size);
            header.i32(3, page_size);
            header.begin_field_struct(5);
            header.i32(1, self.rows as i32);
            header.i32(2, PLAIN);
            header.i32(3, RLE);
            header.i32(4, RLE);
            header.end_struct();
            header.bytes.push(0);
            out.write_all(&header.bytes).map_err(fail)?;
            for &(chunk_offset, chunk_rows) in &self.chunks {
                piece.resize(chunk_rows * 8, 0);
                spool
                    .read_exact_at(&mut piece, chunk_offset + (column * chunk_rows * 8) as u64)
                    .map_err(|e| io_failure(&self.spool_path, &e))?;
                out.write_all(&piece).map_err(fail)?;
            }
            let total_size = (header.bytes.len() + page_bytes) as u64;
            places.push(ColumnPlace {
                page_offset: offset,
                total_size,
            });
            offset += total_size;
        }
        let footer = self.file_metadata(&places);
        out.write_all(&footer).map_err(fail)?;
        out.write_all(&(footer.len() as u32).to_le_bytes())
            .map_err(fail)?;
        out.write_all(b"PAR1").map_err(fail)?;
        out.flush().map_err(fail)?;
        Ok(offset + footer.len() as u64 + 8)
    }

    /// The `FileMetaData` struct in the compact protocol.
    fn file_metadata(&self, places: &[ColumnPlace]) -> Vec<u8> {
        let mut meta = Thrift::new();
        meta.i32(1, 1);
        meta.list(2, compact::STRUCT, self.names.len() + 1);
        meta.begin_element_struct();
        meta.string(4, "schema");
        meta.i32(5, self.names.len() as i32);
        meta.end_struct();
        for name in &self.names {
            meta.begin_element_struct();
            meta.i32(1, TYPE_DOUBLE);
            meta.i32(3, REQUIRED);
            meta.string(4, name);
            meta.end_struct();
        }
        meta.i64(3, self.rows as i64);
        meta.list(4, compact::STRUCT, 1);
        meta.begin_element_struct();
        meta.list(1, compact::STRUCT, self.names.len());
        let mut total = 0_u64;
        for (name, place) in self.names.iter().zip(places) {
            total += place.total_size;
            meta.begin_element_struct();
            meta.i64(2, place.page_offset as i64);
            meta.begin_field_struct(3);
            meta.i32(1, TYPE_DOUBLE);
            meta.list(2, compact::I32, 2);
            meta.varint(Thrift::zigzag(i64::from(PLAIN)));
            meta.varint(Thrift::zigzag(i64::from(RLE)));
            meta.list(3, compact::BINARY, 1);
            meta.raw_string(name);
            meta.i32(4, UNCOMPRESSED);
            meta.i64(5, self.rows as i64);
            meta.i64(6, place.total_size as i64);
            meta.i64(7, place.total_size as i64);
            meta.i64(9, place.page_offset as i64);
            meta.end_struct();
            meta.end_struct();
        }
        meta.i64(2, total as i64);
        meta.i64(3, self.rows as i64);
        meta.end_struct();
        if !self.metadata.is_empty() {
            meta.list(5, compact::STRUCT, self.metadata.len());
            for (key, value) in &self.metadata {
                meta.begin_element_struct();
                meta.string(1, key);
                meta.string(2, value);
                meta.end_struct();
            }
        }
        meta.string(6, "bdlc");
        meta.bytes.push(0);
        meta.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values and names of the committed example file `tests/data/draws_small.parquet`.
    fn example() -> (Vec<String>, Vec<f64>) {
        let names = vec![
            "mu".to_string(),
            "sigma".to_string(),
            "theta.1".to_string(),
            "theta.2".to_string(),
        ];
        let rows: Vec<f64> = (0..40)
            .flat_map(|row| {
                let r = f64::from(row);
                [r * 0.5 - 3.0, (r * 0.1).exp(), -r / 7.0, 1e300 / (r + 1.0)]
            })
            .collect();
        (names, rows)
    }

    /// The writer gives, byte for byte, the committed file that pyarrow read back as the values
    /// above (`scripts/check_parquet.py`, its output in `tests/data/draws_small.pyarrow.json`),
    /// whether the rows come in one chunk or several.
    #[test]
    fn the_file_is_the_one_pyarrow_read() {
        let (names, rows) = example();
        let committed =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/draws_small.parquet");
        let expected = std::fs::read(&committed).expect("the committed file");
        let dir = std::env::temp_dir().join(format!("bdl-parquet-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        for chunk_rows in [40, 7] {
            let path = dir.join(format!("draws-{chunk_rows}.parquet"));
            let metadata = vec![("method".to_string(), "test".to_string())];
            let mut writer =
                ParquetDraws::create(&path, names.clone(), metadata).expect("the writer");
            for chunk in rows.chunks(chunk_rows * names.len()) {
                writer.push_rows(chunk).expect("the rows");
            }
            let size = writer.finish().expect("the file");
            let written = std::fs::read(&path).expect("the file");
            assert_eq!(size, written.len() as u64);
            assert!(!dir
                .join(format!("draws-{chunk_rows}.parquet.partial"))
                .exists());
            assert!(written == expected, "chunks of {chunk_rows} rows");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Writes the example file (run with `--ignored` to regenerate it, then check it with
    /// `scripts/check_parquet.py`).
    #[test]
    #[ignore = "writes the committed example file; run by hand after changing the writer"]
    fn write_the_example_file() {
        let (names, rows) = example();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/draws_small.parquet");
        let metadata = vec![("method".to_string(), "test".to_string())];
        let mut writer = ParquetDraws::create(&path, names, metadata).expect("the writer");
        writer.push_rows(&rows).expect("the rows");
        writer.finish().expect("the file");
    }
}
