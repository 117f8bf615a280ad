//! Printing a tree and parsing the text again gives the same tree, for every valid program of
//! the corpus (`tests/parse/ok/*.bdl`) and every bundled model (`models/*.bdl`).
#![allow(clippy::disallowed_methods)] // Tests read the corpus files from disk.

use bdl_diagnostics::FileId;
use bdl_syntax::{erase_positions, parse, print};
use std::path::{Path, PathBuf};

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for folder in ["tests/parse/ok", "models"] {
        let entries = std::fs::read_dir(root.join(folder)).expect("corpus folder exists");
        for entry in entries {
            let path = entry.expect("readable folder").path();
            if path.extension().is_some_and(|ext| ext == "bdl") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn printing_then_parsing_gives_the_same_tree() {
    let files = corpus();
    assert!(files.len() >= 8, "the corpus has the bundled models");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable model");
        let first = parse(FileId(0), &text);
        assert!(
            first.diagnostics.is_empty(),
            "{} should parse cleanly: {:#?}",
            path.display(),
            first.diagnostics
        );
        let printed = print(&first.program);
        let second = parse(FileId(0), &printed);
        assert!(
            second.diagnostics.is_empty(),
            "the printed form of {} should parse cleanly:\n{printed}\n{:#?}",
            path.display(),
            second.diagnostics
        );
        let (mut a, mut b) = (first.program, second.program);
        erase_positions(&mut a);
        erase_positions(&mut b);
        assert_eq!(
            a,
            b,
            "round trip changed the tree of {}:\n{printed}",
            path.display()
        );
        // Printing is idempotent: the canonical layout prints as itself.
        assert_eq!(print(&b), printed);
    }
}
