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
