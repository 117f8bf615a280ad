//! Filling the data block from CSV, Stan-style JSON and NumPy `.npy`/`.npz` files, and
//! validating every declaration.
//!
//! The driver reads the files' bytes; this module parses them and checks each declaration
//! against what it finds. A CSV file's header says which declarations read which of its
//! columns; then one streaming pass (one reused record buffer, no string per cell) parses each
//! cell read once and writes it straight into those declarations' row-major values; only cells
//! that are not numbers keep their text, for the message. Text files must be UTF-8, with `\n`, `\r\n` or `\r` line endings.
//! The problems reported are a missing column or key, a wrong length or shape, an integer expected,
//! NaN or infinity, a value outside the declared bounds, or sizes that disagree. Every problem is
//! a diagnostic naming the file, the column or key and the row, with a label in the data file and
//! another at the declaration; all of them are reported, not just the first.

use crate::npy::{self, NpyArray};
use crate::value::TensorValue;
use bdl_autodiff::Tensor;
use bdl_diagnostics::{did_you_mean, Diagnostic, FileId, Span};
use bdl_ir::ir::{Columns, DataBound, DataDecl, DataDim, Program, SlotId};
use std::collections::HashMap;

/// The contents of one data file, registered in the driver's source map (text files by their
/// text, so that labels show an excerpt; binary ones need not be).
#[derive(Clone, Debug)]
pub struct DataFile {
    /// The name shown in messages (the path as given).
    pub name: String,
    /// The file's contents.
    pub bytes: Vec<u8>,
    /// Its id in the source map, for labels.
    pub file: FileId,
}

impl DataFile {
    /// A data file from its text.
    pub fn from_text(name: impl Into<String>, text: impl Into<String>, file: FileId) -> DataFile {
        DataFile {
            name: name.into(),
            bytes: text.into().into_bytes(),
            file,
        }
    }

    /// The contents as text: the longest valid UTF-8 prefix (all of it once
    /// [`check_utf8`] has passed).
    fn text(&self) -> &str {
        match std::str::from_utf8(&self.bytes) {
            Ok(text) => text,
            Err(error) => std::str::from_utf8(&self.bytes[..error.valid_up_to()]).unwrap_or(""),
        }
    }

    /// The text to show in excerpts: the contents with invalid UTF-8 replaced (offsets before
    /// the first invalid byte are unchanged), or nothing for a binary file.
    pub fn display_text(&self) -> String {
        if self.is_binary() {
            String::new()
        } else {
            String::from_utf8_lossy(&self.bytes).into_owned()
        }
    }

    /// Whether the file holds NumPy arrays (by extension or by its first bytes), not text.
    pub fn is_binary(&self) -> bool {
        matches!(format_of(self), Format::Npy | Format::Npz)
    }
}

/// The validated data: one value per declaration and per size variable, by slot.
#[derive(Clone, Debug, Default)]
pub struct DataSet {
    /// The values by slot.
    pub values: HashMap<SlotId, TensorValue>,
    /// Declarations left unfilled on purpose (observed values absent when predicting).
    pub missing: Vec<SlotId>,
}

/// How strict to be about declarations the files do not hold.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Completeness {
    /// Every declaration must be filled (inference).
    All,
    /// Declarations that are only observed may be absent (posterior prediction on new inputs).
    AllowMissingObserved,
}

/// A parsed data file.
enum Parsed {
    Csv(CsvTable),
    Json(JsonDocument),
    Npy(Vec<NpyArray>),
}

/// A CSV file: its header, and after the streaming pass the values of each declaration it
/// fills (row-major, built as the rows go by), with where each row starts.
struct CsvTable {
    header: Vec<String>,
    /// Each declaration's values by its slot, row-major over its columns; a cell that is not
    /// a number holds NaN here and its text in `bad`.
    built: HashMap<SlotId, Vec<f64>>,
    /// The cells that are not numbers, by column: their row and text.
    bad: Vec<Vec<(usize, String)>>,
    /// The byte offset where each data row starts.
    rows: Vec<usize>,
}

impl CsvTable {
    fn n_rows(&self) -> usize {
        self.rows.len()
    }
}

/// A JSON object of named values.
struct JsonDocument {
    object: serde_json::Map<String, serde_json::Value>,
}

/// Parses `files` and fills every declaration of `program`.
///
/// `observed_only` lists the declarations used only as observed values; with
/// [`Completeness::AllowMissingObserved`] they may be absent.
pub fn load(
    program: &Program,
    files: &[DataFile],
    completeness: Completeness,
    observed_only: &[SlotId],
) -> Result<DataSet, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let parsed: Vec<Option<Parsed>> = files
        .iter()
        .map(|file| match parse_file(file) {
            Ok(parsed) => Some(parsed),
            Err(diagnostic) => {
                diagnostics.push(*diagnostic);
                None
            }
        })
        .collect();
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let mut loader = Loader {
        program,
        files,
        parsed: parsed.into_iter().flatten().collect(),
        data: DataSet::default(),
        sizes: HashMap::new(),
        diagnostics,
        npy_readers: HashMap::new(),
    };
    // Which columns of which CSV file each declaration reads, from the headers; then one pass
    // over each CSV file builds those declarations' values directly.
    let mut plans: Vec<Vec<(SlotId, Vec<usize>)>> = vec![Vec::new(); files.len()];
    for decl in &program.data {
        match loader.find(decl) {
            Some((index, Located::Csv(columns))) => plans[index].push((decl.slot, columns)),
            Some((index, Located::Npy(chosen, _))) => {
                for array in chosen {
                    *loader.npy_readers.entry((index, array)).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    for (index, file) in files.iter().enumerate() {
        if let Parsed::Csv(table) = &mut loader.parsed[index] {
            if let Err(diagnostic) = fill_csv(file, table, &plans[index]) {
                loader.diagnostics.push(*diagnostic);
            }
        }
    }
    if !loader.diagnostics.is_empty() {
        return Err(loader.diagnostics);
    }
    // Declared integers come first so that sizes written with their names are known.
    let (scalars, arrays): (Vec<&DataDecl>, Vec<&DataDecl>) =
        program.data.iter().partition(|decl| decl.rank() == 0);
    for decl in scalars.into_iter().chain(arrays) {
        let allowed_missing = completeness == Completeness::AllowMissingObserved
            && observed_only.contains(&decl.slot);
        loader.load_decl(decl, allowed_missing);
    }
    if loader.diagnostics.iter().any(Diagnostic::is_error) {
        return Err(loader.diagnostics);
    }
    for (slot, size) in loader.sizes {
        loader
            .data
            .values
            .insert(slot, TensorValue::int_scalar(size as f64));
    }
    Ok(loader.data)
}

/// The kinds of data file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
    Npy,
    Npz,
}

/// A file's format: by extension, else by its first bytes (NumPy's or zip's magic, or `{`).
fn format_of(file: &DataFile) -> Format {
    let lower = file.name.to_ascii_lowercase();
    for (extension, format) in [
        (".json", Format::Json),
        (".csv", Format::Csv),
        (".npy", Format::Npy),
        (".npz", Format::Npz),
    ] {
        if lower.ends_with(extension) {
            return format;
        }
    }
    if file.bytes.starts_with(npy::NPY_MAGIC) {
        Format::Npy
    } else if file.bytes.starts_with(npy::ZIP_MAGIC) {
        Format::Npz
    } else if file.bytes.trim_ascii_start().starts_with(b"{") {
        Format::Json
    } else {
        Format::Csv
    }
}

fn parse_file(file: &DataFile) -> Result<Parsed, Box<Diagnostic>> {
    match format_of(file) {
        Format::Json => {
            check_utf8(file)?;
            parse_json(file).map(Parsed::Json)
        }
        Format::Csv => {
            check_utf8(file)?;
            parse_csv(file).map(Parsed::Csv)
        }
        Format::Npy => {
            let stem = std::path::Path::new(&file.name)
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            npy::read_npy(&stem, &file.bytes)
                .map(|array| Parsed::Npy(vec![array]))
                .map_err(|error| npy_error(file, &error))
        }
        Format::Npz => npy::read_npz(&file.bytes)
            .map(Parsed::Npy)
            .map_err(|error| npy_error(file, &error)),
    }
}

fn npy_error(file: &DataFile, error: &npy::NpyError) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::error(
            "E0401",
            format!("cannot read `{}` as NumPy data: it {}", file.name, error.message),
        )
        .with_label(Span::new(file.file, 0..0), format!("at byte {}", error.offset))
        .with_hint("`.npy` files hold one array, `.npz` archives several (`np.savez`); little-endian float64, float32, int64, int32 or bool, in C order"),
    )
}

/// Text data must be UTF-8: the first invalid byte is reported with its line and column.
fn check_utf8(file: &DataFile) -> Result<(), Box<Diagnostic>> {
    let Err(error) = std::str::from_utf8(&file.bytes) else {
        return Ok(());
    };
    let offset = error.valid_up_to();
    let before = &file.bytes[..offset];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n' || b == b'\r')
        .map_or(0, |at| at + 1);
    let line = 1 + line_breaks(before);
    let column = 1 + std::str::from_utf8(&before[line_start..]).map_or(0, |t| t.chars().count());
    Err(Box::new(
        Diagnostic::error(
            "E0401",
            format!(
                "`{}` is not UTF-8 text: byte 0x{:02X} at line {line}, column {column} is not valid UTF-8",
                file.name, file.bytes[offset]
            ),
        )
        .with_label(
            Span::new(file.file, offset..(offset + 1).min(file.bytes.len())),
            "not UTF-8",
        )
        .with_hint("save the file as UTF-8; data files are CSV or JSON text, or NumPy `.npy`/`.npz` arrays"),
    ))
}

/// The number of line breaks in `bytes`, counting `\r\n` once and a lone `\r` as one.
fn line_breaks(bytes: &[u8]) -> usize {
    let mut count = 0;
    let mut previous = 0u8;
    for &byte in bytes {
        if byte == b'\n' && previous != b'\r' || byte == b'\r' {
            count += 1;
        }
        previous = byte;
    }
    count
}

/// The end of the line starting at `start`: the first `\n` or `\r`, or the end of the file.
fn line_end(bytes: &[u8], start: usize) -> usize {
    let start = start.min(bytes.len());
    bytes[start..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map_or(bytes.len(), |n| start + n)
}

/// The byte offset of a 1-based line and column.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (index, piece) in text.split_inclusive('\n').enumerate() {
        if index + 1 == line {
            let within: usize = piece
                .chars()
                .take(column.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return offset + within;
        }
        offset += piece.len();
    }
    text.len()
}

fn parse_json(file: &DataFile) -> Result<JsonDocument, Box<Diagnostic>> {
    let text = file.text();
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(object)) => Ok(JsonDocument { object }),
        Ok(_) => {
            let end = text.len().min(1);
            Err(Box::new(
                Diagnostic::error("E0401", format!("`{}` is not a JSON object", file.name))
                    .with_label(Span::new(file.file, 0..end), "expected `{` here")
                    .with_hint(
                        "Stan-style JSON data is one object whose keys are the declarations' names",
                    ),
            ))
        }
        Err(error) => {
            let offset = offset_of(text, error.line(), error.column());
            let start = offset.min(text.len());
            let end = (start + 1).min(text.len());
            Err(Box::new(
                Diagnostic::error("E0401", format!("cannot parse `{}` as JSON", file.name))
                    .with_label(Span::new(file.file, start..end), error.to_string())
                    .with_hint(
                        "check the file's syntax: keys in double quotes, no trailing commas",
                    ),
            ))
        }
    }
}

fn csv_reader(file: &DataFile) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(file.bytes.as_slice())
}

/// Reads a CSV file's header; its rows are read by [`fill_csv`] once the declarations that
/// read them are known.
fn parse_csv(file: &DataFile) -> Result<CsvTable, Box<Diagnostic>> {
    let mut reader = csv_reader(file);
    let header: Vec<String> = match reader.byte_headers() {
        Ok(header) => header
            .iter()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect(),
        Err(error) => return Err(Box::new(csv_error(file, &error))),
    };
    if header.iter().all(String::is_empty) {
        return Err(Box::new(
            Diagnostic::error("E0401", format!("`{}` has no header row", file.name))
                .with_label(Span::new(file.file, 0..0), "expected column names here")
                .with_hint("the first line of a CSV data file names its columns"),
        ));
    }
    let bad = vec![Vec::new(); header.len()];
    Ok(CsvTable {
        header,
        built: HashMap::new(),
        bad,
        rows: Vec::new(),
    })
}

/// Streams a CSV file's rows once: each cell some declaration of `plans` reads is parsed once
/// and copied into those declarations' row-major values; cells that are not numbers keep their
/// text in `bad`. Every row is checked for its number of fields, read or not.
fn fill_csv(
    file: &DataFile,
    table: &mut CsvTable,
    plans: &[(SlotId, Vec<usize>)],
) -> Result<(), Box<Diagnostic>> {
    let mut needed = vec![false; table.header.len()];
    for (_, columns) in plans {
        for &column in columns {
            needed[column] = true;
        }
    }
    // A first guess at the number of rows from the first line's length keeps the buffers from
    // growing many times over.
    let line_guess = line_end(&file.bytes, 0).max(1);
    let row_guess = (file.bytes.len() / line_guess).min(1 << 24);
    let mut built: Vec<Vec<f64>> = plans
        .iter()
        .map(|(_, columns)| Vec::with_capacity(row_guess * columns.len()))
        .collect();
    table.rows = Vec::with_capacity(row_guess);
    let mut values = vec![0.0; table.header.len()];
    let mut reader = csv_reader(file);
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => return Err(Box::new(csv_error(file, &error))),
        }
        let row = table.rows.len();
        table
            .rows
            .push(record.position().map_or(0, |p| p.byte() as usize));
        for (column, cell) in record.iter().enumerate() {
            if !needed[column] {
                continue;
            }
            values[column] = match parse_number(cell) {
                Some(value) => value,
                None => {
                    table.bad[column].push((row, String::from_utf8_lossy(cell).into_owned()));
                    f64::NAN
                }
            };
        }
        for ((_, columns), target) in plans.iter().zip(&mut built) {
            target.extend(columns.iter().map(|&column| values[column]));
        }
    }
    for ((slot, _), values) in plans.iter().zip(built) {
        table.built.insert(*slot, values);
    }
    Ok(())
}

fn csv_error(file: &DataFile, error: &csv::Error) -> Diagnostic {
    let (start, message) = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => (
            pos.as_ref().map_or(0, |p| p.byte() as usize),
            format!("this row has {len} fields but the header has {expected_len}"),
        ),
        _ => (
            error.position().map_or(0, |p| p.byte() as usize),
            error.to_string(),
        ),
    };
    let start = start.min(file.bytes.len());
    let end = line_end(&file.bytes, start);
    Diagnostic::error("E0401", format!("cannot read `{}` as CSV", file.name))
        .with_label(Span::new(file.file, start..end), message)
        .with_hint("every row of a CSV data file needs one value per column")
}

/// Where a value came from, for messages: a CSV cell or a JSON key.
struct Origin<'a> {
    file: &'a DataFile,
    /// "column `x`" or "key `x`".
    what: String,
    span: Span,
}

struct Loader<'a> {
    program: &'a Program,
    files: &'a [DataFile],
    parsed: Vec<Parsed>,
    data: DataSet,
    /// Size variables bound so far, with the declaration that bound them.
    sizes: HashMap<SlotId, usize>,
    diagnostics: Vec<Diagnostic>,
    /// How many declarations still read each NumPy array, by file and array: the last one
    /// takes the array's values instead of copying them.
    npy_readers: HashMap<(usize, usize), usize>,
}

impl Loader<'_> {
    fn slot_name(&self, slot: SlotId) -> String {
        self.program
            .slots
            .get(slot.index())
            .map_or_else(|| format!("%{}", slot.0), |s| s.name.clone())
    }

    fn load_decl(&mut self, decl: &DataDecl, allowed_missing: bool) {
        let found = self.find(decl);
        let Some((index, origin_values)) = found else {
            if allowed_missing {
                self.data.missing.push(decl.slot);
            } else {
                self.report_missing(decl);
            }
            return;
        };
        let files = self.files;
        let file = &files[index];
        let mut parsed = std::mem::take(&mut self.parsed);
        let result = match (&mut parsed[index], origin_values) {
            (Parsed::Csv(table), Located::Csv(columns)) => {
                self.read_csv_columns(decl, file, table, &columns)
            }
            (Parsed::Json(_), Located::Json(value, span)) => {
                self.read_json_value(decl, file, &value, span)
            }
            (Parsed::Npy(arrays), Located::Npy(chosen, stacked)) => {
                self.read_npy_arrays(decl, (index, file), arrays, &chosen, stacked)
            }
            _ => None,
        };
        self.parsed = parsed;
        let Some((tensor, origin)) = result else {
            return;
        };
        if !self.check_values(decl, &tensor, &origin) {
            return;
        }
        if !self.check_dims(decl, tensor.shape(), &origin) {
            return;
        }
        let value = if decl.is_integer() {
            TensorValue::int(tensor)
        } else {
            TensorValue::real(tensor)
        };
        self.data.values.insert(decl.slot, value);
    }

    /// Finds the file holding `decl`: the first whose columns or keys name it.
    fn find(&self, decl: &DataDecl) -> Option<(usize, Located)> {
        for (index, parsed) in self.parsed.iter().enumerate() {
            match parsed {
                Parsed::Csv(table) => {
                    let wanted: Vec<usize> = match &decl.columns {
                        Columns::Own => table
                            .header
                            .iter()
                            .position(|h| *h == decl.name)
                            .into_iter()
                            .collect(),
                        Columns::Names(names) => {
                            let found: Vec<usize> = names
                                .iter()
                                .filter_map(|name| table.header.iter().position(|h| h == name))
                                .collect();
                            if found.len() == names.len() {
                                found
                            } else {
                                Vec::new()
                            }
                        }
                        Columns::Prefix(prefix) => table
                            .header
                            .iter()
                            .enumerate()
                            .filter(|(_, h)| h.starts_with(prefix.as_str()))
                            .map(|(i, _)| i)
                            .collect(),
                    };
                    if !wanted.is_empty() {
                        return Some((index, Located::Csv(wanted)));
                    }
                }
                Parsed::Json(document) => {
                    if let Some(value) = document.object.get(&decl.name) {
                        let span = json_key_span(&self.files[index], &decl.name);
                        return Some((index, Located::Json(value.clone(), span)));
                    }
                }
                Parsed::Npy(arrays) => {
                    let position = |name: &str| arrays.iter().position(|a| a.name == name);
                    let vector = |i: &usize| arrays[*i].shape.len() == 1;
                    match &decl.columns {
                        Columns::Own => {
                            if let Some(found) = position(&decl.name) {
                                return Some((index, Located::Npy(vec![found], false)));
                            }
                        }
                        Columns::Names(names) => {
                            let found: Vec<usize> =
                                names.iter().filter_map(|name| position(name)).collect();
                            if found.len() == names.len() && found.iter().all(vector) {
                                return Some((index, Located::Npy(found, true)));
                            }
                        }
                        Columns::Prefix(prefix) => {
                            let found: Vec<usize> = (0..arrays.len())
                                .filter(|&i| arrays[i].name.starts_with(prefix.as_str()))
                                .filter(vector)
                                .collect();
                            if !found.is_empty() {
                                return Some((index, Located::Npy(found, true)));
                            }
                        }
                    }
                }
            }
        }
        None
    }

    fn report_missing(&mut self, decl: &DataDecl) {
        let mut available: Vec<String> = Vec::new();
        for parsed in &self.parsed {
            match parsed {
                Parsed::Csv(table) => available.extend(table.header.iter().cloned()),
                Parsed::Json(document) => available.extend(document.object.keys().cloned()),
                Parsed::Npy(arrays) => available.extend(arrays.iter().map(|a| a.name.clone())),
            }
        }
        let names: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
        let wanted = match &decl.columns {
            Columns::Own => format!("`{}`", decl.name),
            Columns::Names(list) => {
                let missing: Vec<String> = list
                    .iter()
                    .filter(|name| !available.contains(name))
                    .map(|name| format!("`{name}`"))
                    .collect();
                format!("column {}", missing.join(", "))
            }
            Columns::Prefix(prefix) => format!("columns starting with `{prefix}`"),
        };
        let mut diagnostic = if names.is_empty() {
            Diagnostic::error(
                "E0402",
                format!("no data for `{}`: no data file was given", decl.name),
            )
            .with_label(decl.span, "declared here")
            .with_hint("name a file with `data from \"file.csv\"` or pass `--data FILE`")
        } else {
            Diagnostic::error(
                "E0402",
                format!(
                    "data `{}` not found: {} is not in {}",
                    decl.name,
                    wanted,
                    names.join(", ")
                ),
            )
            .with_label(decl.span, "declared here")
        };
        if diagnostic.hint.is_none() {
            let target = match &decl.columns {
                Columns::Names(list) => list
                    .iter()
                    .find(|n| !available.contains(n))
                    .cloned()
                    .unwrap_or_default(),
                _ => decl.name.clone(),
            };
            let hint = match did_you_mean(&target, available.iter().map(String::as_str)) {
                Some(close) => format!(
                    "did you mean `{close}`? the file has: {}",
                    preview(&available)
                ),
                None => format!("the data files have: {}", preview(&available)),
            };
            diagnostic = diagnostic.with_hint(hint);
        }
        self.diagnostics.push(diagnostic);
    }

    fn read_csv_columns<'f>(
        &mut self,
        decl: &DataDecl,
        file: &'f DataFile,
        table: &mut CsvTable,
        columns: &[usize],
    ) -> Option<(Tensor, Origin<'f>)> {
        let names: Vec<&str> = columns.iter().map(|&c| table.header[c].as_str()).collect();
        let header_span = Span::new(file.file, 0..line_end(&file.bytes, 0));
        let what = if names.len() == 1 {
            format!("column `{}`", names[0])
        } else {
            format!(
                "columns {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let n_rows = table.n_rows();
        let mut ok = true;
        let mut problems: Vec<(usize, usize, &str)> = columns
            .iter()
            .flat_map(|&column| {
                table.bad[column]
                    .iter()
                    .map(move |(row, cell)| (*row, column, cell.as_str()))
            })
            .collect();
        // In file order, row by row and then by the declaration's order of columns.
        problems.sort_by_key(|&(row, column, _)| {
            (row, columns.iter().position(|&c| c == column).unwrap_or(0))
        });
        for (row, column, cell) in problems {
            ok = false;
            let start = table.rows[row];
            let length = line_end(&file.bytes, start) - start;
            let problem = if cell.is_empty() {
                "an empty cell".to_string()
            } else {
                format!("`{cell}`")
            };
            self.diagnostics.push(
                Diagnostic::error(
                    "E0405",
                    format!(
                        "`{}` row {} column `{}` holds {problem}, not a number",
                        file.name,
                        row + 1,
                        table.header[column]
                    ),
                )
                .with_label(cell_span(file, start, length, column), "not a number")
                .with_secondary(decl.span, format!("`{}` is declared here", decl.name))
                .with_hint("missing values are not allowed in data: remove the row or fill it in"),
            );
        }
        if !ok {
            return None;
        }
        let origin = Origin {
            file,
            what,
            span: header_span,
        };
        let shape: Vec<usize> = match (decl.rank(), columns.len()) {
            (0, 1) if n_rows == 1 => Vec::new(),
            (0, _) => {
                self.shape_error(decl, &origin, &format!("{n_rows} rows"), "a single value");
                return None;
            }
            (1, 1) => vec![n_rows],
            (1, k) => {
                self.shape_error(decl, &origin, &format!("{k} columns"), "one column");
                return None;
            }
            (_, k) => vec![n_rows, k],
        };
        let data = table.built.remove(&decl.slot)?;
        let tensor = Tensor::from_shape(&shape, data).ok()?;
        Some((tensor, origin))
    }

    /// A declaration from NumPy arrays: one array of any rank by its own name, or 1-D arrays
    /// of equal length `stacked` as the columns of a matrix.
    fn read_npy_arrays<'f>(
        &mut self,
        decl: &DataDecl,
        (file_index, file): (usize, &'f DataFile),
        arrays: &mut [NpyArray],
        chosen: &[usize],
        stacked: bool,
    ) -> Option<(Tensor, Origin<'f>)> {
        // Whether this declaration is the last to read each chosen array.
        let mut last = Vec::with_capacity(chosen.len());
        for &array in chosen {
            let remaining = self.npy_readers.entry((file_index, array)).or_default();
            *remaining = remaining.saturating_sub(1);
            last.push(*remaining == 0);
        }
        let names: Vec<String> = chosen
            .iter()
            .map(|&i| format!("`{}`", arrays[i].name))
            .collect();
        let what = if names.len() == 1 {
            format!("array {}", names[0])
        } else {
            format!("arrays {}", names.join(", "))
        };
        let origin = Origin {
            file,
            what,
            span: Span::new(file.file, 0..0),
        };
        if !stacked {
            let array = &arrays[chosen[0]];
            if array.shape.len() != decl.rank() {
                let found = match array.shape.len() {
                    0 => "a single number".to_string(),
                    1 => format!("a vector of {}", array.shape[0]),
                    _ => format!("an array of shape {:?}", array.shape),
                };
                let wanted = match decl.rank() {
                    0 => "a single number",
                    1 => "a 1-D array",
                    _ => "a 2-D array",
                };
                self.shape_error(decl, &origin, &found, wanted);
                return None;
            }
            let shape = array.shape.clone();
            let data = if last[0] {
                std::mem::take(&mut arrays[chosen[0]].data)
            } else {
                array.data.clone()
            };
            let tensor = Tensor::from_shape(&shape, data).ok()?;
            return Some((tensor, origin));
        }
        let n_rows = arrays[chosen[0]].data.len();
        if let Some(&other) = chosen.iter().find(|&&i| arrays[i].data.len() != n_rows) {
            self.shape_error(
                decl,
                &origin,
                &format!(
                    "arrays of {} and {} elements",
                    n_rows,
                    arrays[other].data.len()
                ),
                "columns of equal length",
            );
            return None;
        }
        let shape = match (decl.rank(), chosen.len()) {
            (1, 1) => vec![n_rows],
            (2, k) => vec![n_rows, k],
            (_, k) => {
                self.shape_error(
                    decl,
                    &origin,
                    &format!("{k} arrays"),
                    "one array per column",
                );
                return None;
            }
        };
        let mut data = Vec::with_capacity(n_rows * chosen.len());
        for row in 0..n_rows {
            data.extend(chosen.iter().map(|&i| arrays[i].data[row]));
        }
        let tensor = Tensor::from_shape(&shape, data).ok()?;
        Some((tensor, origin))
    }

    fn read_json_value<'f>(
        &mut self,
        decl: &DataDecl,
        file: &'f DataFile,
        value: &serde_json::Value,
        span: Span,
    ) -> Option<(Tensor, Origin<'f>)> {
        let origin = Origin {
            file,
            what: format!("key `{}`", decl.name),
            span,
        };
        let mut data = Vec::new();
        let mut shape = Vec::new();
        if let Err((row, problem)) = flatten_json(value, 0, &mut shape, &mut data) {
            let position = row.map_or(String::new(), |row| format!(" row {}", row + 1));
            self.diagnostics.push(
                Diagnostic::error(
                    "E0408",
                    format!("`{}` key `{}`{position} {problem}", file.name, decl.name),
                )
                .with_label(span, problem.clone())
                .with_secondary(
                    decl.span,
                    format!("declared as `{}`", decl.type_text(&self.program.slots)),
                )
                .with_hint(
                    "numbers, or lists of numbers; a matrix is a list of rows of equal length",
                ),
            );
            return None;
        }
        if shape.len() != decl.rank() {
            let found = match shape.len() {
                0 => "a single number".to_string(),
                1 => format!("a list of {}", shape[0]),
                _ => format!("nested lists of shape {shape:?}"),
            };
            let wanted = match decl.rank() {
                0 => "a single number".to_string(),
                1 => "a list of numbers".to_string(),
                _ => "a list of rows".to_string(),
            };
            self.shape_error(decl, &origin, &found, &wanted);
            return None;
        }
        let tensor = Tensor::from_shape(&shape, data).ok()?;
        Some((tensor, origin))
    }

    fn shape_error(&mut self, decl: &DataDecl, origin: &Origin, found: &str, wanted: &str) {
        self.diagnostics.push(
            Diagnostic::error(
                "E0403",
                format!(
                    "`{}` {} holds {found}, but `{}` is declared as `{}`, which needs {wanted}",
                    origin.file.name,
                    origin.what,
                    decl.name,
                    decl.type_text(&self.program.slots)
                ),
            )
            .with_label(origin.span, format!("{found} here"))
            .with_secondary(decl.type_span, "declared here"),
        );
    }

    /// Finite values, integers where declared, inside the declared bounds.
    /// The value of a bound: a number, or a declared integer read earlier (or a size variable
    /// bound by an earlier declaration); `None` when it is not known yet.
    fn bound_value(&self, bound: &Option<DataBound>) -> Option<f64> {
        match bound.as_ref()? {
            DataBound::Value(value) => Some(*value),
            DataBound::Slot(slot) => self
                .data
                .values
                .get(slot)
                .and_then(|value| value.tensor.item().ok())
                .or_else(|| self.sizes.get(slot).map(|&size| size as f64)),
        }
    }

    fn check_values(&mut self, decl: &DataDecl, tensor: &Tensor, origin: &Origin) -> bool {
        let (lower, upper) = (self.bound_value(&decl.lower), self.bound_value(&decl.upper));
        let row_of = |flat: usize| {
            let per_row = if tensor.rank() == 2 {
                tensor.shape()[1]
            } else {
                1
            };
            flat / per_row
        };
        for (flat, &value) in tensor.data().iter().enumerate() {
            let problem = if !value.is_finite() {
                Some((
                    "E0405",
                    format!("{value}"),
                    "data must be finite numbers".to_string(),
                ))
            } else if decl.is_integer() && value.fract() != 0.0 {
                Some((
                    "E0404",
                    format!("{value}"),
                    format!(
                        "`{}` is declared `int`: round the data or declare it `real`/`vector`",
                        decl.name
                    ),
                ))
            } else if lower.is_some_and(|low| value < low) || upper.is_some_and(|high| value > high)
            {
                Some((
                    "E0406",
                    format!("{value}"),
                    format!(
                        "`{}` is declared `{}`",
                        decl.name,
                        decl.type_text(&self.program.slots)
                    ),
                ))
            } else {
                None
            };
            if let Some((code, shown, hint)) = problem {
                let message = match code {
                    "E0405" => "is not finite",
                    "E0404" => "is not an integer",
                    _ => "is outside the declared bounds",
                };
                let position = if tensor.rank() == 0 {
                    String::new()
                } else {
                    format!(" row {}", row_of(flat) + 1)
                };
                self.diagnostics.push(
                    Diagnostic::error(
                        code,
                        format!(
                            "`{}` {}{position}: {shown} {message}",
                            origin.file.name, origin.what
                        ),
                    )
                    .with_label(
                        self.value_span(origin, tensor, flat),
                        format!("{shown} {message}"),
                    )
                    .with_secondary(decl.type_span, "declared here")
                    .with_hint(hint),
                );
                return false;
            }
        }
        true
    }

    /// The span of one value: its CSV cell when the file is CSV, else the key.
    fn value_span(&self, origin: &Origin, tensor: &Tensor, flat: usize) -> Span {
        let index = self.files.iter().position(|f| f.file == origin.file.file);
        if let Some(Parsed::Csv(table)) = index.and_then(|i| self.parsed.get(i)) {
            let per_row = if tensor.rank() == 2 {
                tensor.shape()[1]
            } else {
                1
            };
            let row = flat / per_row;
            let column_name = if per_row == 1 {
                origin
                    .what
                    .split('`')
                    .nth(1)
                    .unwrap_or_default()
                    .to_string()
            } else {
                origin
                    .what
                    .split('`')
                    .nth(1 + 2 * (flat % per_row))
                    .unwrap_or_default()
                    .to_string()
            };
            if let (Some(&start), Some(column)) = (
                table.rows.get(row),
                table.header.iter().position(|h| *h == column_name),
            ) {
                let length = line_end(&origin.file.bytes, start) - start;
                return cell_span(origin.file, start, length, column);
            }
        }
        origin.span
    }

    /// Checks the declared sizes against `shape`, binding size variables.
    fn check_dims(&mut self, decl: &DataDecl, shape: &[usize], origin: &Origin) -> bool {
        for (axis, (dim, &actual)) in decl.dims.iter().zip(shape).enumerate() {
            let expected = match dim {
                DataDim::Any => continue,
                DataDim::Fixed(size) => Some((*size, "the declaration".to_string())),
                DataDim::Slot(slot) => {
                    if let Some(value) = self.data.values.get(slot) {
                        Some((
                            value.as_usize().unwrap_or(0),
                            format!("`{}`", self.slot_name(*slot)),
                        ))
                    } else if let Some(&bound) = self.sizes.get(slot) {
                        Some((
                            bound,
                            format!(
                                "`{}`, bound by an earlier declaration,",
                                self.slot_name(*slot)
                            ),
                        ))
                    } else {
                        self.sizes.insert(*slot, actual);
                        None
                    }
                }
            };
            if let Some((size, source)) = expected {
                if size != actual {
                    let axis_name = if decl.rank() == 2 {
                        if axis == 0 {
                            "rows"
                        } else {
                            "columns"
                        }
                    } else {
                        "elements"
                    };
                    self.diagnostics.push(
                        Diagnostic::error(
                            "E0407",
                            format!(
                                "`{}` {} has {actual} {axis_name}, but {source} says {size}",
                                origin.file.name, origin.what
                            ),
                        )
                        .with_label(origin.span, format!("{actual} {axis_name}"))
                        .with_secondary(
                            decl.type_span,
                            format!("declared as `{}`", decl.type_text(&self.program.slots)),
                        )
                        .with_hint("every declaration sharing a size must have the same length"),
                    );
                    return false;
                }
            }
        }
        true
    }
}

/// Where a declaration was found.
enum Located {
    /// These columns of a CSV file.
    Csv(Vec<usize>),
    /// This JSON value, with the span of its key.
    Json(serde_json::Value, Span),
    /// These arrays of a NumPy file; `true` when they are 1-D arrays stacked as columns.
    Npy(Vec<usize>, bool),
}

/// Parses a CSV cell as a number; `NA`, `nan`, `null` and empty cells are not numbers, while
/// infinities parse (and are then reported as not finite, with their location).
fn parse_number(cell: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(cell).ok()?;
    match text.parse::<f64>() {
        Ok(value) if !value.is_nan() => Some(value),
        _ => None,
    }
}

/// The span of cell `column` in the line starting at `start`; the whole line when quoting makes
/// the columns ambiguous.
fn cell_span(file: &DataFile, start: usize, length: usize, column: usize) -> Span {
    let text = file.text();
    let Some(line) = text.get(start..(start + length).min(text.len())) else {
        return Span::new(file.file, start..start + length);
    };
    if !line.contains('"') {
        let mut offset = start;
        for (index, cell) in line.split(',').enumerate() {
            if index == column {
                let trimmed_start = cell.len() - cell.trim_start().len();
                let inner = cell.trim();
                let begin = offset + trimmed_start;
                return Span::new(file.file, begin..begin + inner.len().max(1).min(length));
            }
            offset += cell.len() + 1;
        }
    }
    Span::new(file.file, start..start + length)
}

/// The span of `"key"` in a JSON text (the first occurrence followed by a colon).
fn json_key_span(file: &DataFile, key: &str) -> Span {
    let quoted = format!("\"{key}\"");
    let text = file.text();
    let mut from = 0;
    while let Some(found) = text[from..].find(&quoted) {
        let start = from + found;
        let after = text[start + quoted.len()..].trim_start();
        if after.starts_with(':') {
            return Span::new(file.file, start..start + quoted.len());
        }
        from = start + quoted.len();
    }
    Span::new(file.file, 0..0)
}

/// Flattens nested JSON lists of numbers row-major, recording the shape; rejects ragged lists,
/// strings, nulls and objects. An error carries the index of the outermost list's element (the
/// row) it was found in, when there is one.
fn flatten_json(
    value: &serde_json::Value,
    depth: usize,
    shape: &mut Vec<usize>,
    data: &mut Vec<f64>,
) -> Result<(), (Option<usize>, String)> {
    const MAX_RANK: usize = 8;
    let fail = |problem: String| Err((None, problem));
    match value {
        serde_json::Value::Number(number) => {
            if depth < shape.len() {
                return fail("has lists of different depths".to_string());
            }
            match number.as_f64() {
                Some(number) => data.push(number),
                None => return fail("holds a number out of range".to_string()),
            }
            Ok(())
        }
        serde_json::Value::Array(items) => {
            if depth >= MAX_RANK {
                return fail(format!("is nested deeper than {MAX_RANK} levels"));
            }
            if depth == shape.len() {
                if !data.is_empty() {
                    return fail("has lists of different depths".to_string());
                }
                shape.push(items.len());
            } else if shape[depth] != items.len() {
                return fail(format!(
                    "is ragged: a list of {} where the first has {}",
                    items.len(),
                    shape[depth]
                ));
            }
            for (index, item) in items.iter().enumerate() {
                flatten_json(item, depth + 1, shape, data)
                    .map_err(|(row, problem)| (row.or((depth == 0).then_some(index)), problem))?;
            }
            Ok(())
        }
        serde_json::Value::Null => {
            fail("holds `null` (missing values are not allowed)".to_string())
        }
        serde_json::Value::String(text) => fail(format!("holds the string {text:?}, not a number")),
        serde_json::Value::Bool(_) => fail("holds a boolean, not a number".to_string()),
        serde_json::Value::Object(_) => fail("holds an object, not a number or a list".to_string()),
    }
}

/// A short list of names for hints.
fn preview(names: &[String]) -> String {
    let shown: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
    if names.len() > 8 {
        format!("{}, … ({} in all)", shown.join(", "), names.len())
    } else {
        shown.join(", ")
    }
}
