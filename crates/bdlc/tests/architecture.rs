//! The dependency directions of docs/architecture.md, checked against `cargo metadata`: the
//! front end (`bdl-diagnostics`, `bdl-syntax`, `bdl-ir`) never depends on the numerical crates,
//! `bdl-infer` sees neither syntax nor tapes, the maths crates never see syntax, and nothing
//! depends on the binary.
#![allow(clippy::disallowed_methods)] // Reads the workspace's metadata.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Each workspace crate and the workspace crates it depends on (normal and build dependencies;
/// dev-dependencies are free to reach anywhere).
fn workspace_dependencies() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("a package list");
    let members: Vec<String> = packages
        .iter()
        .filter_map(|package| package["name"].as_str().map(String::from))
        .collect();
    packages
        .iter()
        .filter_map(|package| {
            let name = package["name"].as_str()?.to_string();
            let dependencies = package["dependencies"]
                .as_array()?
                .iter()
                .filter(|dependency| dependency["kind"].as_str() != Some("dev"))
                .filter_map(|dependency| dependency["name"].as_str().map(String::from))
                .filter(|dependency| members.contains(dependency))
                .collect();
            Some((name, dependencies))
        })
        .collect()
}

/// Every crate `name` reaches through workspace dependencies.
fn reaches(graph: &BTreeMap<String, Vec<String>>, name: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut stack = vec![name.to_string()];
    while let Some(current) = stack.pop() {
        for next in graph.get(&current).into_iter().flatten() {
            if !seen.contains(next) {
                seen.push(next.clone());
                stack.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn dependencies_point_one_way() {
    let graph = workspace_dependencies();
    let forbidden: [(&str, &[&str]); 8] = [
        (
            "bdl-diagnostics",
            &[
                "bdl-syntax",
                "bdl-ir",
                "bdl-autodiff",
                "bdl-dist",
                "bdl-infer",
                "bdl-runtime",
                "bdlc",
            ],
        ),
        (
            "bdl-syntax",
            &[
                "bdl-ir",
                "bdl-autodiff",
                "bdl-dist",
                "bdl-infer",
                "bdl-runtime",
                "bdlc",
            ],
        ),
        (
            "bdl-ir",
            &[
                "bdl-autodiff",
                "bdl-dist",
                "bdl-infer",
                "bdl-runtime",
                "bdlc",
            ],
        ),
        (
            "bdl-autodiff",
            &[
                "bdl-syntax",
                "bdl-ir",
                "bdl-dist",
                "bdl-infer",
                "bdl-runtime",
                "bdlc",
            ],
        ),
        (
            "bdl-dist",
            &["bdl-syntax", "bdl-ir", "bdl-infer", "bdl-runtime", "bdlc"],
        ),
        (
            "bdl-infer",
            &[
                "bdl-syntax",
                "bdl-ir",
                "bdl-autodiff",
                "bdl-runtime",
                "bdlc",
            ],
        ),
        (
            "bdl-gpu",
            &[
                "bdl-diagnostics",
                "bdl-syntax",
                "bdl-ir",
                "bdl-autodiff",
                "bdl-dist",
                "bdl-infer",
                "bdl-runtime",
                "bdlc",
            ],
        ),
        ("bdl-runtime", &["bdlc"]),
    ];
    let mut violations = Vec::new();
    for (name, never) in forbidden {
        let reached = reaches(&graph, name);
        for crate_name in never {
            if reached.iter().any(|r| r == crate_name) {
                violations.push(format!("{name} depends on {crate_name}"));
            }
        }
    }
    for (name, dependencies) in &graph {
        // The Python bindings are a front end beside the command line: they run its method
        // drivers through `bdlc`'s library target (`bdlc::embed`), so that each method has one
        // driver; no other crate depends on `bdlc`.
        if dependencies.iter().any(|d| d == "bdlc") && name != "bdl-py" {
            violations.push(format!("{name} depends on the command line"));
        }
        if dependencies.iter().any(|d| d == "bdl-py") {
            violations.push(format!("{name} depends on the Python bindings"));
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_front_end_crates_are_in_the_workspace() {
    let graph = workspace_dependencies();
    for name in ["bdl-diagnostics", "bdl-syntax", "bdl-ir", "bdlc"] {
        assert!(graph.contains_key(name), "{name} is a workspace member");
    }
}
