//! Filling the data block from CSV and Stan-style JSON texts, and validating every declaration.
//!
//! The driver reads the files; this module parses their text and checks each declaration
//! against what it finds: a missing column or key, a wrong length or shape, an integer expected,
//! NaN or infinity, a value outside the declared bounds, or sizes that disagree. Every problem is
//! a diagnostic naming the file, the column or key and the row, with a label in the data file and
//! another at the declaration; all of them are reported, not just the first.

use crate::value::TensorValue;
use bdl_autodiff::Tensor;
use bdl_diagnostics::{did_you_mean, Diagnostic, FileId, Span};
use bdl_ir::ir::{Columns, DataBound, DataDecl, DataDim, Program, SlotId};
use std::collections::HashMap;

/// The text of one data file, registered in the driver's source map.
#[derive(Clone, Debug)]
pub struct DataFile {
    /// The name shown in messages (the path as given).
    pub name: String,
    /// The file's contents.
    pub text: String,
    /// Its id in the source map, for labels.
    pub file: FileId,
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
}

/// A CSV file: its header and its cells by column, with where each row starts.
struct CsvTable {
    header: Vec<String>,
    columns: Vec<Vec<String>>,
    /// Byte offset and length of each data row's line.
    rows: Vec<(usize, usize)>,
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
    };
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

/// Whether a file is JSON: by extension, or by its first character.
fn is_json(file: &DataFile) -> bool {
    let lower = file.name.to_ascii_lowercase();
    if lower.ends_with(".json") {
        return true;
    }
    if lower.ends_with(".csv") {
        return false;
    }
    file.text.trim_start().starts_with('{')
}

fn parse_file(file: &DataFile) -> Result<Parsed, Box<Diagnostic>> {
    if is_json(file) {
        parse_json(file).map(Parsed::Json)
    } else {
        parse_csv(file).map(Parsed::Csv)
    }
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
    match serde_json::from_str::<serde_json::Value>(&file.text) {
        Ok(serde_json::Value::Object(object)) => Ok(JsonDocument { object }),
        Ok(_) => {
            let end = file.text.len().min(1);
            Err(Box::new(
                Diagnostic::error("E0401", format!("`{}` is not a JSON object", file.name))
                    .with_label(Span::new(file.file, 0..end), "expected `{` here")
                    .with_hint(
                        "Stan-style JSON data is one object whose keys are the declarations' names",
                    ),
            ))
        }
        Err(error) => {
            let offset = offset_of(&file.text, error.line(), error.column());
            let start = offset.min(file.text.len());
            let end = (start + 1).min(file.text.len());
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

fn parse_csv(file: &DataFile) -> Result<CsvTable, Box<Diagnostic>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(file.text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(header) => header.iter().map(str::to_string).collect(),
        Err(error) => return Err(Box::new(csv_error(file, &error))),
    };
    if header.iter().all(String::is_empty) {
        return Err(Box::new(
            Diagnostic::error("E0401", format!("`{}` has no header row", file.name))
                .with_label(Span::new(file.file, 0..0), "expected column names here")
                .with_hint("the first line of a CSV data file names its columns"),
        ));
    }
    let mut columns = vec![Vec::new(); header.len()];
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => return Err(Box::new(csv_error(file, &error))),
        };
        let start = record.position().map_or(0, |p| p.byte() as usize);
        let length = file.text[start.min(file.text.len())..]
            .find('\n')
            .unwrap_or(file.text.len() - start.min(file.text.len()));
        let length = file.text[start..start + length]
            .trim_end_matches('\r')
            .len();
        rows.push((start, length));
        for (column, cell) in columns.iter_mut().zip(record.iter()) {
            column.push(cell.to_string());
        }
    }
    Ok(CsvTable {
        header,
        columns,
        rows,
    })
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
    let start = start.min(file.text.len());
    let end = file.text[start..]
        .find('\n')
        .map_or(file.text.len(), |n| start + n);
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
        let parsed = std::mem::take(&mut self.parsed);
        let result = match (&parsed[index], origin_values) {
            (Parsed::Csv(table), Located::Csv(columns)) => {
                self.read_csv_columns(decl, file, table, &columns)
            }
            (Parsed::Json(_), Located::Json(value, span)) => {
                self.read_json_value(decl, file, &value, span)
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
        table: &CsvTable,
        columns: &[usize],
    ) -> Option<(Tensor, Origin<'f>)> {
        let names: Vec<&str> = columns.iter().map(|&c| table.header[c].as_str()).collect();
        let header_span = Span::new(
            file.file,
            0..file.text.find('\n').unwrap_or(file.text.len()),
        );
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
        let n_rows = table.rows.len();
        let mut data = Vec::with_capacity(n_rows * columns.len());
        let mut ok = true;
        for row in 0..n_rows {
            for &column in columns {
                let cell = &table.columns[column][row];
                match parse_number(cell) {
                    Some(value) => data.push(value),
                    None => {
                        ok = false;
                        let (start, length) = table.rows[row];
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
                }
            }
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
            if let (Some(&(start, length)), Some(column)) = (
                table.rows.get(row),
                table.header.iter().position(|h| *h == column_name),
            ) {
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
}

/// Parses a CSV cell as a number; `NA`, `nan` and empty cells are not numbers.
fn parse_number(cell: &str) -> Option<f64> {
    let lower = cell.to_ascii_lowercase();
    if cell.is_empty() || lower == "na" || lower == "nan" || lower == "null" {
        return None;
    }
    if lower.contains("inf") {
        // Infinity parses, and is then reported as not finite with its location.
        return cell.parse::<f64>().ok();
    }
    cell.parse::<f64>().ok()
}

/// The span of cell `column` in the line starting at `start`; the whole line when quoting makes
/// the columns ambiguous.
fn cell_span(file: &DataFile, start: usize, length: usize, column: usize) -> Span {
    let line = &file.text[start..(start + length).min(file.text.len())];
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
    let mut from = 0;
    while let Some(found) = file.text[from..].find(&quoted) {
        let start = from + found;
        let after = file.text[start + quoted.len()..].trim_start();
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
