//! Data-file errors as the driver meets them, from the bytes it reads: a data file that is not
//! UTF-8 text (located by the loader), and one that does not exist. (Errors in the text of a data file are the runtime's
//! corpus, `crates/bdl-runtime/tests/data_errors/`.) Each must be one clear diagnostic naming the
//! file, with the documented exit code, never a panic.
#![allow(clippy::disallowed_methods)] // Tests write their inputs to a scratch folder.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A model reading `x` from `file`.
fn model_reading(file: &str) -> String {
    format!(
        "data from \"{file}\" {{\n    x: vector[N]\n}}\n\nmodel {{\n    let mu = sample(\"mu\", \
         Normal(0, 1))\n    plate(\"data\", N) {{\n        observe(\"x\", Normal(mu, 1), x)\n    \
         }}\n}}\n"
    )
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if directory.exists() {
        std::fs::remove_dir_all(&directory).expect("the scratch folder can be cleared");
    }
    std::fs::create_dir_all(&directory).expect("the scratch folder can be made");
    directory
}

/// Runs `bdlc diagnose MODEL` in `directory`; returns the exit code and stderr.
fn diagnose(directory: &Path, model: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(["diagnose", model])
        .current_dir(directory)
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_data_file_that_is_not_utf8_is_one_error_naming_it() {
    let directory = scratch("not_utf8");
    std::fs::write(directory.join("model.bdl"), model_reading("latin1.csv")).expect("writable");
    // "x", then 0.5, then a row whose first bytes are not UTF-8 (Latin-1 "é" and a BOM half).
    std::fs::write(directory.join("latin1.csv"), b"x\n0.5\n\xe9\xfe1.5\n").expect("writable");
    let (code, stderr) = diagnose(&directory, "model.bdl");
    assert_eq!(code, 1, "{stderr}");
    // The loader locates the bad byte: line 3, column 1, with an excerpt of the line.
    let expected = "\
[E0401] Error: `latin1.csv` is not UTF-8 text: byte 0xE9 at line 3, column 1 is not valid UTF-8
   ╭─[ latin1.csv:3:1 ]
   │
 3 │ \u{fffd}\u{fffd}1.5
   │ ┬  
   │ ╰── not UTF-8
   │ 
   │ Help: save the file as UTF-8; data files are CSV or JSON text, or NumPy `.npy`/`.npz` arrays
───╯
";
    assert_eq!(stderr, expected);
}

#[test]
fn a_data_file_that_does_not_exist_is_located_in_the_model() {
    let directory = scratch("absent");
    std::fs::write(directory.join("model.bdl"), model_reading("absent.csv")).expect("writable");
    let (code, stderr) = diagnose(&directory, "model.bdl");
    assert_eq!(code, 2, "{stderr}");
    let expected = "\
[E0902] Error: cannot read data file `absent.csv`: no such file
   ╭─[ model.bdl:1:11 ]
   │
 1 │ data from \"absent.csv\" {
   │           ──────┬─────  
   │                 ╰─────── named here
   │ 
   │ Help: paths in `data from` are relative to the model file; `--data FILE` overrides them
───╯
";
    assert_eq!(stderr, expected);
}
