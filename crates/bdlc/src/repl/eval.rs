//! Evaluating REPL input through the normal pipeline.
//!
//! The REPL has no interpreter of its own. Each input becomes a synthetic program: the loaded
//! model's data block, networks and functions, the `fn` and `network` items typed in the
//! session, and a `model { ... }` block holding the session's earlier statements followed by the
//! new input (an expression `e` becomes `let __value = e`). The program is parsed, checked and
//! lowered like a file, filled with the model's data, and run with a seeded handler stack in
//! which the sample sites drawn by earlier statements are substituted, so that a name keeps its
//! value from one input to the next.
//!
//! The synthetic text is assembled from pieces that remember where they came from (the model
//! file, or an earlier input), and every diagnostic's spans are mapped back to those sources:
//! an error in what the user just typed points at what the user just typed.

use bdl_autodiff::{Tape, Tensor};
use bdl_diagnostics::{Diagnostic, FileId, Severity, SourceMap, Span};
use bdl_infer::rng::stream_rng;
use bdl_ir::ir::Program;
use bdl_ir::BindingKind;
use bdl_runtime::data::{self, Completeness, DataFile};
use bdl_runtime::handlers::{SeedRef, SiteKind, Substitute, TraceMessages};
use bdl_runtime::interpret::{Interpreter, RunOptions};
use bdl_runtime::trace::Trace;
use bdl_runtime::value::Value;
use bdl_syntax::ast::{Item, StmtKind};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

/// The name the value of an expression is bound to in the synthetic program.
const VALUE_NAME: &str = "__value";
/// What wraps the input when it is parsed on its own to find its statements.
const WRAPPER_OPEN: &str = "model {\n";
const WRAPPER_CLOSE: &str = "\n}\n";

/// A piece of source kept from the model file or an earlier input, with where it came from.
#[derive(Clone, Debug)]
pub struct Kept {
    /// The text.
    pub text: String,
    /// The source it was cut from, in the session's source map.
    pub file: FileId,
    /// Its byte offset in that source.
    pub offset: usize,
}

/// What a loaded model contributes to every synthetic program.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The data block, networks and functions, cut from the model file.
    pub items: Vec<Kept>,
    /// The texts of the data files.
    pub files: Vec<DataFile>,
}

/// The session's persistent state: what earlier inputs defined.
#[derive(Debug, Default)]
pub struct Environment {
    /// Statements kept from earlier inputs, run again before every new input.
    pub statements: Vec<Kept>,
    /// `fn` and `network` items typed in the session.
    pub items: Vec<Kept>,
    /// The names bound by kept `let` statements, items and functions, for completion.
    pub names: Vec<String>,
    /// Values of the sample sites drawn by kept statements.
    pub sites: HashMap<String, Tensor>,
    /// The seed of the session's draws.
    pub seed: u64,
    /// How many inputs have been run (each gets its own random stream).
    pub evaluations: u64,
}

impl Environment {
    /// An empty environment drawing from `seed`.
    pub fn new(seed: u64) -> Environment {
        Environment {
            seed,
            ..Environment::default()
        }
    }
}

/// What an input produced, to be shown.
#[derive(Clone, Debug, PartialEq)]
pub enum Shown {
    /// The value of an expression, as text (see [`super::show`]).
    Value(String),
    /// A name bound by a `let`, with its value as text.
    Binding {
        /// The name.
        name: String,
        /// The value.
        text: String,
    },
    /// A function or network defined.
    Defined(String),
}

/// The synthetic program: its text and where each piece of it came from.
struct Synthetic {
    text: String,
    pieces: Vec<(Range<usize>, FileId, usize)>,
}

impl Synthetic {
    fn new() -> Synthetic {
        Synthetic {
            text: String::new(),
            pieces: Vec::new(),
        }
    }

    /// Appends generated text (no source to point back to).
    fn generated(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends text cut from a source, remembering where.
    fn original(&mut self, kept: &Kept) {
        let start = self.text.len();
        self.text.push_str(&kept.text);
        self.pieces
            .push((start..self.text.len(), kept.file, kept.offset));
    }

    /// The range of the synthetic text a source offset range was copied to, if it was.
    fn range_of(&self, file: FileId, offset: usize, length: usize) -> Option<Range<usize>> {
        self.pieces
            .iter()
            .find(|(range, from, at)| *from == file && *at == offset && range.len() == length)
            .map(|(range, _, _)| range.clone())
    }

    /// Maps a span of the synthetic text back to the source its piece came from.
    fn remap(&self, span: Span) -> Option<Span> {
        let (start, end) = (span.start as usize, span.end as usize);
        let (range, file, offset) = self
            .pieces
            .iter()
            .find(|(range, _, _)| range.start <= start && end <= range.end)?;
        Some(Span::new(
            *file,
            offset + start - range.start..offset + end - range.start,
        ))
    }
}

/// Everything one evaluation needs from the REPL.
pub struct Evaluation<'a> {
    /// The session's sources (the model file, earlier inputs).
    pub sources: &'a mut SourceMap,
    /// The persistent state.
    pub environment: &'a mut Environment,
    /// The loaded model's part, if a model is loaded.
    pub context: &'a Context,
}

/// Why an input failed: diagnostics located in the session's sources.
pub type Errors = Vec<Diagnostic>;

/// How an input reads: top-level items, or statements possibly ending in an expression.
enum Shape {
    Items(Vec<String>),
    Statements {
        /// The statements before a final expression (or all of them), as an input range.
        statements: Range<usize>,
        /// The final expression, as an input range.
        expression: Option<Range<usize>>,
        /// The names bound by top-level `let`s among the statements.
        lets: Vec<String>,
    },
}

impl Evaluation<'_> {
    /// Evaluates one input: defines items, runs statements (keeping them), and evaluates a
    /// final expression (not kept). Returns what to show, or the diagnostics of the failure;
    /// on failure the environment is unchanged.
    pub fn run(&mut self, input: &str) -> Result<Vec<Shown>, Errors> {
        let file = self.sources.add("<repl>", input);
        // Trailing blank space and line breaks are dropped from what is kept.
        let kept = |range: Range<usize>| Kept {
            text: input[range.clone()].trim_end().to_string(),
            file,
            offset: range.start,
        };
        match self.shape(input, file)? {
            Shape::Items(names) => {
                let item = kept(0..input.len());
                let mut items = self.environment.items.clone();
                items.push(item.clone());
                self.compile(&items, &self.environment.statements.clone(), None, file)?;
                self.environment.items.push(item);
                let shown = names.iter().cloned().map(Shown::Defined).collect();
                self.environment.names.extend(names);
                Ok(shown)
            }
            Shape::Statements {
                statements,
                expression,
                lets,
            } => {
                let mut shown = Vec::new();
                if !input[statements.clone()].trim().is_empty() {
                    shown.extend(self.run_statements(kept(statements), &lets)?);
                }
                if let Some(expression) = expression {
                    shown.extend(self.run_expression(kept(expression))?);
                }
                Ok(shown)
            }
        }
    }

    /// Finds what the input holds by parsing it on its own.
    fn shape(&mut self, input: &str, file: FileId) -> Result<Shape, Errors> {
        let first_word = input
            .trim_start()
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default();
        let item_span = || {
            let start = input.len() - input.trim_start().len();
            Span::new(file, start..start + first_word.len())
        };
        match first_word {
            "fn" | "network" => {
                // An empty model block keeps the parser from asking for one.
                let parsed = bdl_syntax::parse(file, &format!("{input}\n\nmodel {{\n}}\n"));
                if bdl_diagnostics::has_errors(&parsed.diagnostics) {
                    return Err(parsed.diagnostics);
                }
                let names = parsed
                    .program
                    .items
                    .iter()
                    .filter_map(|item| match item {
                        Item::Function(function) => Some(function.name.name.clone()),
                        Item::Network(network) => Some(network.name.name.clone()),
                        _ => None,
                    })
                    .collect();
                return Ok(Shape::Items(names));
            }
            "data" | "model" | "infer" => {
                let hint = match first_word {
                    "data" => "load a model with `:load FILE`, or give its data with `:data FILE`",
                    "infer" => "run inference with `:infer METHOD [options]`",
                    _ => "type the model's statements directly, or `:load FILE` a model file",
                };
                return Err(vec![Diagnostic::error(
                    "E0920",
                    format!("a `{first_word}` block cannot be typed in the REPL"),
                )
                .with_label(item_span(), "here")
                .with_hint(hint)]);
            }
            _ => {}
        }
        let wrapped = format!("{WRAPPER_OPEN}{input}{WRAPPER_CLOSE}");
        let parsed = bdl_syntax::parse(file, &wrapped);
        let shift = WRAPPER_OPEN.len();
        let to_input = |span: Span| {
            let start = (span.start as usize).saturating_sub(shift).min(input.len());
            let end = (span.end as usize)
                .saturating_sub(shift)
                .clamp(start, input.len());
            Span::new(file, start..end)
        };
        if bdl_diagnostics::has_errors(&parsed.diagnostics) {
            let mut diagnostics = parsed.diagnostics;
            for diagnostic in &mut diagnostics {
                for label in &mut diagnostic.labels {
                    label.span = to_input(label.span);
                }
            }
            return Err(diagnostics);
        }
        let stmts = parsed
            .program
            .items
            .iter()
            .find_map(|item| match item {
                Item::Model(block) => Some(block.body.stmts.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let lets = stmts
            .iter()
            .filter_map(|stmt| match &stmt.kind {
                StmtKind::Let(binding) => Some(binding.name.name.clone()),
                _ => None,
            })
            .collect();
        match stmts.last() {
            Some(last) if matches!(last.kind, StmtKind::Expr(_)) => {
                let span = to_input(last.span);
                Ok(Shape::Statements {
                    statements: 0..span.start as usize,
                    expression: Some(span.range()),
                    lets,
                })
            }
            _ => Ok(Shape::Statements {
                statements: 0..input.len(),
                expression: None,
                lets,
            }),
        }
    }

    /// Runs new statements after the kept ones; on success keeps them and their sites.
    fn run_statements(&mut self, statements: Kept, lets: &[String]) -> Result<Vec<Shown>, Errors> {
        let mut all = self.environment.statements.clone();
        all.push(statements.clone());
        let items = self.environment.items.clone();
        let (synthetic, program) = self.compile(&items, &all, None, statements.file)?;
        let range = synthetic
            .range_of(statements.file, statements.offset, statements.text.len())
            .unwrap_or(0..0);
        // The binding of each new `let` is the last slot of that name declared in the new text.
        let slots: Vec<(String, bdl_ir::ir::SlotId)> = lets
            .iter()
            .filter_map(|name| {
                let index = program.slots.iter().rposition(|slot| {
                    slot.name == *name
                        && slot.kind == BindingKind::Let
                        && range.contains(&(slot.span.start as usize))
                })?;
                Some((name.clone(), bdl_ir::ir::SlotId(index as u32)))
            })
            .collect();
        let run = self.execute(&synthetic, &program, &slots)?;
        self.environment.statements.push(statements);
        for (name, tensor) in run.sites {
            self.environment.sites.insert(name, tensor);
        }
        for name in lets {
            if !self.environment.names.contains(name) {
                self.environment.names.push(name.clone());
            }
        }
        let mut shown: Vec<Shown> = Vec::new();
        for (name, text) in run.values {
            shown.retain(|s| !matches!(s, Shown::Binding { name: bound, .. } if *bound == name));
            shown.push(Shown::Binding { name, text });
        }
        Ok(shown)
    }

    /// Evaluates an expression after the kept statements, without keeping anything.
    fn run_expression(&mut self, expression: Kept) -> Result<Vec<Shown>, Errors> {
        let items = self.environment.items.clone();
        let statements = self.environment.statements.clone();
        let (synthetic, program) =
            self.compile(&items, &statements, Some(&expression), expression.file)?;
        let Some(index) = program
            .slots
            .iter()
            .rposition(|slot| slot.name == VALUE_NAME)
        else {
            return Ok(Vec::new());
        };
        let slot = (VALUE_NAME.to_string(), bdl_ir::ir::SlotId(index as u32));
        let run = self.execute(&synthetic, &program, &[slot])?;
        Ok(run
            .values
            .into_iter()
            .map(|(_, text)| Shown::Value(text))
            .collect())
    }

    /// Builds and compiles the synthetic program; `newest` is the input being evaluated.
    fn compile(
        &mut self,
        items: &[Kept],
        statements: &[Kept],
        expression: Option<&Kept>,
        newest: FileId,
    ) -> Result<(Synthetic, Program), Errors> {
        let mut synthetic = Synthetic::new();
        for item in self.context.items.iter().chain(items) {
            synthetic.original(item);
            synthetic.generated("\n\n");
        }
        synthetic.generated(WRAPPER_OPEN);
        for statement in statements {
            synthetic.original(statement);
            synthetic.generated("\n");
        }
        if let Some(expression) = expression {
            synthetic.generated(&format!("let {VALUE_NAME} = "));
            synthetic.original(expression);
            synthetic.generated("\n");
        }
        synthetic.generated(WRAPPER_CLOSE);
        let mut scratch = SourceMap::new();
        let compiled =
            bdl_runtime::pipeline::compile(&mut scratch, "<repl>", synthetic.text.as_bytes());
        match compiled {
            Ok(compiled) => Ok((synthetic, compiled.program)),
            Err(diagnostics) => Err(self.relocate(&synthetic, diagnostics, Some(newest))),
        }
    }

    /// Moves diagnostics from the synthetic text to the sources it was cut from. Warnings are
    /// kept only when they point into the newest input (an unused data column of the loaded
    /// model is not news at the prompt).
    fn relocate(
        &mut self,
        synthetic: &Synthetic,
        diagnostics: Vec<Diagnostic>,
        newest: Option<FileId>,
    ) -> Errors {
        let mut whole_program: Option<FileId> = None;
        let mut relocated = Vec::new();
        for mut diagnostic in diagnostics {
            for label in &mut diagnostic.labels {
                label.span = match synthetic.remap(label.span) {
                    Some(span) => span,
                    None => {
                        let file = *whole_program.get_or_insert_with(|| {
                            self.sources.add("<repl program>", synthetic.text.clone())
                        });
                        Span::new(file, label.span.range())
                    }
                };
            }
            let in_newest = diagnostic
                .primary_span()
                .is_some_and(|span| Some(span.file) == newest);
            if diagnostic.severity == Severity::Error || in_newest {
                relocated.push(diagnostic);
            }
        }
        relocated
    }

    /// Fills the program with the model's data and runs it; returns the rendered values of
    /// `slots` and the sample sites drawn.
    fn execute(
        &mut self,
        synthetic: &Synthetic,
        program: &Program,
        slots: &[(String, bdl_ir::ir::SlotId)],
    ) -> Result<Executed, Errors> {
        let observed = bdl_runtime::pipeline::observed_only(program);
        let data = data::load(program, &self.context.files, Completeness::All, &observed)
            .map_err(|diagnostics| self.relocate(synthetic, diagnostics, None))?;
        let data = bdl_runtime::model::derive_data(program, data)
            .map_err(|error| self.relocate(synthetic, vec![error.to_diagnostic()], None))?;
        self.environment.evaluations += 1;
        let mut rng = stream_rng(self.environment.seed, self.environment.evaluations);
        let mut tape = Tape::new();
        let trace = Rc::new(RefCell::new(Trace::default()));
        let outcome = {
            let mut interpreter = Interpreter::new(
                program,
                &data,
                &mut tape,
                RunOptions {
                    full_plates: true,
                    ..RunOptions::default()
                },
            );
            interpreter.push(SeedRef { rng: &mut rng });
            interpreter.push(TraceMessages {
                trace: Rc::clone(&trace),
            });
            interpreter.push(Substitute {
                values: self.environment.sites.clone(),
            });
            interpreter.run_model().map(|()| {
                slots
                    .iter()
                    .filter_map(|(name, slot)| {
                        interpreter
                            .slot_value(*slot)
                            .cloned()
                            .map(|value| (name.clone(), value))
                    })
                    .collect::<Vec<(String, Value)>>()
            })
        };
        let values =
            outcome.map_err(|error| self.relocate(synthetic, vec![error.to_diagnostic()], None))?;
        let sites = trace
            .borrow()
            .sites
            .iter()
            .filter(|site| site.kind == SiteKind::Sample && !site.observed)
            .map(|site| (site.name.clone(), tape.value(site.value.var).clone()))
            .collect();
        let values = values
            .into_iter()
            .filter_map(|(name, value)| super::show::value(&value, &tape).map(|text| (name, text)))
            .collect();
        Ok(Executed { values, sites })
    }
}

/// What one run of a synthetic program produced.
struct Executed {
    /// The rendered values of the slots asked for.
    values: Vec<(String, String)>,
    /// The sample sites drawn, by name.
    sites: Vec<(String, Tensor)>,
}

/// The session's program without new input: the model's items, the session's items and its
/// kept statements, as source text (`:emit ast` when no model is loaded).
pub fn session_source(context: &Context, environment: &Environment) -> String {
    let mut synthetic = Synthetic::new();
    for item in context.items.iter().chain(&environment.items) {
        synthetic.original(item);
        synthetic.generated("\n\n");
    }
    synthetic.generated(WRAPPER_OPEN);
    for statement in &environment.statements {
        synthetic.generated("    ");
        synthetic.original(statement);
        synthetic.generated("\n");
    }
    synthetic.generated("}\n");
    synthetic.text
}

/// Whether an input's brackets are all closed (outside strings and comments), so that the
/// line editor and the pipe reader know when a multi-line block is complete.
pub fn is_complete(input: &str) -> bool {
    let mut depth: i64 = 0;
    let mut chars = input.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_string = false,
                '\n' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '/' if chars.peek() == Some(&'/') => {
                for next in chars.by_ref() {
                    if next == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = ' ';
                let mut closed = false;
                for next in chars.by_ref() {
                    if previous == '*' && next == '/' {
                        closed = true;
                        break;
                    }
                    previous = next;
                }
                if !closed {
                    return false;
                }
            }
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            _ => {}
        }
    }
    depth <= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_stay_open_until_their_braces_close() {
        assert!(is_complete("let x = 1"));
        assert!(!is_complete("plate(\"p\", 3) {"));
        assert!(is_complete("plate(\"p\", 3) {\n let z = 1\n}"));
        assert!(!is_complete("let v = [1,\n 2"));
        assert!(is_complete("let s = \"{\""));
        assert!(is_complete("let x = 1 // {"));
        assert!(!is_complete("let x = 1 /* open"));
        assert!(is_complete("}"));
    }
}
