//! Reading a model and its data from disk into a compiled [`Model`], with every problem turned
//! into a rendered diagnostic; the error type every command returns, and diagnostics as JSON.

use bdl_diagnostics::{render, Diagnostic, SourceMap, Span};
use bdl_ir::ir::Program;
use bdl_runtime::data::{self, Completeness, DataFile};
use bdl_runtime::model::Model;
use bdl_runtime::pipeline;
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Why a command failed: diagnostics to render and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub diagnostics: Vec<Diagnostic>,
    /// 1 for problems with the model, its data or a run; 2 for usage and files; 130 for a run
    /// stopped by Ctrl-C before it made anything to keep.
    pub exit_code: u8,
}

impl Failure {
    /// A usage or file problem (exit code 2) without a location.
    pub fn usage(code: &str, message: impl Into<String>, hint: Option<String>) -> Failure {
        let mut diagnostic = Diagnostic::error(code, message);
        if let Some(hint) = hint {
            diagnostic = diagnostic.with_hint(hint);
        }
        Failure {
            diagnostics: vec![diagnostic],
            exit_code: 2,
        }
    }

    /// A problem found in the model, its data or a run (exit code 1).
    pub fn model(diagnostics: Vec<Diagnostic>) -> Failure {
        Failure {
            diagnostics,
            exit_code: 1,
        }
    }

    /// One problem of a run, without a location, with a hint (exit code 1).
    pub fn run_with_hint(
        code: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Failure {
        Failure {
            diagnostics: vec![Diagnostic::error(code, message).with_hint(hint)],
            exit_code: 1,
        }
    }

    /// A run stopped by Ctrl-C with nothing to keep (exit code 130, a shell's code for SIGINT).
    pub fn interrupted(code: &str, message: impl Into<String>, hint: impl Into<String>) -> Failure {
        Failure {
            diagnostics: vec![Diagnostic::error(code, message).with_hint(hint)],
            exit_code: 130,
        }
    }

    /// One problem of a run, without a location (exit code 1).
    pub fn run(code: &str, message: impl Into<String>) -> Failure {
        Failure {
            diagnostics: vec![Diagnostic::error(code, message)],
            exit_code: 1,
        }
    }
}

/// An IO error in a few words, without the OS error number.
pub fn describe_io_error(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "it is a directory".to_string(),
        _ => error.to_string().to_lowercase(),
    }
}

/// The largest model file read: the parser refuses sources above `bdl_syntax::MAX_SOURCE_BYTES`
/// (1 MiB) with a located error; a file many times that size is refused before it is read.
pub const MAX_MODEL_FILE_BYTES: u64 = 64 << 20;

/// The largest data file, draws file or summary read (4 GiB).
pub const MAX_DATA_FILE_BYTES: u64 = 4 << 30;

/// Why a file was not read: a stable code, a sentence and perhaps a hint.
#[derive(Debug)]
pub struct Refusal {
    /// `E0901` (the file cannot be read), `E0980` (not a regular file) or `E0981` (too large).
    pub code: &'static str,
    /// One sentence naming the file.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Refusal {
    /// The refusal as a usage failure (exit code 2).
    pub fn into_failure(self) -> Failure {
        Failure::usage(self.code, self.message, self.hint)
    }

    /// The refusal as a diagnostic.
    pub fn into_diagnostic(self) -> Diagnostic {
        let diagnostic = Diagnostic::error(self.code, self.message);
        match self.hint {
            Some(hint) => diagnostic.with_hint(hint),
            None => diagnostic,
        }
    }
}

/// What kind of file system entry `metadata` describes, in words, when it is not a regular file.
fn not_a_regular_file(metadata: &std::fs::Metadata) -> Option<&'static str> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a named pipe (FIFO)");
        }
        if kind.is_char_device() || kind.is_block_device() {
            return Some("a device");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Reads a whole file of at most `limit` bytes. Only regular files are opened: a directory, a
/// named pipe or a device such as `/dev/zero` would block or never end, so it is refused (E0980)
/// before it is opened; a larger file is refused (E0981), also when it grows while it is read.
/// `what` names the file in messages (`model file`, `data file`, or nothing); a data file that
/// cannot be read is E0902, any other E0901.
pub fn read_bounded(path: &Path, what: &str, limit: u64) -> Result<Vec<u8>, Refusal> {
    use std::io::Read;
    let cannot_read = |error: &std::io::Error| Refusal {
        code: if what.starts_with("data") {
            "E0902"
        } else {
            "E0901"
        },
        message: format!(
            "cannot read {}`{}`: {}",
            if what.is_empty() {
                String::new()
            } else {
                format!("{what} ")
            },
            path.display(),
            describe_io_error(error)
        ),
        hint: None,
    };
    let named = || {
        if what.is_empty() {
            format!("`{}`", path.display())
        } else {
            format!("{what} `{}`", path.display())
        }
    };
    let metadata = std::fs::metadata(path).map_err(|error| cannot_read(&error))?;
    if let Some(kind) = not_a_regular_file(&metadata) {
        return Err(Refusal {
            code: "E0980",
            message: format!("{} is {kind}, not a regular file", named()),
            hint: Some("give the path of a file; bdlc reads only regular files".to_string()),
        });
    }
    let too_large = |size: String| Refusal {
        code: "E0981",
        message: format!("{} is {size}; the limit is {} bytes", named(), limit),
        hint: Some("see `docs/cli.md` (Limits) for the sizes bdlc reads".to_string()),
    };
    if metadata.len() > limit {
        return Err(too_large(format!("{} bytes", metadata.len())));
    }
    let file = std::fs::File::open(path).map_err(|error| cannot_read(&error))?;
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| cannot_read(&error))?;
    if bytes.len() as u64 > limit {
        return Err(too_large("larger than that as it is read".to_string()));
    }
    Ok(bytes)
}

/// Reads a whole text file of a finished run (draws, summaries, losses), bounded as
/// [`read_bounded`] bounds data files.
pub fn read_run_text(path: &Path) -> Result<String, Failure> {
    let bytes = read_bounded(path, "", MAX_DATA_FILE_BYTES).map_err(Refusal::into_failure)?;
    String::from_utf8(bytes).map_err(|error| {
        Failure::usage(
            "E0901",
            format!(
                "cannot read `{}`: byte {} is not valid UTF-8",
                path.display(),
                error.utf8_error().valid_up_to()
            ),
            None,
        )
    })
}

/// The terminal and the sources of one command.
pub struct Session {
    /// Every file read, for rendering diagnostics.
    pub sources: SourceMap,
    /// Whether diagnostics get colour.
    pub colour: bool,
}

impl Session {
    /// A session with colour when stderr is a terminal and `NO_COLOR` is unset.
    pub fn new() -> Session {
        let colour = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Session {
            sources: SourceMap::new(),
            colour,
        }
    }

    /// Renders diagnostics for stderr.
    pub fn render(&self, diagnostics: &[Diagnostic]) -> String {
        diagnostics
            .iter()
            .map(|d| render(d, &self.sources, self.colour))
            .collect()
    }

    /// Reads a file's bytes; a missing file is a usage error.
    pub fn read(&self, path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
        read_bounded(path, what, MAX_MODEL_FILE_BYTES).map_err(Refusal::into_failure)
    }

    /// Parses, checks and lowers a model file.
    pub fn compile(&mut self, path: &Path) -> Result<(Program, Vec<Diagnostic>), Failure> {
        let bytes = self.read(path, "model file")?;
        match pipeline::compile(&mut self.sources, &path.display().to_string(), &bytes) {
            Ok(compiled) => Ok((compiled.program, compiled.warnings)),
            Err(diagnostics) => Err(Failure::model(diagnostics)),
        }
    }

    /// Reads the data files: the `--data` ones if given, else those the model names (relative
    /// to the model file).
    pub fn data_files(
        &mut self,
        model_path: &Path,
        program: &Program,
        given: &[PathBuf],
    ) -> Result<Vec<DataFile>, Failure> {
        let directory = model_path.parent().unwrap_or(Path::new("."));
        let paths: Vec<PathBuf> = if given.is_empty() {
            program
                .data_files
                .iter()
                .map(|file| directory.join(&file.path))
                .collect()
        } else {
            given.to_vec()
        };
        let mut files = Vec::new();
        for (index, path) in paths.iter().enumerate() {
            let bytes = match read_bounded(path, "data file", MAX_DATA_FILE_BYTES) {
                Ok(bytes) => bytes,
                Err(refusal) => {
                    let mut diagnostic = refusal.into_diagnostic();
                    if given.is_empty() {
                        if let Some(reference) = program.data_files.get(index) {
                            diagnostic = diagnostic
                                .with_label(reference.span, "named here")
                                .with_hint("paths in `data from` are relative to the model file; `--data FILE` overrides them");
                        }
                    }
                    return Err(Failure {
                        diagnostics: vec![diagnostic],
                        exit_code: 2,
                    });
                }
            };
            let name = path.display().to_string();
            // The text goes into the source map only if a diagnostic needs an excerpt of it
            // (`Session::load_data`): a large data file is held once, as bytes, while it loads.
            let file = self.sources.add(name.clone(), String::new());
            files.push(DataFile { name, bytes, file });
        }
        Ok(files)
    }

    /// Fills the program's data block from `files`; when that fails, the files' texts are
    /// registered in the source map so that the diagnostics show excerpts.
    pub fn load_data(
        &mut self,
        program: &Program,
        files: &[DataFile],
        completeness: Completeness,
        observed: &[bdl_ir::ir::SlotId],
    ) -> Result<data::DataSet, Failure> {
        data::load(program, files, completeness, observed).map_err(|diagnostics| {
            self.register_texts(files);
            Failure::model(diagnostics)
        })
    }

    /// Registers the texts of data files in the source map (binary files stay empty).
    pub fn register_texts(&mut self, files: &[DataFile]) {
        for file in files {
            self.sources.set_text(file.file, file.display_text());
        }
    }

    /// Compiles a model with its data into a [`Model`]; warnings are printed to stderr.
    pub fn load(
        &mut self,
        model_path: &Path,
        data: &[PathBuf],
        completeness: Completeness,
        seed: u64,
    ) -> Result<Model, Failure> {
        let (program, warnings) = self.compile(model_path)?;
        self.warn(&warnings);
        let files = self.data_files(model_path, &program, data)?;
        let observed = pipeline::observed_only(&program);
        let data = self.load_data(&program, &files, completeness, &observed)?;
        drop(files);
        Model::new(program, data, seed).map_err(|error| Failure::model(vec![error.to_diagnostic()]))
    }

    /// Prints warnings to stderr.
    pub fn warn(&self, warnings: &[Diagnostic]) {
        if !warnings.is_empty() {
            #[allow(clippy::print_stderr)]
            {
                eprint!("{}", self.render(warnings));
            }
        }
    }
}

/// Diagnostics as JSON objects: severity, code, message, the primary location (file, 1-based
/// line and column, and where the span ends), labels, notes and the hint. Unlocated diagnostics
/// (a missing file, a bad flag) have `null` locations.
pub fn diagnostics_json(diagnostics: &[Diagnostic], sources: &SourceMap) -> Value {
    Value::Array(
        diagnostics
            .iter()
            .map(|diagnostic| {
                let mut object = json!({
                    "severity": diagnostic.severity.to_string(),
                    "code": diagnostic.code,
                    "message": diagnostic.message,
                    "hint": diagnostic.hint,
                    "notes": diagnostic.notes,
                    "labels": diagnostic.labels.iter().map(|label| {
                        let mut object = span_json(label.span, sources);
                        if let Value::Object(map) = &mut object {
                            map.insert("message".into(), json!(label.message));
                            map.insert("primary".into(), json!(label.primary));
                        }
                        object
                    }).collect::<Vec<_>>(),
                });
                let location = match diagnostic.primary_span() {
                    Some(span) => span_json(span, sources),
                    None => span_json_null(),
                };
                if let (Value::Object(map), Value::Object(location)) = (&mut object, location) {
                    map.extend(location);
                }
                object
            })
            .collect(),
    )
}

/// A span as `file`, `line`, `column`, `end_line`, `end_column` (1-based, columns in characters).
fn span_json(span: Span, sources: &SourceMap) -> Value {
    let Some(file) = sources.get(span.file) else {
        return span_json_null();
    };
    let (line, column) = file.line_col(span.start as usize);
    let (end_line, end_column) = file.line_col(span.end as usize);
    json!({
        "file": file.name,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
    })
}

fn span_json_null() -> Value {
    json!({ "file": null, "line": null, "column": null, "end_line": null, "end_column": null })
}
