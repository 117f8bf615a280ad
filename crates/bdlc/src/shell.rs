//! `bdlc completions SHELL` and `bdlc man`: the shell completion scripts and the roff manual
//! pages, both generated from the same clap definition as the parser so that they never drift
//! from the flags `bdlc` accepts.

use crate::session::Failure;
use clap::Args;
use clap_complete::Shell;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `bdlc completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of `bdlc man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write `bdlc.1` and one `bdlc-SUBCOMMAND.1` page per subcommand into this directory
    /// (created if missing) instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script of `shell` for `command` to stdout.
pub fn completions(args: &CompletionsArgs, mut command: clap::Command) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "bdlc", &mut script);
    write_stdout(&script)
}

/// Prints the main man page, or writes every page into `--out`.
pub fn man(args: &ManArgs, command: clap::Command) -> Result<(), Failure> {
    match &args.out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|error| write_failure("the man page", &error))?;
            write_stdout(&page)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|error| write_failure(&format!("`{}`", dir.display()), &error))?;
            clap_mangen::generate_to(command, dir)
                .map_err(|error| write_failure(&format!("pages in `{}`", dir.display()), &error))?;
            eprintln!("wrote the man pages to {}", dir.display());
            Ok(())
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|error| write_failure("standard output", &error))
}

fn write_failure(what: &str, error: &std::io::Error) -> Failure {
    Failure::usage("E0943", format!("could not write {what}: {error}"), None)
}
