//! `bdlc repl [MODEL]`: explore a model interactively.
//!
//! Input is either a command (`:load`, `:infer`, …, see [`HELP`]) or bdl statements and
//! expressions, evaluated in a persistent environment by [`eval`] and printed by [`show`]. An
//! error prints its diagnostic and leaves the session as it was. On a terminal the line editor
//! ([`editor`]) keeps a history, completes names and commands, and keeps a block open until its
//! braces close; Ctrl-C clears the line; Ctrl-D quits. Ctrl-C during `:infer` stops the run at
//! its next draw or step and keeps what it has, and the prompt comes back with the session as it
//! was: the line editor holds SIGINT only while it reads a line, and the process's handler
//! ([`Interrupt`]) stops runs in between. Each run is kept and numbered (`:runs`), and `:loo` and
//! `:compare` score runs by PSIS-LOO or WAIC with the code of `bdlc loo` and `bdlc compare`.
//! From a pipe there are no prompts, colours or progress bars: the same outputs,
//! each error is reported and the session goes on (or stops there with `--stop-on-error`), and
//! the exit code is 1 if any input failed.

mod editor;
mod eval;
mod show;

use crate::interrupt::Interrupt;
use crate::method::{Method, MethodName};
use crate::output::{prepare_out_dir, write_file};
use crate::plot_cmd::{self, Drawn, FigureOptions, PlotKind, RunDraws};
use crate::run::{run_method, RunResult};
use crate::session::{Failure, Session};
use crate::settings::{InferFlags, Resolved};
use crate::summary_cmd::Table;
use crate::{log_lik, loo_cmd};
use bdl_diagnostics::{did_you_mean, Diagnostic};
use bdl_infer::diagnostics::loo::Criterion;
use bdl_infer::diagnostics::quantile;
use bdl_runtime::data::Completeness;
use bdl_runtime::handlers::SiteKind;
use bdl_runtime::model::Model;
use bdl_syntax::ast::Item;
use clap::{CommandFactory, Parser};
use eval::{Context, Environment, Evaluation, Kept, Shown};
use rustyline::error::ReadlineError;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

/// `bdlc repl [MODEL] [--data FILE]... [--seed S] [--quiet]`.
#[derive(clap::Args, Debug)]
pub struct ReplArgs {
    /// A model file to load at the start (as `:load MODEL`).
    #[arg(value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// Data files for the model, replacing those it names.
    #[arg(long = "data", value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// The seed of the session's random draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// With input from a pipe, stop at the first input that fails (exit code 1); by default
    /// each error is reported and the session goes on, as Python's does.
    #[arg(long)]
    pub stop_on_error: bool,
}

/// The text of `:help`.
const HELP: &str = "\
Type bdl statements and expressions; `let` bindings and sampled sites persist.
  let x = [1.0, 2.0, 3.0]          bind a name (printed with its type)
  exp(x)                           evaluate an expression
  let z = sample(\"z\", Normal(0, 1)) draw a site (its value is kept)
  fn f(a) { return a + 1 }         define a function (or a network)
A block stays open until its braces close.

Commands:
  :load FILE [--data FILE]...      load a model and its data
  :data [FILE...]                  show or replace the loaded model's data files
  :sites                           list the model's sites
  :prior [N]                       summarise N draws from the prior (default 1000)
  :infer [METHOD] [options]        run inference, e.g. `:infer svi --steps 2000`
                                   (options as for `bdlc infer`; `:infer --help` lists them)
  :summary [SITE]...               the last run's summary table
  :predict                         posterior-predictive check on the model's data
  :runs                            list the session's runs, numbered
  :loo [RUN] [--waic]              PSIS-LOO (or WAIC) of a run: its number, or a run's
                                   directory (default: the last run)
  :compare RUN RUN... [--waic]     compare runs of models of the same observations
  :plot SITE FILE                  posterior density of a site, as SVG
  :plot KIND [SITE] FILE           a figure of the last run, as SVG (PNG for FILE.png):
                                   trace, density, hist, pair, rank, energy, loss, band,
                                   reliability; `--bins N`, `--data FILE` (held-out rows)
  :emit ast|ir                     print the model as parsed, or its trace IR
  :reset                           forget the session's bindings and sites
  :help                            this text
  :quit                            leave (or Ctrl-D)
";

/// The arguments of `:infer`, parsed with the same flags as `bdlc infer`.
#[derive(Parser, Debug)]
#[command(name = ":infer", about = "Run inference on the loaded model")]
struct InferCommand {
    /// svi, map, laplace, nuts, hmc, prior, exact, ensemble, sgld or gibbs.
    #[arg(value_name = "METHOD")]
    method: Option<String>,
    /// Inference settings.
    #[command(flatten)]
    flags: InferFlags,
    /// Also write the run's files into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replace a run already in `--out`.
    #[arg(long)]
    force: bool,
    /// Also draw SVG figures into `--out`.
    #[arg(long)]
    plot: bool,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

/// A loaded model with what the evaluator needs of it.
struct Loaded {
    path: PathBuf,
    data: Vec<PathBuf>,
    ast: bdl_syntax::ast::Program,
    /// Shared with the session's runs made on it, which keep it after another `:load`.
    model: Rc<Model>,
    context: Context,
}

impl Loaded {
    fn load(
        session: &mut Session,
        path: &Path,
        data_paths: &[PathBuf],
        seed: u64,
    ) -> Result<Loaded, Failure> {
        let bytes = session.read(path, "model file")?;
        let compiled = bdl_runtime::pipeline::compile(
            &mut session.sources,
            &path.display().to_string(),
            &bytes,
        )
        .map_err(Failure::model)?;
        session.warn(&compiled.warnings);
        let text = session
            .sources
            .get(compiled.file)
            .map(|file| file.text.clone())
            .unwrap_or_default();
        let ast = bdl_syntax::parse(compiled.file, &text).program;
        let items = ast
            .items
            .iter()
            .filter_map(|item| {
                let span = match item {
                    Item::Data(block) => block.span,
                    Item::Network(network) => network.span,
                    Item::Function(function) => function.span,
                    _ => return None,
                };
                Some(Kept {
                    text: text.get(span.range())?.to_string(),
                    file: compiled.file,
                    offset: span.start as usize,
                })
            })
            .collect();
        let files = session.data_files(path, &compiled.program, data_paths)?;
        // The REPL loads the data again at each evaluation: keep the excerpts at hand.
        session.register_texts(&files);
        let observed = bdl_runtime::pipeline::observed_only(&compiled.program);
        let dataset = session.load_data(&compiled.program, &files, Completeness::All, &observed)?;
        let model = Model::new(compiled.program, dataset, seed)
            .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
        Ok(Loaded {
            path: path.to_path_buf(),
            data: data_paths.to_vec(),
            ast,
            model: Rc::new(model),
            context: Context { items, files },
        })
    }

    /// One line describing the model's sites.
    fn describe(&self) -> String {
        let count = |keep: &dyn Fn(&bdl_runtime::model::SiteInfo) -> bool| {
            self.model.sites.iter().filter(|s| keep(s)).count()
        };
        let latent = count(&|s| s.kind == SiteKind::Sample && !s.observed);
        let params = count(&|s| s.kind == SiteKind::Param);
        let observed = count(&|s| s.kind == SiteKind::Observe || s.observed);
        let derived = count(&|s| s.kind == SiteKind::Deterministic);
        let mut parts = vec![plural(latent, "latent site")];
        if params > 0 {
            parts.push(plural(params, "param"));
        }
        if derived > 0 {
            parts.push(plural(derived, "deterministic site"));
        }
        parts.push(plural(observed, "observed site"));
        format!(
            "loaded {}: {} ({} unconstrained values)",
            self.path.display(),
            parts.join(", "),
            self.model.layout.dim()
        )
    }
}

/// "1 site", "2 sites".
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A run of the session, kept for `:summary`, `:predict` and `:plot` (the last run of the
/// loaded model) and for `:loo` and `:compare` (any run, by its number).
struct SessionRun {
    /// Its number in the session, from 1, as `:runs` lists it.
    number: usize,
    /// The model file it ran on, with its data files when `--data` replaced them.
    label: String,
    /// The model it ran on, with the data it ran on.
    model: Rc<Model>,
    result: RunResult,
    draws: RunDraws,
}

/// Whether the loop goes on.
enum Flow {
    Continue,
    Quit,
}

/// The session.
struct Repl<'a> {
    session: &'a mut Session,
    interrupt: &'a Interrupt,
    environment: Environment,
    loaded: Option<Loaded>,
    /// Every run of the session, in order.
    runs: Vec<SessionRun>,
    /// The index in `runs` of the loaded model's last run (none after `:load` or `:data`).
    last: Option<usize>,
    interactive: bool,
    quiet: bool,
    seed: u64,
    failed: bool,
    stop_on_error: bool,
}

/// Runs `bdlc repl`.
pub fn run(args: &ReplArgs, session: &mut Session, interrupt: &Interrupt) -> ExitCode {
    let interactive = std::io::stdin().is_terminal();
    if !interactive {
        session.colour = false;
    }
    // On a terminal a stray Ctrl-C must not end the session; from a pipe it ends the process
    // except while inference runs.
    interrupt.set_stoppable(interactive);
    let mut repl = Repl {
        session,
        interrupt,
        environment: Environment::new(args.seed),
        loaded: None,
        runs: Vec::new(),
        last: None,
        interactive,
        quiet: args.quiet,
        seed: args.seed,
        failed: false,
        stop_on_error: args.stop_on_error,
    };
    if let Some(path) = &args.model {
        if let Err(failure) = repl.load(path, &args.data) {
            repl.report(failure);
        }
    }
    if interactive {
        repl.interactive_loop();
        ExitCode::SUCCESS
    } else {
        if !(repl.failed && repl.stop_on_error) {
            repl.pipe_loop();
        }
        if repl.failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Splits a command line into words; `"..."` and `'...'` keep spaces.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => current.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            None => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".to_string());
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// A usage problem with a command (not a file, not the model).
fn command_error(code: &str, message: impl Into<String>, hint: Option<&str>) -> Failure {
    Failure::usage(code, message, hint.map(str::to_string))
}

impl Repl<'_> {
    /// A line editor holding the session's history and completions. The line editor takes
    /// SIGINT for as long as it exists (Ctrl-C at the prompt clears the line); dropping it gives
    /// the signal back to the process's own handler, which stops a run.
    fn line_editor(
        &self,
        flags: &[String],
        history: &[String],
    ) -> rustyline::Result<rustyline::Editor<editor::ReplHelper, rustyline::history::DefaultHistory>>
    {
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut line_editor = rustyline::Editor::with_config(config)?;
        let mut helper = editor::ReplHelper::new(flags.to_vec());
        helper.names = self.names();
        helper.sites = self.site_names();
        line_editor.set_helper(Some(helper));
        for entry in history {
            let _ = line_editor.add_history_entry(entry.as_str());
        }
        Ok(line_editor)
    }

    fn interactive_loop(&mut self) {
        let flags: Vec<String> = InferCommand::command()
            .get_arguments()
            .filter_map(|argument| argument.get_long().map(|long| format!("--{long}")))
            .collect();
        let history_file = editor::history_path();
        let mut history: Vec<String> = Vec::new();
        match self.line_editor(&flags, &history) {
            Ok(mut first) => {
                if let Some(path) = &history_file {
                    let _ = first.load_history(path);
                }
                history = first.history().iter().cloned().collect();
            }
            Err(error) => {
                eprintln!("note: no line editor ({error}); reading plain lines");
                self.pipe_loop();
                return;
            }
        }
        println!(
            "bdl {} — `:help` lists the commands, Ctrl-D quits",
            env!("CARGO_PKG_VERSION")
        );
        loop {
            // A fresh editor for each prompt, dropped before the input runs: while `:infer`
            // runs, Ctrl-C reaches the process's handler and stops the run (see
            // `Self::line_editor`), and the next prompt takes the signal back.
            let read = match self.line_editor(&flags, &history) {
                Ok(mut line_editor) => {
                    let read = line_editor.readline("bdl> ");
                    if let Ok(line) = &read {
                        if !line.trim().is_empty() {
                            let _ = line_editor.add_history_entry(line.as_str());
                            history.push(line.clone());
                            if let Some(path) = &history_file {
                                if let Some(parent) = path.parent() {
                                    let _ = std::fs::create_dir_all(parent);
                                }
                                let _ = line_editor.save_history(path);
                            }
                        }
                    }
                    read
                }
                Err(error) => Err(error),
            };
            match read {
                Ok(line) => {
                    if let Flow::Quit = self.handle(&line) {
                        break;
                    }
                }
                // Ctrl-C at the prompt clears the line.
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(error) => {
                    eprintln!("error: the line editor failed: {error}");
                    break;
                }
            }
        }
    }

    fn pipe_loop(&mut self) {
        let stdin = std::io::stdin();
        let mut pending = String::new();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if pending.is_empty() && line.trim_start().starts_with(':') {
                if let Flow::Quit = self.handle(&line) {
                    return;
                }
                if self.failed && self.stop_on_error {
                    return;
                }
                continue;
            }
            pending.push_str(&line);
            pending.push('\n');
            if eval::is_complete(&pending) {
                let input = std::mem::take(&mut pending);
                if let Flow::Quit = self.handle(&input) {
                    return;
                }
                if self.failed && self.stop_on_error {
                    return;
                }
            }
        }
        if !pending.trim().is_empty() {
            self.handle(&pending);
        }
    }

    /// Every name completion offers.
    fn names(&self) -> Vec<String> {
        let mut names = editor::builtin_names();
        names.extend(self.environment.names.iter().cloned());
        if let Some(loaded) = &self.loaded {
            names.extend(loaded.model.program.slots.iter().filter_map(|slot| {
                use bdl_ir::BindingKind::*;
                matches!(slot.kind, Data | SizeVar | DataLet | Network | Function)
                    .then(|| slot.name.clone())
            }));
        }
        names.extend(self.site_names());
        names
    }

    /// The loaded model's sites and the session's.
    fn site_names(&self) -> Vec<String> {
        let mut sites: Vec<String> = self
            .loaded
            .iter()
            .flat_map(|loaded| loaded.model.sites.iter().map(|site| site.name.clone()))
            .collect();
        sites.extend(self.environment.sites.keys().cloned());
        sites
    }

    /// Prints a failure's diagnostics and remembers that something failed.
    fn report(&mut self, failure: Failure) {
        self.report_diagnostics(&failure.diagnostics);
    }

    fn report_diagnostics(&mut self, diagnostics: &[Diagnostic]) {
        eprint!("{}", self.session.render(diagnostics));
        self.failed = true;
    }

    /// Handles one input; errors are reported and the session goes on.
    fn handle(&mut self, input: &str) -> Flow {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Flow::Continue;
        }
        self.interrupt.reset();
        let result = match trimmed.strip_prefix(':') {
            Some(command) => self.command(command),
            None => {
                self.evaluate(input);
                Ok(Flow::Continue)
            }
        };
        match result {
            Ok(flow) => flow,
            Err(failure) => {
                self.report(failure);
                Flow::Continue
            }
        }
    }

    fn evaluate(&mut self, input: &str) {
        let empty = Context::default();
        let context = self
            .loaded
            .as_ref()
            .map_or(&empty, |loaded| &loaded.context);
        let mut evaluation = Evaluation {
            sources: &mut self.session.sources,
            environment: &mut self.environment,
            context,
        };
        match evaluation.run(input) {
            Ok(shown) => {
                for shown in shown {
                    match shown {
                        Shown::Value(text) => println!("{text}"),
                        Shown::Binding { name, text } if text.contains('\n') => {
                            println!("{name} =\n{text}")
                        }
                        Shown::Binding { name, text } => println!("{name} = {text}"),
                        Shown::Defined(name) => println!("defined `{name}`"),
                    }
                }
            }
            Err(mut diagnostics) => {
                // A model's sites are not names at the prompt; say where their values are.
                let sites = self.site_names();
                for diagnostic in &mut diagnostics {
                    let name = diagnostic
                        .message
                        .strip_prefix("unknown name `")
                        .and_then(|rest| rest.strip_suffix('`'));
                    if let Some(name) = name.filter(|name| sites.iter().any(|s| s == name)) {
                        diagnostic.hint = Some(format!(
                            "`{name}` is a site of the loaded model, not a name at the prompt: `:summary {name}` shows its posterior, `:prior N` its prior"
                        ));
                    }
                }
                self.report_diagnostics(&diagnostics)
            }
        }
    }

    fn command(&mut self, line: &str) -> Result<Flow, Failure> {
        let words = split_words(line).map_err(|message| command_error("E0921", message, None))?;
        let Some((name, rest)) = words.split_first() else {
            return Err(command_error(
                "E0921",
                "a command name is missing after `:`",
                Some("`:help` lists the commands"),
            ));
        };
        match name.as_str() {
            "q" | "quit" | "exit" => return Ok(Flow::Quit),
            "h" | "help" | "?" => print!("{HELP}"),
            "load" => self.load_command(rest)?,
            "data" => self.data_command(rest)?,
            "reset" => {
                self.environment = Environment::new(self.seed);
                println!("the session's bindings and sites are forgotten");
            }
            "sites" => self.sites_command(),
            "prior" => self.prior_command(rest)?,
            "infer" => self.infer_command(rest)?,
            "summary" => self.summary_command(rest)?,
            "predict" => self.predict_command()?,
            "plot" => self.plot_command(rest)?,
            "runs" => self.runs_command(),
            "loo" => self.loo_command(rest)?,
            "compare" => self.compare_command(rest)?,
            "emit" => self.emit_command(rest)?,
            other => {
                let names: Vec<&str> = editor::COMMANDS.iter().map(|c| &c[1..]).collect();
                let hint = match did_you_mean(other, names.iter().copied()) {
                    Some(close) => format!("did you mean `:{close}`? `:help` lists the commands"),
                    None => "`:help` lists the commands".to_string(),
                };
                return Err(command_error(
                    "E0921",
                    format!("unknown command `:{other}`"),
                    Some(&hint),
                ));
            }
        }
        Ok(Flow::Continue)
    }

    fn load(&mut self, path: &Path, data: &[PathBuf]) -> Result<(), Failure> {
        let loaded = Loaded::load(self.session, path, data, self.seed)?;
        println!("{}", loaded.describe());
        self.loaded = Some(loaded);
        self.environment = Environment::new(self.seed);
        self.last = None;
        Ok(())
    }

    fn load_command(&mut self, words: &[String]) -> Result<(), Failure> {
        let mut path = None;
        let mut data = Vec::new();
        let mut words = words.iter();
        while let Some(word) = words.next() {
            if word == "--data" {
                match words.next() {
                    Some(file) => data.push(PathBuf::from(file)),
                    None => return Err(command_error("E0922", "`--data` needs a file", None)),
                }
            } else if path.is_none() {
                path = Some(PathBuf::from(word));
            } else {
                return Err(command_error(
                    "E0922",
                    format!("`:load` takes one model file, got `{word}` too"),
                    Some("usage: `:load FILE [--data FILE]...`"),
                ));
            }
        }
        let Some(path) = path else {
            return Err(command_error(
                "E0922",
                "`:load` needs a model file",
                Some("usage: `:load FILE [--data FILE]...`"),
            ));
        };
        self.load(&path, &data)
    }

    fn loaded(&self) -> Result<&Loaded, Failure> {
        self.loaded.as_ref().ok_or_else(|| {
            command_error(
                "E0923",
                "no model is loaded",
                Some("load one with `:load FILE`, or start with `bdlc repl MODEL`"),
            )
        })
    }

    fn data_command(&mut self, words: &[String]) -> Result<(), Failure> {
        let loaded = self.loaded()?;
        let path = loaded.path.clone();
        if words.is_empty() {
            let files: Vec<String> = loaded
                .context
                .files
                .iter()
                .map(|f| f.name.clone())
                .collect();
            let origin = if loaded.data.is_empty() {
                "named by the model"
            } else {
                "given with `:data`"
            };
            println!("data files ({origin}): {}", files.join(", "));
            return Ok(());
        }
        let data: Vec<PathBuf> = words.iter().map(PathBuf::from).collect();
        let loaded = Loaded::load(self.session, &path, &data, self.seed)?;
        println!("{} (data: {})", loaded.describe(), words.join(", "));
        self.loaded = Some(loaded);
        self.last = None;
        Ok(())
    }

    fn sites_command(&mut self) {
        let mut rows: Vec<[String; 5]> = Vec::new();
        if let Some(loaded) = &self.loaded {
            for site in &loaded.model.sites {
                let kind = if site.observed && site.kind == SiteKind::Sample {
                    "observe"
                } else {
                    site.kind.as_str()
                };
                rows.push([
                    site.name.clone(),
                    kind.to_string(),
                    format!("{:?}", site.shape),
                    site.family.unwrap_or("-").to_string(),
                    if site.plates.is_empty() {
                        "-".to_string()
                    } else {
                        site.plates.join(", ")
                    },
                ]);
            }
        }
        let mut session_sites: Vec<(&String, &bdl_autodiff::Tensor)> =
            self.environment.sites.iter().collect();
        session_sites.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in session_sites {
            rows.push([
                name.clone(),
                "sample (session)".to_string(),
                format!("{:?}", value.shape()),
                "-".to_string(),
                "-".to_string(),
            ]);
        }
        if rows.is_empty() {
            println!("no sites: load a model with `:load FILE`, or draw one with `sample(...)`");
            return;
        }
        let header = ["site", "kind", "shape", "distribution", "plates"].map(str::to_string);
        let widths: Vec<usize> = (0..5)
            .map(|i| {
                rows.iter()
                    .chain(std::iter::once(&header))
                    .map(|row| row[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            let _ = writeln!(text, "{}", line.join("  ").trim_end());
        }
        print!("{text}");
    }

    /// Runs a method on the loaded model (or on the model with other data) and keeps the run.
    fn run_method(
        &mut self,
        flags: &InferFlags,
        method_override: Option<MethodName>,
        out: Option<&Path>,
        quiet: bool,
    ) -> Result<(RunResult, Rc<Model>, String), Failure> {
        let fresh;
        let loaded = if flags.data.is_empty() {
            self.loaded()?
        } else {
            let path = self.loaded()?.path.clone();
            fresh = Loaded::load(self.session, &path, &flags.data, self.seed)?;
            &fresh
        };
        let resolved = Resolved::new(flags, &loaded.model.program.settings);
        let method = Method::resolve(&resolved, method_override)?;
        let device = crate::device::for_inference(flags.device, quiet || self.quiet)?;
        let show = self.interactive && crate::progress::enabled(quiet || self.quiet);
        self.interrupt.reset();
        self.interrupt.set_stoppable(true);
        let result = run_method(
            &loaded.model,
            &method,
            out,
            crate::run::large::OutputOptions::default(),
            show,
            &self.interrupt.stop,
        );
        self.interrupt.set_stoppable(self.interactive);
        let mut result = result?;
        if let Some(device) = device {
            result.facts.insert("device".into(), device);
        }
        if let Some(out) = out {
            // The pointwise log-likelihood, as `bdlc infer --out` writes it (when it is small),
            // so that `bdlc loo DIR` and `:loo DIR` read the run.
            let fact = log_lik::write_for_run(
                &loaded.model,
                &result,
                out,
                log_lik::LogLikChoice::WhenSmall,
            )?;
            result.facts.insert("log_lik".into(), fact);
            let summary = result.summary_json(&loaded.path);
            write_file(&out.join("summary.json"), &format!("{summary:#}\n"))?;
        }
        let mut label = loaded.path.display().to_string();
        if !flags.data.is_empty() {
            let data: Vec<String> = flags.data.iter().map(|d| d.display().to_string()).collect();
            label = format!("{label} with {}", data.join(", "));
        }
        Ok((result, Rc::clone(&loaded.model), label))
    }

    /// Prints a run's table and warnings and keeps it as the last run.
    fn keep_run(&mut self, result: RunResult, model: Rc<Model>, label: String) {
        print!("{}", result.table());
        for warning in result.warning_messages() {
            eprintln!("warning: {warning}");
        }
        if result.interrupted {
            let draws = RunDraws::from_result(&result).n_draws();
            eprintln!("interrupted: keeping the {draws} draws finished so far");
        }
        let draws = RunDraws::from_result(&result);
        let number = self.runs.len() + 1;
        self.runs.push(SessionRun {
            number,
            label,
            model,
            result,
            draws,
        });
        self.last = Some(self.runs.len() - 1);
    }

    fn prior_command(&mut self, words: &[String]) -> Result<(), Failure> {
        let samples = match words {
            [] => 1000,
            [count] => count
                .parse::<i64>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| {
                    command_error(
                        "E0922",
                        format!("`:prior` takes a number of draws, got `{count}`"),
                        Some("usage: `:prior [N]`"),
                    )
                })?,
            _ => {
                return Err(command_error(
                    "E0922",
                    "`:prior` takes at most one argument",
                    Some("usage: `:prior [N]`"),
                ))
            }
        };
        let flags = InferFlags {
            samples: Some(samples),
            seed: Some(self.seed as i64),
            ..InferFlags::default()
        };
        let (result, model, label) =
            self.run_method(&flags, Some(MethodName::Prior), None, true)?;
        self.keep_run(result, model, label);
        Ok(())
    }

    fn infer_command(&mut self, words: &[String]) -> Result<(), Failure> {
        let arguments = std::iter::once(":infer".to_string()).chain(words.iter().cloned());
        let command = match InferCommand::try_parse_from(arguments) {
            Ok(command) => command,
            Err(error) => {
                use clap::error::ErrorKind;
                if matches!(
                    error.kind(),
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
                ) {
                    print!("{}", error.render());
                    return Ok(());
                }
                let text = error.render().to_string();
                let message = text
                    .lines()
                    .next()
                    .unwrap_or("bad arguments")
                    .trim_start_matches("error: ")
                    .to_string();
                let tip = text
                    .lines()
                    .map(str::trim)
                    .find(|line| line.starts_with("tip:"))
                    .map(|tip| tip.trim_start_matches("tip: ").to_string());
                return Err(Failure::usage(
                    "E0924",
                    message,
                    Some(tip.unwrap_or_else(|| "`:infer --help` lists the options".to_string())),
                ));
            }
        };
        let mut flags = command.flags.clone();
        if let Some(method) = &command.method {
            if flags.method.is_some() {
                return Err(command_error(
                    "E0924",
                    "the method is given twice",
                    Some("write `:infer METHOD` or `:infer --method METHOD`"),
                ));
            }
            flags.method = Some(method.clone());
        }
        if let Some(out) = &command.out {
            prepare_out_dir(out, command.force)?;
        }
        let (result, model, label) =
            self.run_method(&flags, None, command.out.as_deref(), command.quiet)?;
        if let Some(out) = &command.out {
            crate::output::mark_run_complete(out, result.interrupted)?;
        }
        if let (Some(out), true) = (&command.out, command.plot) {
            plot_cmd::plot_run(&self.loaded()?.model, &result, out)?;
        }
        self.keep_run(result, model, label);
        if let Some(out) = &command.out {
            eprintln!("wrote {}", out.display());
        }
        Ok(())
    }

    fn last(&self) -> Result<&SessionRun, Failure> {
        self.last.map(|index| &self.runs[index]).ok_or_else(|| {
            command_error(
                "E0925",
                "there is no run yet",
                Some("run `:infer METHOD` or `:prior N` first"),
            )
        })
    }

    /// Checks that every named site has draws in the last run.
    fn check_sites(&self, sites: &[String]) -> Result<(), Failure> {
        let last = self.last()?;
        let known = last.draws.sites();
        for site in sites {
            if !known.contains(&site.as_str()) {
                let hint = match did_you_mean(site, known.iter().copied()) {
                    Some(close) => {
                        format!("did you mean `{close}`? the run has: {}", known.join(", "))
                    }
                    None => format!("the run has: {}", known.join(", ")),
                };
                return Err(command_error(
                    "E0926",
                    format!("the last run has no site `{site}`"),
                    Some(&hint),
                ));
            }
        }
        Ok(())
    }

    fn summary_command(&mut self, sites: &[String]) -> Result<(), Failure> {
        self.check_sites(sites)?;
        let last = self.last()?;
        let table = Table {
            columns: last.result.columns.clone(),
            summary: last.result.summary.clone(),
            mcmc: last.result.mcmc,
            warnings: Vec::new(),
        }
        .only(sites);
        print!("{}", table.text());
        Ok(())
    }

    fn predict_command(&mut self) -> Result<(), Failure> {
        let loaded = self.loaded()?;
        let last = self.last()?;
        let model = &loaded.model;
        let located = plot_cmd::locate_sites(model, &last.draws).map_err(|reason| {
            Failure::run(
                "E0927",
                format!("the last run does not fit the loaded model: {reason}"),
            )
        })?;
        let runs = plot_cmd::predictive_runs(model, &located, &last.draws, 1000, self.seed)?;
        let observed = plot_cmd::observed_values(model, self.seed)?;
        let mut text = format!(
            "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            "", "observed", "mean", "sd", "5%", "50%", "95%"
        );
        let mut coverage = Vec::new();
        for site in model.observed_sites() {
            let Some(values) = observed.iter().find(|(name, _)| *name == site.name) else {
                continue;
            };
            let columns = crate::output::columns_of(&[site]);
            let mut inside = 0;
            for (flat, column) in columns.iter().enumerate() {
                let draws: Vec<f64> = runs
                    .iter()
                    .filter_map(|run| run.iter().find(|(name, _)| *name == site.name))
                    .filter_map(|(_, tensor)| tensor.data().get(flat).copied())
                    .collect();
                let value = values.1.get(flat).copied().unwrap_or(f64::NAN);
                let n = draws.len().max(1) as f64;
                let mean = draws.iter().sum::<f64>() / n;
                let sd = (draws.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
                    / (n - 1.0).max(1.0))
                .sqrt();
                let (low, middle, high) = (
                    quantile(&draws, 0.05),
                    quantile(&draws, 0.5),
                    quantile(&draws, 0.95),
                );
                if low <= value && value <= high {
                    inside += 1;
                }
                if flat < 10 {
                    let number = |v: f64| crate::output::display_number(v);
                    let _ = writeln!(
                        text,
                        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                        column.display_name(),
                        number(value),
                        number(mean),
                        number(sd),
                        number(low),
                        number(middle),
                        number(high)
                    );
                } else if flat == 10 {
                    let _ = writeln!(
                        text,
                        "  … {} more elements of `{}`",
                        columns.len() - 10,
                        site.name
                    );
                }
            }
            coverage.push(format!(
                "{}: {inside} of {} observed values lie inside the 90% predictive interval ({} posterior draws)",
                site.name,
                columns.len(),
                runs.len()
            ));
        }
        print!("{text}");
        for line in coverage {
            println!("{line}");
        }
        Ok(())
    }

    fn plot_command(&mut self, words: &[String]) -> Result<(), Failure> {
        let usage = Some(
            "usage: `:plot KIND [SITE] FILE [--bins N] [--data FILE]...` with KIND one of trace, density, hist, pair, rank, energy, loss, band, reliability; or `:plot SITE FILE` for a site's density; a FILE ending in .png is rendered to PNG",
        );
        // The options of `bdlc plot` that apply to one figure of the last run.
        let mut positional = Vec::new();
        let mut bins = None;
        let mut data = Vec::new();
        let mut rest = words.iter();
        while let Some(word) = rest.next() {
            match word.as_str() {
                "--bins" => {
                    let value = rest
                        .next()
                        .and_then(|value| value.parse::<usize>().ok())
                        .filter(|bins| (2..=500).contains(bins))
                        .ok_or_else(|| {
                            command_error("E0922", "`--bins` needs a number from 2 to 500", usage)
                        })?;
                    bins = Some(value);
                }
                "--data" => match rest.next() {
                    Some(file) => data.push(PathBuf::from(file)),
                    None => return Err(command_error("E0922", "`--data` needs a file", usage)),
                },
                flag if flag.starts_with("--") => {
                    return Err(command_error(
                        "E0922",
                        format!("unknown option `{flag}`"),
                        usage,
                    ))
                }
                _ => positional.push(word.clone()),
            }
        }
        let (kind, site, file) = match positional.as_slice() {
            [first, file] => match PlotKind::parse(first) {
                Some(kind) => (kind, None, file),
                None => (PlotKind::Density, Some(first.clone()), file),
            },
            [first, site, file] => match PlotKind::parse(first) {
                Some(kind) => (kind, Some(site.clone()), file),
                None => {
                    return Err(command_error(
                        "E0922",
                        format!("`{first}` is not a kind of figure"),
                        usage,
                    ))
                }
            },
            _ => {
                return Err(command_error(
                    "E0922",
                    "`:plot` needs what to draw and a file",
                    usage,
                ))
            }
        };
        if let Some(site) = &site {
            self.check_sites(std::slice::from_ref(site))?;
        }
        self.last()?;
        // The predictive band and the reliability diagram use the model the run was made on,
        // or that model with other data (held-out rows) given with `--data`.
        let other_data = if data.is_empty() {
            None
        } else {
            let path = self.loaded()?.path.clone();
            Some(Loaded::load(self.session, &path, &data, self.seed)?)
        };
        let last = self.last()?;
        let model = other_data
            .as_ref()
            .map_or(&*last.model, |loaded| &*loaded.model);
        let options = FigureOptions {
            model: Some(model),
            site: site.as_deref(),
            bins,
            seed: self.seed,
        };
        let svg = match plot_cmd::draw_figure(kind, &last.draws, &options)? {
            Drawn::Figure(svg) => svg,
            Drawn::NotApplicable(reason) => {
                return Err(command_error(
                    "E0928",
                    format!("no {} figure: {reason}", kind.name()),
                    None,
                ))
            }
        };
        let path = PathBuf::from(file);
        let is_png = path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("png"));
        let path = if is_png {
            plot_cmd::save_figure(&path, &svg, plot_cmd::FigureFormat::Png)?
        } else {
            write_file(&path, &svg)?;
            path
        };
        println!("wrote {}", path.display());
        Ok(())
    }

    fn runs_command(&self) {
        if self.runs.is_empty() {
            println!("no runs yet: `:infer METHOD` or `:prior N` makes one");
            return;
        }
        for run in &self.runs {
            let draws = run.draws.n_draws();
            let chains = run.draws.chains.len();
            let shape = if run.result.mcmc {
                format!("{chains} × {draws} draws")
            } else {
                format!("{draws} draws")
            };
            let last = if self.last == Some(run.number - 1) {
                "  (last)"
            } else {
                ""
            };
            println!(
                "{:>3}  {:<10} {:<18} {}{last}",
                run.number, run.result.method, shape, run.label
            );
        }
    }

    /// The PSIS-LOO or WAIC estimate of a run named by its number in the session or by the
    /// directory of a finished run, with the name to show for it.
    fn estimate_run(
        &self,
        word: &str,
        criterion: Criterion,
    ) -> Result<(String, loo_cmd::RunEstimate), Failure> {
        if let Ok(number) = word.parse::<usize>() {
            let Some(run) = number.checked_sub(1).and_then(|i| self.runs.get(i)) else {
                let hint = if self.runs.is_empty() {
                    "the session has no runs yet: `:infer METHOD` makes one".to_string()
                } else {
                    format!(
                        "the session's runs are numbered 1 to {}; `:runs` lists them",
                        self.runs.len()
                    )
                };
                return Err(command_error(
                    "E0947",
                    format!("the session has no run {number}"),
                    Some(&hint),
                ));
            };
            let name = format!("run {number}");
            let table = log_lik::table_for_run(&run.model, &run.result)?;
            // The same efficiency `bdlc loo` computes from the run's files: every output
            // column of the chains.
            let reff = if run.result.mcmc {
                let quantities = vec![true; run.result.columns.len()];
                loo_cmd::chains_efficiency(&run.result.draws, &quantities)
            } else {
                1.0
            };
            let estimate = loo_cmd::estimate_table(table, reff, criterion, &name)?;
            return Ok((name, estimate));
        }
        let dir = PathBuf::from(word);
        if !dir.is_dir() {
            return Err(command_error(
                "E0947",
                format!("`{word}` is neither a run of the session nor a run's directory"),
                Some("name a run by its number (`:runs` lists them) or give the `--out` directory of a finished run"),
            ));
        }
        let estimate = loo_cmd::estimate(&dir, criterion)?;
        Ok((dir.display().to_string(), estimate))
    }

    /// Splits the words of `:loo` and `:compare` into runs, `--waic` and `--seed S`.
    fn loo_words(
        words: &[String],
        usage: &str,
        seeded: bool,
    ) -> Result<(Vec<String>, Criterion, u64), Failure> {
        let mut runs = Vec::new();
        let mut criterion = Criterion::Loo;
        let mut seed = 0;
        let mut words = words.iter();
        while let Some(word) = words.next() {
            match word.as_str() {
                "--waic" => criterion = Criterion::Waic,
                "--seed" if seeded => {
                    seed = words
                        .next()
                        .and_then(|value| value.parse::<u64>().ok())
                        .ok_or_else(|| {
                            command_error(
                                "E0922",
                                "`--seed` needs a whole number (at least 0)",
                                Some(usage),
                            )
                        })?;
                }
                flag if flag.starts_with("--") => {
                    return Err(command_error(
                        "E0922",
                        format!("unknown option `{flag}`"),
                        Some(usage),
                    ))
                }
                run => runs.push(run.to_string()),
            }
        }
        Ok((runs, criterion, seed))
    }

    fn loo_command(&mut self, words: &[String]) -> Result<(), Failure> {
        let usage = "usage: `:loo [RUN] [--waic]`, RUN a run's number (`:runs` lists them; the last run by default) or a run's directory";
        let (runs, criterion, _) = Self::loo_words(words, usage, false)?;
        let run = match runs.as_slice() {
            [] => match self.last {
                Some(index) => self.runs[index].number.to_string(),
                None => {
                    return Err(command_error(
                        "E0925",
                        "there is no run yet",
                        Some("run `:infer METHOD` first, or name a run's directory"),
                    ))
                }
            },
            [run] => run.clone(),
            _ => {
                return Err(command_error(
                    "E0922",
                    "`:loo` takes one run; `:compare` compares several",
                    Some(usage),
                ))
            }
        };
        let (name, estimate) = self.estimate_run(&run, criterion)?;
        let described = match run.parse::<usize>() {
            Ok(number) => {
                let run = &self.runs[number - 1];
                format!("{name} ({}, {})", run.result.method, run.label)
            }
            Err(_) => name,
        };
        print!("{}", loo_cmd::loo_text(&described, &estimate));
        for warning in loo_cmd::warnings(&estimate) {
            eprintln!("warning: {warning}");
        }
        Ok(())
    }

    fn compare_command(&mut self, words: &[String]) -> Result<(), Failure> {
        let usage = "usage: `:compare RUN RUN... [--waic] [--seed S]`, each RUN a run's number (`:runs` lists them) or a run's directory";
        let (runs, criterion, seed) = Self::loo_words(words, usage, true)?;
        if runs.len() < 2 {
            return Err(command_error(
                "E0922",
                "`:compare` needs at least two runs",
                Some(usage),
            ));
        }
        let mut names = Vec::new();
        let mut estimates = Vec::new();
        for run in &runs {
            let (name, estimate) = self.estimate_run(run, criterion)?;
            names.push(name);
            estimates.push(estimate);
        }
        let rows = loo_cmd::compare_estimates(&names, &estimates, seed)?;
        print!("{}", loo_cmd::compare_table(&names, seed, criterion, &rows));
        for (name, estimate) in names.iter().zip(&estimates) {
            for warning in loo_cmd::warnings(estimate) {
                eprintln!("warning: {name}: {warning}");
            }
        }
        Ok(())
    }

    fn emit_command(&mut self, words: &[String]) -> Result<(), Failure> {
        let stage = words.first().map(String::as_str);
        if words.len() != 1 || !matches!(stage, Some("ast" | "ir")) {
            return Err(command_error(
                "E0922",
                "`:emit` takes `ast` or `ir`",
                Some("usage: `:emit ast|ir`"),
            ));
        }
        match (&self.loaded, stage) {
            (Some(loaded), Some("ast")) => print!("{}", bdl_syntax::print(&loaded.ast)),
            (Some(loaded), _) => print!("{}", loaded.model.program),
            (None, _) => {
                let source = eval::session_source(&Context::default(), &self.environment);
                if stage == Some("ast") {
                    let parsed = bdl_syntax::parse(bdl_diagnostics::FileId(0), &source);
                    print!("{}", bdl_syntax::print(&parsed.program));
                } else {
                    let mut scratch = bdl_diagnostics::SourceMap::new();
                    match bdl_runtime::pipeline::compile(&mut scratch, "<repl>", source.as_bytes())
                    {
                        Ok(compiled) => print!("{}", compiled.program),
                        Err(diagnostics) => {
                            eprint!(
                                "{}",
                                bdl_diagnostics::render_all(&diagnostics, &scratch, false)
                            );
                            self.failed = true;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_like_a_shell() {
        assert_eq!(
            split_words("infer svi --steps 10").unwrap(),
            vec!["infer", "svi", "--steps", "10"]
        );
        assert_eq!(
            split_words("load \"my model.bdl\"").unwrap(),
            vec!["load", "my model.bdl"]
        );
        assert!(split_words("load \"open").is_err());
    }

    #[test]
    fn infer_takes_the_flags_of_the_command_line() {
        let command =
            InferCommand::try_parse_from([":infer", "svi", "--steps", "20", "--lr", "0.1"])
                .unwrap();
        assert_eq!(command.method.as_deref(), Some("svi"));
        assert_eq!(command.flags.steps_count(), Some(20));
        assert!(InferCommand::try_parse_from([":infer", "--step", "20"]).is_err());
    }
}
