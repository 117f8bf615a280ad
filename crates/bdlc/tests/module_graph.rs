//! The modules of `bdlc` import one another without cycles.
//!
//! The test reads `crates/bdlc/src`, takes one node per module file (`main.rs` is the crate root,
//! `run/mod.rs` is `run`, `run/svi.rs` is `run::svi`), and draws an edge from a module to every
//! module it names through a `crate::` or `super::` path (in `use` lines and in code) and from a
//! parent to each child it declares with `mod`. A path resolves to the longest module that
//! prefixes it, so naming an item of the crate root (`crate::Interrupt`) is an edge to the root.
//! The graph must be acyclic; the test prints it, and names the modules of a cycle when it finds
//! one. Run `cargo test -p bdlc --test module_graph -- --nocapture` to see the graph.
#![allow(clippy::disallowed_methods, clippy::print_stdout)] // Reads the sources; prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the source directory is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The module path of a source file relative to `src` (`crate` for the root).
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().expect("a file name");
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "main" && stem != "lib" {
        parts.push(stem.to_string());
    }
    if parts.is_empty() {
        "crate".to_string()
    } else {
        parts.join("::")
    }
}

/// The text without `//` comments (doc comments included), so that prose never adds edges.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal is rare in this crate; a line is cut at the first.
            Some(index) => &line[..index],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths named after each `prefix` (`crate::` or `super::`), brace groups expanded one level:
/// `crate::{a::b, c}` gives `a::b` and `c`.
fn paths_after(text: &str, prefix: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(index) = rest.find(prefix) {
        let preceded_by_identifier = rest[..index]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        rest = &rest[index + prefix.len()..];
        if preceded_by_identifier {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = 0;
            for (offset, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = offset;
                    break;
                }
            }
            let mut depth = 0;
            let mut start = 0;
            let inner = &group[..end];
            for (offset, c) in inner.char_indices().chain([(inner.len(), ',')]) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        paths.push(path_head(&inner[start..offset]));
                        start = offset + 1;
                    }
                    _ => {}
                }
            }
        } else {
            paths.push(path_head(rest));
        }
    }
    paths.retain(|path| !path.is_empty());
    paths
}

/// The leading `a::b::c` of a path, up to the first character that cannot be part of it.
fn path_head(text: &str) -> String {
    let text = text.trim();
    let end = text
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .map_or(text.len(), |(i, _)| i);
    text[..end].trim_end_matches(':').to_string()
}

/// The longest module of `modules` that prefixes `path` (the root when none does).
fn resolve(path: &str, modules: &BTreeSet<String>) -> String {
    let parts: Vec<&str> = path.split("::").collect();
    for length in (1..=parts.len()).rev() {
        let candidate = parts[..length].join("::");
        if modules.contains(&candidate) {
            return candidate;
        }
    }
    "crate".to_string()
}

/// The module graph of the sources under `src`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|path| module_of(path.strip_prefix(src).expect("under src")))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let module = module_of(path.strip_prefix(src).expect("under src"));
        let text = without_comments(&std::fs::read_to_string(path).expect("a readable source"));
        let mut targets = BTreeSet::new();
        for named in paths_after(&text, "crate::") {
            targets.insert(resolve(&named, &modules));
        }
        let parent = module
            .rsplit_once("::")
            .map_or("crate", |(parent, _)| parent);
        for named in paths_after(&text, "super::") {
            let absolute = if parent == "crate" {
                named
            } else {
                format!("{parent}::{named}")
            };
            targets.insert(resolve(&absolute, &modules));
        }
        for line in text.lines() {
            let line = line.trim();
            let declared = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))
                .and_then(|rest| rest.strip_suffix(';'));
            if let Some(child) = declared {
                let child = if module == "crate" {
                    child.to_string()
                } else {
                    format!("{module}::{child}")
                };
                if modules.contains(&child) {
                    targets.insert(child);
                }
            }
        }
        targets.remove(&module);
        graph.insert(module, targets);
    }
    graph
}

/// A cycle of the graph, as the modules along it, or `None` when it is acyclic.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, marks, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if !marks.contains_key(node) {
            if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

#[test]
fn the_modules_of_bdlc_import_one_another_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    for (module, targets) in &graph {
        let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
        println!("{module} -> {}", targets.join(", "));
    }
    assert!(graph.len() > 10, "the sources were not found under {src:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules of bdlc import one another in a cycle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_resolves_paths() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("a".into(), ["b".to_string()].into());
    graph.insert("b".into(), ["c".to_string()].into());
    graph.insert("c".into(), ["a".to_string()].into());
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    graph.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);

    let text =
        "use crate::{run::outcome::{finish, Outcome}, session::Failure};\nx = crate::Interrupt;";
    let named = paths_after(text, "crate::");
    assert_eq!(
        named,
        vec!["run::outcome::", "session::Failure", "Interrupt"]
            .into_iter()
            .map(|p| p.trim_end_matches(':').to_string())
            .collect::<Vec<_>>()
    );
    let modules: BTreeSet<String> = ["run", "run::outcome", "session"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(resolve("run::outcome::finish", &modules), "run::outcome");
    assert_eq!(resolve("Interrupt", &modules), "crate");
}

/// Progress is rendered in one place: only `progress.rs` draws bars (with `indicatif`); every
/// method module hands the driver's `Progress` to `progress::UnitBars`.
#[test]
fn only_the_progress_module_draws_progress_bars() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut drawing = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("a readable source file");
        if without_comments(&text).contains("indicatif") {
            let relative = path.strip_prefix(&src).expect("under src");
            drawing.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    assert_eq!(drawing, vec!["progress.rs".to_string()]);
}
