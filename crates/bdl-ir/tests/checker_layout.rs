//! The checker stays in parts: every file under `src/check/` is at most 800 lines and opens with
//! a `//!` paragraph saying what it is for, so a new concern gets its own file instead of
//! growing one checker again (docs/architecture.md).
#![allow(clippy::disallowed_methods)] // The test reads the checker's source files.

const MAX_LINES: usize = 800;

#[test]
fn every_checker_file_is_short_and_documented() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/check");
    let mut problems = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&folder).expect("src/check exists") {
        let path = entry.expect("a folder entry").path();
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        let lines = text.lines().count();
        if lines > MAX_LINES {
            problems.push(format!(
                "{}: {lines} lines, more than {MAX_LINES}",
                path.display()
            ));
        }
        if !text.starts_with("//! ") {
            problems.push(format!("{}: no `//!` header", path.display()));
        }
    }
    assert!(files >= 2, "the checker has {files} files");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
