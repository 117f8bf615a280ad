//! Structural invariants of `bdl-infer` that the compiler does not check, read from the sources:
//! only the driver spawns rayon work for units, and no algorithm defines a progress-event type of
//! its own (they all report `driver::Progress`).
#![allow(clippy::disallowed_methods)] // Reads the sources.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively, with its text.
fn sources(dir: &Path, files: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the source directory is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            files.push((path, text));
        }
    }
}

fn crate_sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 10, "the sources were found");
    files
        .into_iter()
        .map(|(path, text)| {
            let relative = path.strip_prefix(&src).expect("under src");
            (relative.to_string_lossy().replace('\\', "/"), text)
        })
        .collect()
}

/// Chains and ensemble members run in parallel only through `driver::run_units`; rayon appears
/// elsewhere only for data parallelism inside one unit's step (ELBO particles), over the draws of
/// one fitted guide (importance ratios), or over columns (summaries, batch and streamed).
#[test]
fn only_the_driver_spawns_rayon_work_for_units() {
    let allowed = [
        "driver.rs",
        "vi/elbo.rs",
        "vi/importance.rs",
        "diagnostics/summary.rs",
        "diagnostics/streaming.rs",
    ];
    let mut offenders = Vec::new();
    for (file, text) in crate_sources() {
        let uses_rayon = text.contains("rayon::") || text.contains("par_iter");
        if uses_rayon && !allowed.contains(&file.as_str()) {
            offenders.push(file);
        }
    }
    assert!(
        offenders.is_empty(),
        "these files use rayon outside the driver: {offenders:?}"
    );
    let driver = crate_sources()
        .into_iter()
        .find(|(file, _)| file == "driver.rs")
        .expect("driver.rs")
        .1;
    assert!(driver.contains("(0..n_units).into_par_iter()"));
}

/// Every algorithm reports progress as the driver's one `Progress` type: none declares an event
/// type of its own.
#[test]
fn no_algorithm_has_a_progress_event_type_of_its_own() {
    let mut offenders = Vec::new();
    for (file, text) in crate_sources() {
        for line in text.lines() {
            let line = line.trim_start();
            let declares = line.starts_with("pub struct ") || line.starts_with("pub enum ");
            let name: String = line
                .split_whitespace()
                .nth(2)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if declares && name.ends_with("Event") {
                offenders.push(format!("{file}: {line}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "event types besides Progress: {offenders:?}"
    );
}
