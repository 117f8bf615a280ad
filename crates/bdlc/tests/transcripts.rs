//! The command line's transcript suite: every subcommand, its error cases and exit codes, as
//! recorded sessions under `tests/cli/` at the repository root (trycmd's `.trycmd` and `.toml`
//! formats; see `docs/cli.md`). Outputs are deterministic: fixed seeds, `--quiet`, no colour, no
//! history file. After an intended change of output, `TRYCMD=overwrite cargo test -p bdlc --test
//! transcripts` rewrites the expected outputs; read the diff before keeping it.

use std::path::{Path, PathBuf};

#[test]
fn cli_transcripts() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cli");
    trycmd::TestCases::new()
        .register_bin("bdlc", PathBuf::from(env!("CARGO_BIN_EXE_bdlc")))
        .env("NO_COLOR", "1")
        .env("BDL_HISTORY", "")
        .case(corpus.join("*.trycmd"))
        .case(corpus.join("*.toml"));
}
