//! The front of the bdl pipeline: source text in, a typed syntax tree with spans and a list of
//! diagnostics out.
//!
//! [`parse`] never fails. It first runs a byte scanner ([`scan::prescan`]) that rejects what must
//! not reach the grammar (oversized files, NUL bytes, unterminated strings or comments, brackets
//! nested deeper than [`MAX_NESTING`]); then it parses the file with the pest grammar
//! `grammar/bdl.pest`; if that fails it recovers item by item and statement by statement
//! (module `recover`) so that several independent errors are reported at once. The tree it
//! returns is never deeper than [`MAX_NESTING`] expressions plus as many blocks, so every later
//! recursive pass is bounded.
//!
//! [`print`] writes a tree back as source; parsing that text gives the same tree again
//! ([`erase_positions`] removes the spans and ids before comparing).

pub mod ast;
mod builder;
mod erase;
mod errors;
mod grammar;
pub mod printer;
mod recover;
pub mod scan;

pub use ast::*;
pub use erase::erase_positions;
pub use printer::{print, print_expr};

use bdl_diagnostics::{Diagnostic, FileId, SourceMap, Span};
use builder::Builder;
use grammar::{BdlParser, Rule};
use pest::Parser;

/// The deepest bracket nesting, and the deepest expression tree, the parser accepts.
pub const MAX_NESTING: usize = 128;

/// The largest source file the parser accepts, in bytes (1 MiB). A model file holds a model,
/// not data, so this is far beyond any real file, and it keeps every run quick.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// The reserved words of bdl.
pub const KEYWORDS: [&str; 21] = [
    "data", "from", "network", "fn", "model", "infer", "let", "mut", "plate", "as", "if", "else",
    "for", "in", "return", "and", "or", "not", "true", "false", "None",
];

/// The result of parsing: the tree (possibly partial) and what went wrong.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The syntax tree; items or statements that did not parse are error nodes.
    pub program: Program,
    /// Syntax errors and literal errors, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses one source text registered as `file`.
pub fn parse(file: FileId, text: &str) -> Parsed {
    let whole = Span::new(file, 0..text.len());
    let mut diagnostics = scan::prescan(file, text);
    if !diagnostics.is_empty() {
        return Parsed {
            program: Program {
                items: Vec::new(),
                span: whole,
                node_count: 0,
                incomplete: true,
            },
            diagnostics,
        };
    }
    let builder = Builder::new(file);
    let (items, incomplete) = match BdlParser::parse(Rule::file, text) {
        Ok(mut pairs) => (
            pairs
                .next()
                .map(|pair| builder.items(pair))
                .unwrap_or_default(),
            false,
        ),
        Err(_) => {
            let detail = ErrorDetail::on();
            let error = match BdlParser::parse(Rule::file, text) {
                Err(error) => error,
                Ok(_) => pest::error::Error::new_from_pos(
                    pest::error::ErrorVariant::CustomError {
                        message: "the file parsed on a second attempt".to_string(),
                    },
                    pest::Position::from_start(text),
                ),
            };
            let items = recover::items(&builder, text);
            drop(detail);
            let recovered = builder.take_diagnostics();
            if !recovered
                .iter()
                .any(|d| d.code == "E0001" || d.code == "E0014")
            {
                // Recovery found every piece well formed on its own, so the problem is in how
                // the pieces are joined; report what the whole-file parse saw.
                diagnostics.push(errors::syntax_error(file, text, 0, text.len(), &error));
            }
            diagnostics.extend(recovered);
            (items, true)
        }
    };
    diagnostics.extend(builder.take_diagnostics());
    let program = Program {
        items,
        span: whole,
        node_count: builder.node_count(),
        incomplete,
    };
    check_structure(file, text, &program, &mut diagnostics);
    diagnostics.sort_by_key(|d| d.primary_span().map(|span| (span.start, span.end)));
    Parsed {
        program,
        diagnostics,
    }
}

/// Collecting the tokens pest tried at a failure point makes "expected ..." messages precise,
/// but slows every parse several times over, so it is switched on only while a file that failed
/// is parsed again for its messages. The switch is process-wide; this guard counts the parses
/// that need it, so that one thread finishing does not switch it off under another.
struct ErrorDetail;

static DETAIL_USERS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl ErrorDetail {
    fn on() -> ErrorDetail {
        let mut users = DETAIL_USERS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *users += 1;
        pest::set_error_detail(true);
        ErrorDetail
    }
}

impl Drop for ErrorDetail {
    fn drop(&mut self) {
        let mut users = DETAIL_USERS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *users = users.saturating_sub(1);
        if *users == 0 {
            pest::set_error_detail(false);
        }
    }
}

/// Checks that the file has exactly one `model` block and at most one `data` and `infer` block.
fn check_structure(file: FileId, text: &str, program: &Program, diagnostics: &mut Vec<Diagnostic>) {
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for item in &program.items {
        let kind = match item {
            Item::Data(_) => "data",
            Item::Model(_) => "model",
            Item::Infer(_) => "infer",
            _ => continue,
        };
        if let Some((_, first)) = seen.iter().find(|(seen_kind, _)| *seen_kind == kind) {
            let span = item.span();
            let header = Span::new(file, span.range().start..span.range().start + kind.len());
            diagnostics.push(
                Diagnostic::error("E0012", format!("a second `{kind}` block"))
                    .with_label(header, format!("another `{kind}` block"))
                    .with_secondary(
                        Span::new(file, first.range().start..first.range().start + kind.len()),
                        "the first one is here",
                    )
                    .with_hint(format!("a file has at most one `{kind}` block; merge them")),
            );
        } else {
            seen.push((kind, item.span()));
        }
    }
    let has_model = seen.iter().any(|(kind, _)| *kind == "model");
    let has_broken_item = program
        .items
        .iter()
        .any(|item| matches!(item, Item::Error(_)));
    if !has_model && !has_broken_item {
        let first_char = text.chars().next().map_or(0, char::len_utf8);
        let message = if text.trim().is_empty() {
            "the file is empty: no `model` block"
        } else {
            "no `model` block in this file"
        };
        diagnostics.push(
            Diagnostic::error("E0010", message)
                .with_label(
                    Span::new(file, 0..first_char),
                    "a model file needs a `model { ... }` block",
                )
                .with_hint(
                    "add `model { ... }` with the model's `sample` and `observe` statements",
                ),
        );
    }
}

/// Source bytes decoded as UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The text; invalid sequences are replaced by U+FFFD so that it can still be shown.
    pub text: String,
    /// The offset of the first byte that is not valid UTF-8, if any.
    pub invalid_utf8_at: Option<usize>,
}

/// Decodes raw file contents.
pub fn decode(bytes: &[u8]) -> Decoded {
    match std::str::from_utf8(bytes) {
        Ok(text) => Decoded {
            text: text.to_string(),
            invalid_utf8_at: None,
        },
        Err(error) => Decoded {
            text: String::from_utf8_lossy(bytes).into_owned(),
            invalid_utf8_at: Some(error.valid_up_to()),
        },
    }
}

/// Registers raw file contents under `name` in `sources` and parses them. Invalid UTF-8 is a
/// diagnostic located at the first bad byte, and stops parsing. NUL bytes are shown as spaces
/// in the registered text (so that rendered excerpts stay plain text) but still reported.
pub fn parse_bytes(sources: &mut SourceMap, name: &str, bytes: &[u8]) -> (FileId, Parsed) {
    let decoded = decode(bytes);
    let shown = decoded.text.replace('\0', " ");
    let file = sources.add(name, shown);
    if let Some(offset) = decoded.invalid_utf8_at {
        // The decoded text holds U+FFFD where the bad bytes were; label that whole character.
        let width = decoded.text[offset..]
            .chars()
            .next()
            .map_or(1, char::len_utf8);
        let diagnostic = Diagnostic::error("E0007", "the source is not valid UTF-8")
            .with_label(
                Span::new(file, offset..offset + width),
                format!(
                    "invalid byte 0x{:02X} here",
                    bytes.get(offset).copied().unwrap_or(0)
                ),
            )
            .with_hint("save the file as UTF-8 text");
        return (
            file,
            Parsed {
                program: Program {
                    items: Vec::new(),
                    span: Span::new(file, 0..decoded.text.len()),
                    node_count: 0,
                    incomplete: true,
                },
                diagnostics: vec![diagnostic],
            },
        );
    }
    (file, parse(file, &decoded.text))
}
