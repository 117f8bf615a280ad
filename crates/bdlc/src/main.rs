//! The `bdlc` binary: parses the command line and runs it (the library's [`bdlc::main`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    bdlc::main()
}
