//! The line editor's helper: completion of names and commands, and multi-line input that stays
//! open until its brackets close; and where the history file lives.

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};
use std::path::PathBuf;

/// The REPL's commands, for completion and "did you mean".
pub const COMMANDS: &[&str] = &[
    ":load", ":data", ":sites", ":prior", ":infer", ":summary", ":predict", ":plot", ":runs",
    ":loo", ":compare", ":emit", ":reset", ":help", ":quit",
];

/// The words that complete after `:plot`.
pub const PLOT_KINDS: &[&str] = &[
    "trace",
    "density",
    "hist",
    "pair",
    "rank",
    "energy",
    "loss",
    "band",
    "reliability",
];

/// The keywords of the language.
const KEYWORDS: &[&str] = &[
    "let", "mut", "plate", "for", "in", "if", "else", "fn", "network", "return", "and", "or",
    "not", "true", "false", "None", "as",
];

/// The methods `:infer` accepts.
pub const METHODS: &[&str] = &[
    "svi", "map", "laplace", "nuts", "hmc", "prior", "exact", "ensemble", "sgld", "sghmc", "gibbs",
];

/// Completes names and commands; checks that brackets are closed.
pub struct ReplHelper {
    /// Names in scope: built-ins, the model's data and sites, the session's bindings.
    pub names: Vec<String>,
    /// Site names (for `:summary` and `:plot`).
    pub sites: Vec<String>,
    /// The long flags of `:infer`.
    pub infer_flags: Vec<String>,
    files: FilenameCompleter,
}

impl ReplHelper {
    /// A helper that knows the built-ins; the REPL adds the session's names as they appear.
    pub fn new(infer_flags: Vec<String>) -> ReplHelper {
        ReplHelper {
            names: Vec::new(),
            sites: Vec::new(),
            infer_flags,
            files: FilenameCompleter::new(),
        }
    }
}

/// The built-in names and keywords.
pub fn builtin_names() -> Vec<String> {
    bdl_ir::catalogue::all_names()
        .chain(KEYWORDS.iter().copied())
        .map(str::to_string)
        .collect()
}

/// The candidates among `words` that start with `prefix`, sorted and without repeats.
fn matching<'a>(prefix: &str, words: impl IntoIterator<Item = &'a str>) -> Vec<Pair> {
    let mut found: Vec<&str> = words
        .into_iter()
        .filter(|word| word.starts_with(prefix))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
        .into_iter()
        .map(|word| Pair {
            display: word.to_string(),
            replacement: word.to_string(),
        })
        .collect()
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        context: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '-'))
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        if let Some(command_line) = before.strip_prefix(':') {
            let command = command_line.split_whitespace().next().unwrap_or("");
            if start == 0 {
                // A completed command name is followed by a space, ready for its arguments.
                let mut commands = matching(word, COMMANDS.iter().copied());
                for command in &mut commands {
                    command.replacement.push(' ');
                }
                return Ok((0, commands));
            }
            let candidates = match command {
                "load" | "data" => return self.files.complete(line, pos, context),
                "infer" if word.starts_with('-') => {
                    matching(word, self.infer_flags.iter().map(String::as_str))
                }
                "infer" => matching(word, METHODS.iter().copied()),
                "emit" => matching(word, ["ast", "ir"]),
                "summary" => matching(word, self.sites.iter().map(String::as_str)),
                "plot" => matching(
                    word,
                    PLOT_KINDS
                        .iter()
                        .copied()
                        .chain(self.sites.iter().map(String::as_str)),
                ),
                _ => Vec::new(),
            };
            return Ok((start, candidates));
        }
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((start, Vec::new()));
        }
        Ok((start, matching(word, self.names.iter().map(String::as_str))))
    }
}

impl Validator for ReplHelper {
    fn validate(&self, context: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = context.input();
        if input.trim_start().starts_with(':') || super::eval::is_complete(input) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Helper for ReplHelper {}

/// Where the history is kept: `$BDL_HISTORY` if set (empty turns history off), else
/// `$XDG_DATA_HOME/bdl/repl_history`, else `~/.local/share/bdl/repl_history`; never inside the
/// working directory.
pub fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BDL_HISTORY") {
        return (!path.is_empty()).then(|| PathBuf::from(path));
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|path| !path.is_empty())
                .map(|home| PathBuf::from(home).join(".local").join("share"))
        })?;
    Some(data_home.join("bdl").join("repl_history"))
}
