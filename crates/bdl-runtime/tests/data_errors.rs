//! The data-error corpus: every model under `tests/data_errors/` names data files that are wrong
//! in one way (a missing column or key, a wrong length, rank or type, a value that is not finite
//! or out of bounds, a file that does not parse). Loading must fail with located diagnostics,
//! never panic, and the rendered text must equal the committed insta snapshot next to the model
//! (`NAME.snap`).
//!
//! Each model starts with one or more `// expect: "..."` lines: texts that must appear in the
//! first diagnostic's message (the data file's name, the column or key, the row), so that a
//! re-accepted snapshot cannot silently lose them. After an intended change of wording, review
//! and accept the new renderings with `cargo insta review` (or rerun with `INSTA_UPDATE=always`).
//!
//! A second test mutates the bundled models' data files at random (seeded) and checks that
//! loading them never panics and that every error it reports is located.
#![allow(clippy::disallowed_methods)] // Tests read the corpus.

use bdl_diagnostics::{render_all, Diagnostic, SourceMap};
use bdl_infer::rng::stream_rng;
use bdl_runtime::data::{self, Completeness, DataFile};
use bdl_runtime::pipeline;
use rand::Rng as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data_errors")
}

/// Compiles `NAME.bdl`, reads the data files it names (relative to the corpus, reported under
/// the names written in the model) and loads them. Returns the diagnostics and the source map.
fn load_case(name: &str) -> Result<(Vec<Diagnostic>, SourceMap), String> {
    let directory = corpus();
    let model_name = format!("{name}.bdl");
    let bytes = std::fs::read(directory.join(&model_name)).map_err(|e| e.to_string())?;
    let mut sources = SourceMap::new();
    let compiled = pipeline::compile(&mut sources, &model_name, &bytes)
        .map_err(|diagnostics| render_all(&diagnostics, &sources, false))?;
    let files: Vec<DataFile> = compiled
        .program
        .data_files
        .iter()
        .map(|reference| {
            // Bytes, as the driver reads them: some cases are not UTF-8 on purpose.
            let bytes = std::fs::read(directory.join(&reference.path))
                .map_err(|e| format!("{}: {e}", reference.path))?;
            let file = sources.add(
                reference.path.clone(),
                String::from_utf8_lossy(&bytes).into_owned(),
            );
            Ok(DataFile {
                name: reference.path.clone(),
                bytes,
                file,
            })
        })
        .collect::<Result<_, String>>()?;
    let observed = pipeline::observed_only(&compiled.program);
    match data::load(&compiled.program, &files, Completeness::All, &observed) {
        Ok(_) => Err("the data loaded without an error".to_string()),
        Err(diagnostics) => Ok((diagnostics, sources)),
    }
}

/// The texts the case's `// expect: "..."` lines require in the first message.
fn expectations(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| line.trim().strip_prefix("// expect:"))
        .flat_map(|rest| {
            rest.split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Checks one case: its rendered diagnostics, or what is wrong with it apart from its snapshot.
fn verify(name: &str) -> Result<String, String> {
    let directory = corpus();
    let source = std::fs::read_to_string(directory.join(format!("{name}.bdl")))
        .map_err(|error| format!("{name}: cannot read the model: {error}"))?;
    let loaded = catch_unwind(AssertUnwindSafe(|| load_case(name)));
    let (diagnostics, sources) = match loaded {
        Err(_) => return Err(format!("{name}: loading the data panicked")),
        Ok(Err(problem)) => return Err(format!("{name}: {problem}")),
        Ok(Ok(result)) => result,
    };
    let mut problems = Vec::new();
    if !diagnostics.iter().all(|d| d.primary_span().is_some()) {
        problems.push("a diagnostic without a location".to_string());
    }
    let first = &diagnostics[0].message;
    for expected in expectations(&source) {
        if !first.contains(&expected) {
            problems.push(format!(
                "the message `{first}` does not contain `{expected}`"
            ));
        }
    }
    if expectations(&source).is_empty() {
        problems.push("no `// expect:` line".to_string());
    }
    let rendered = render_all(&diagnostics, &sources, false);
    if problems.is_empty() {
        Ok(rendered)
    } else {
        Err(format!(
            "{name}: {}; the rendering was:\n{rendered}",
            problems.join("; ")
        ))
    }
}

#[test]
fn every_data_error_is_located_and_matches_its_snapshot() {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .expect("tests/data_errors exists")
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .strip_suffix(".bdl")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 25, "the corpus has {} cases", names.len());
    let mut failures = Vec::new();
    let mut renderings = Vec::new();
    for name in &names {
        match verify(name) {
            Ok(rendered) => renderings.push((name, rendered)),
            Err(problem) => failures.push(problem),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(corpus());
    settings.set_prepend_module_to_snapshot(false);
    for (name, rendered) in renderings {
        settings.bind(|| insta::assert_snapshot!(name.as_str(), rendered));
    }
}

/// Pieces inserted by the mutation test: the characters CSV and JSON give meaning to, and values
/// the loader must reject.
const INSERTIONS: [&str; 22] = [
    ",",
    "\n",
    "\r\n",
    "\"",
    "[",
    "]",
    "{",
    "}",
    ":",
    "-",
    "#",
    " ",
    "1e999",
    "NaN",
    "NA",
    "inf",
    "1.5",
    "null",
    "true",
    "é",
    "\u{feff}",
    "99999999999999999999",
];

/// `text` with one random edit: a deletion, an insertion or a replacement at character
/// boundaries.
fn mutate(text: &str, rng: &mut impl rand::Rng) -> String {
    let boundaries: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let at = boundaries[rng.random_range(0..boundaries.len())];
    let until = boundaries
        .iter()
        .copied()
        .filter(|&b| b >= at)
        .nth(rng.random_range(0..4))
        .unwrap_or(text.len());
    let insertion = INSERTIONS[rng.random_range(0..INSERTIONS.len())];
    match rng.random_range(0..3) {
        0 => format!("{}{}", &text[..at], &text[until..]),
        1 => format!("{}{insertion}{}", &text[..at], &text[at..]),
        _ => format!("{}{insertion}{}", &text[..at], &text[until..]),
    }
}

#[test]
fn mutated_data_files_never_panic_and_errors_are_located() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    // A JSON file with declared sizes and bounds, and a CSV file with a matrix and int labels.
    for (model_name, data_name, mutations) in [
        ("eight_schools.bdl", "data/eight_schools.json", 400),
        ("iris_bnn.bdl", "data/iris_train.csv", 200),
    ] {
        let bytes = std::fs::read(models.join(model_name)).expect("bundled model");
        let original = std::fs::read_to_string(models.join(data_name)).expect("bundled data");
        let mut rng = stream_rng(11, 0);
        let mut rejected = 0;
        for round in 0..mutations {
            let mut text = original.clone();
            for _ in 0..rng.random_range(1..4) {
                text = mutate(&text, &mut rng);
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let mut sources = SourceMap::new();
                let compiled = pipeline::compile(&mut sources, model_name, &bytes)
                    .expect("the bundled model compiles");
                let file = sources.add(data_name, text.clone());
                let files = [DataFile::from_text(data_name, text.clone(), file)];
                let observed = pipeline::observed_only(&compiled.program);
                match data::load(&compiled.program, &files, Completeness::All, &observed) {
                    Ok(_) => None,
                    Err(diagnostics) => {
                        // Rendering must not panic either, whatever the spans.
                        let rendered = render_all(&diagnostics, &sources, false);
                        Some((diagnostics, rendered))
                    }
                }
            }));
            match outcome {
                Err(_) => panic!("{data_name}, mutation {round}: loading panicked on:\n{text}"),
                Ok(None) => {}
                Ok(Some((diagnostics, rendered))) => {
                    rejected += 1;
                    assert!(!diagnostics.is_empty(), "{data_name}, mutation {round}");
                    assert!(
                        diagnostics.iter().all(|d| d.primary_span().is_some()),
                        "{data_name}, mutation {round}: an unlocated diagnostic:\n{rendered}"
                    );
                }
            }
        }
        // Most random edits break the file; a test that rejects nothing tests nothing.
        assert!(
            rejected * 4 > mutations,
            "{data_name}: only {rejected} of {mutations} rejected"
        );
    }
}
