//! The SVG figures render in a real renderer (resvg): the predictive band of the sine BNN, the
//! densities and traces of eight schools, the SVI loss curve, and the examples committed under
//! `docs/figures/`. A figure passes when it parses, has a sensible size, and puts ink on a fair
//! share of its pixels; where the machine has fonts, its title is drawn too.
#![allow(clippy::disallowed_methods)] // Tests run the binary and read the files it writes.

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{Options, Tree};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str) -> PathBuf {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("a scratch folder");
    directory
}

fn bdlc(args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(args)
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc runs");
    assert!(
        output.status.success(),
        "bdlc {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Options with the machine's fonts, the generic `sans-serif` mapped to one that exists.
fn options() -> Options<'static> {
    let mut options = Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_system_fonts();
    let family = fonts
        .faces()
        .flat_map(|face| face.families.iter().map(|(name, _)| name.clone()))
        .find(|name| name.contains("Sans") && !name.contains("Mono"));
    if let Some(family) = family {
        fonts.set_sans_serif_family(family);
    }
    options
}

/// The share of pixels that are not white, among `rows` of the rendered figure.
fn ink(pixmap: &Pixmap, rows: std::ops::Range<u32>) -> f64 {
    let width = pixmap.width() as usize;
    let pixels = pixmap.pixels();
    let mut inked = 0usize;
    let mut total = 0usize;
    for row in rows {
        for pixel in &pixels[row as usize * width..(row as usize + 1) * width] {
            total += 1;
            if pixel.red() < 235 || pixel.green() < 235 || pixel.blue() < 235 {
                inked += 1;
            }
        }
    }
    inked as f64 / total.max(1) as f64
}

/// Renders an SVG file and checks that it shows something.
fn renders(path: &Path, options: &Options) {
    let text = std::fs::read_to_string(path).expect("the figure exists");
    let tree = Tree::from_str(&text, options).expect("the SVG parses");
    let size = tree.size().to_int_size();
    assert!(
        size.width() >= 300 && size.height() >= 200,
        "{}: {size:?}",
        path.display()
    );
    let mut pixmap = Pixmap::new(size.width(), size.height()).expect("a canvas");
    resvg::render(&tree, Transform::default(), &mut pixmap.as_mut());
    let share = ink(&pixmap, 0..size.height());
    assert!(
        (0.02..0.9).contains(&share),
        "{}: {:.1}% of the pixels are inked",
        path.display(),
        100.0 * share
    );
    if !options.fontdb.is_empty() {
        // Every figure has a caption in its top rows.
        let title = ink(&pixmap, 0..30);
        assert!(title > 0.001, "{}: no title drawn", path.display());
    }
}

#[test]
fn the_sine_bnn_predictive_band_renders() {
    let out = scratch("figures-sine");
    let out_text = out.display().to_string();
    bdlc(&[
        "infer",
        "models/sine_bnn.bdl",
        "--steps",
        "600",
        "--samples",
        "300",
        "--seed",
        "1",
        "--out",
        &out_text,
        "--plot",
        "--quiet",
    ]);
    let options = options();
    for name in ["predictive.svg", "densities.svg", "loss.svg"] {
        renders(&out.join(name), &options);
    }
    let band = std::fs::read_to_string(out.join("predictive.svg")).expect("the band");
    // Every data point is drawn over the band.
    let data = std::fs::read_to_string(repository().join("models/data/sine.csv")).expect("data");
    let n_points = data.lines().count() - 1;
    assert!(band.matches("<circle").count() >= n_points);
    assert!(band.contains("<polygon"));
}

#[test]
fn eight_schools_densities_and_traces_render() {
    let out = scratch("figures-eight-schools");
    let out_text = out.display().to_string();
    bdlc(&[
        "infer",
        "models/eight_schools.bdl",
        "--chains",
        "2",
        "--warmup",
        "300",
        "--samples",
        "300",
        "--seed",
        "1",
        "--out",
        &out_text,
        "--quiet",
    ]);
    // The figures of a finished run, drawn from its files.
    bdlc(&["plot", &out_text, "--quiet"]);
    let options = options();
    for name in ["densities.svg", "traces.svg"] {
        renders(&out.join(name), &options);
    }
    assert!(!out.join("predictive.svg").exists());
}

#[test]
fn the_committed_example_figures_render() {
    let figures = repository().join("docs/figures");
    let options = options();
    let mut count = 0;
    for entry in std::fs::read_dir(&figures).expect("docs/figures") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|ext| ext == "svg") {
            renders(&path, &options);
            count += 1;
        }
    }
    assert!(count >= 3, "{count} example figures");
}

/// Runs bdlc and returns its exit code and stderr.
fn bdlc_status(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(args)
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_kind_of_figure_has_its_labels_and_renders() {
    let out = scratch("figures-kinds");
    let run = out.join("run");
    let run_text = run.display().to_string();
    bdlc(&[
        "infer",
        "models/eight_schools.bdl",
        "--chains",
        "2",
        "--warmup",
        "200",
        "--samples",
        "200",
        "--seed",
        "3",
        "--out",
        &run_text,
        "--quiet",
    ]);
    let options = options();
    // Each kind with the words a reader needs: axis descriptions naming the site, the legend.
    let expected: [(&str, &str, &[&str]); 6] = [
        (
            "trace",
            "traces.svg",
            &["iteration (after warm-up)", "chain 2", "tau"],
        ),
        ("density", "densities.svg", &["density", "chain 1", "tau"]),
        (
            "hist",
            "histograms.svg",
            &["histogram (all chains)", "kernel density estimate", "tau"],
        ),
        (
            "pair",
            "pairs.svg",
            &["pair plot", "divergent transition", "mu", "tau"],
        ),
        (
            "rank",
            "ranks.svg",
            &[
                "rank of tau (all chains)",
                "draws per bin",
                "95% interval of uniform ranks",
            ],
        ),
        (
            "energy",
            "energy.svg",
            &[
                "E-BFMI per chain",
                "marginal energy",
                "energy transition",
                "nats",
            ],
        ),
    ];
    for (kind, file, labels) in expected {
        let (code, stderr) = bdlc_status(&["plot", &run_text, "--kind", kind, "--bins", "15"]);
        assert_eq!(code, Some(0), "--kind {kind}: {stderr}");
        assert!(
            stderr.contains(file),
            "--kind {kind} lists the file: {stderr}"
        );
        let path = run.join(file);
        let svg = std::fs::read_to_string(&path).expect("the figure");
        for label in labels {
            assert!(svg.contains(label), "{file} lacks `{label}`");
        }
        renders(&path, &options);
    }
    // One site only.
    let (code, stderr) = bdlc_status(&["plot", &run_text, "--kind", "rank", "--site", "mu"]);
    assert_eq!(code, Some(0), "{stderr}");
    let ranks = std::fs::read_to_string(run.join("ranks.svg")).expect("ranks");
    assert!(ranks.contains("rank of mu") && !ranks.contains("rank of tau"));
    // A site the run does not have, and a kind that does not apply, are errors that say why.
    let (code, stderr) = bdlc_status(&["plot", &run_text, "--site", "nope"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("E0945") && stderr.contains("`mu`"),
        "{stderr}"
    );
    let (code, stderr) = bdlc_status(&["plot", &run_text, "--kind", "loss"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("E0944") && stderr.contains("nuts"),
        "{stderr}"
    );
    // PNG: a valid PNG file, twice the SVG's size.
    let png_dir = out.join("png");
    let png_text = png_dir.display().to_string();
    let (code, stderr) = bdlc_status(&[
        "plot", &run_text, "--kind", "energy", "--format", "png", "--out", &png_text,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let png = std::fs::read(png_dir.join("energy.png")).expect("the PNG");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    assert_eq!(width, 2 * 720);
}

#[test]
fn the_loss_is_on_a_log_axis_and_a_classifier_gets_a_reliability_diagram() {
    let out = scratch("figures-loss-reliability");
    let out_text = out.display().to_string();
    bdlc(&[
        "infer",
        "models/iris_bnn.bdl",
        "--steps",
        "400",
        "--samples",
        "200",
        "--seed",
        "1",
        "--out",
        &out_text,
        "--quiet",
    ]);
    let (code, stderr) = bdlc_status(&["plot", &out_text, "--quiet"]);
    assert_eq!(code, Some(0), "{stderr}");
    let options = options();
    let loss = std::fs::read_to_string(out.join("loss.svg")).expect("the loss");
    for label in [
        "log scale",
        "running median",
        "optimisation step",
        "negative ELBO",
    ] {
        assert!(loss.contains(label), "loss.svg lacks `{label}`");
    }
    let reliability = std::fs::read_to_string(out.join("reliability.svg")).expect("the diagram");
    for label in [
        "perfect calibration",
        "expected calibration error",
        "observed frequency",
        "predictions",
    ] {
        assert!(
            reliability.contains(label),
            "reliability.svg lacks `{label}`"
        );
    }
    renders(&out.join("loss.svg"), &options);
    renders(&out.join("reliability.svg"), &options);
    // No energy for an SVI run: `--kind energy` says so.
    let (code, stderr) = bdlc_status(&["plot", &out_text, "--kind", "energy"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("E0944") && stderr.contains("svi"),
        "{stderr}"
    );
}
