//! Data files beyond the error corpus: zero-row data, text that is not UTF-8, old Mac (`\r`)
//! line endings, very long lines in error excerpts, and NumPy `.npy`/`.npz` input (written by a
//! small writer in the test, so that no Python is needed), each loaded the way the driver does.

mod common;

use bdl_diagnostics::{render_all, SourceMap};
use bdl_infer::density::LogDensity;
use bdl_runtime::data::{self, Completeness, DataFile, DataSet};
use bdl_runtime::model::Model;
use bdl_runtime::pipeline;

/// Compiles `source` and loads `files` (name and bytes) the way the driver does: text files are
/// registered in the source map for excerpts. Returns the program's data or the rendered errors
/// with the diagnostics' messages.
fn load(
    source: &str,
    files: &[(&str, Vec<u8>)],
) -> Result<(Model, DataSet), (String, Vec<String>)> {
    let mut sources = SourceMap::new();
    let compiled = pipeline::compile(&mut sources, "model.bdl", source.as_bytes())
        .unwrap_or_else(|diagnostics| panic!("{}", render_all(&diagnostics, &sources, false)));
    let files: Vec<DataFile> = files
        .iter()
        .map(|(name, bytes)| {
            let file = sources.add(*name, String::new());
            DataFile {
                name: name.to_string(),
                bytes: bytes.clone(),
                file,
            }
        })
        .collect();
    for file in &files {
        sources.set_text(file.file, file.display_text());
    }
    let observed = pipeline::observed_only(&compiled.program);
    match data::load(&compiled.program, &files, Completeness::All, &observed) {
        Ok(data) => {
            let model = Model::new(compiled.program.clone(), data.clone(), 1).unwrap_or_else(|e| {
                panic!("{}", render_all(&[e.to_diagnostic()], &sources, false))
            });
            Ok((model, data))
        }
        Err(diagnostics) => Err((
            render_all(&diagnostics, &sources, false),
            diagnostics.iter().map(|d| d.message.clone()).collect(),
        )),
    }
}

const REGRESSION: &str = r#"
data {
    x: vector[N]
    y: vector[N]
}
model {
    let w = sample("w", Normal(0, 1))
    plate("data", N) {
        observe("y", Normal(w * x, 1), y)
    }
}
"#;

const CLASSIFIER: &str = r#"
data {
    X: matrix[N, 3] from "x*"
    y: int<lower=0, upper=2>[N]
}
network mlp = Sequential(Linear(3, 4), ReLU, Linear(4, 3))
model {
    let net = lift("mlp", mlp, Normal(0, 1))
    plate("data", N) {
        observe("y", Categorical(logits = net(X)), y)
    }
}
"#;

/// The log density and gradient at the origin.
fn log_density_at_origin(model: &Model) -> (f64, Vec<f64>) {
    let dim = model.layout.latent_dim();
    let mut density = model.log_density();
    let mut gradient = vec![0.0; dim];
    let value = density
        .log_density_gradient(&vec![0.0; dim], &mut gradient)
        .expect("a finite log density");
    (value, gradient)
}

#[test]
fn zero_rows_load_as_empty_data_alike_from_csv_json_and_npy() {
    // The model is the prior alone: its log density at the origin is that of Normal(0, 1).
    let prior_only = -0.5 * (2.0 * std::f64::consts::PI).ln();
    let csv = load(REGRESSION, &[("empty.csv", b"x,y\n".to_vec())]).expect("loads");
    let json = load(
        REGRESSION,
        &[("empty.json", br#"{"x": [], "y": []}"#.to_vec())],
    )
    .expect("loads");
    let npz = npz_archive(&[("x", npy_f8(&[0], &[])), ("y", npy_f8(&[0], &[]))]);
    let npz = load(REGRESSION, &[("empty.npz", npz)]).expect("loads");
    for (what, (model, _)) in [("csv", &csv), ("json", &json), ("npz", &npz)] {
        let (value, gradient) = log_density_at_origin(model);
        // The same sum in another order: equal to rounding.
        assert!(
            (value - prior_only).abs() < 1e-14,
            "{what}: {value} vs {prior_only}"
        );
        assert_eq!(gradient, vec![0.0], "{what}");
    }
    // A network on a matrix of zero rows.
    let (model, data) =
        load(CLASSIFIER, &[("empty.csv", b"x0,x1,x2,y\r\n".to_vec())]).expect("loads");
    let shapes: Vec<Vec<usize>> = data
        .values
        .values()
        .map(|v| v.tensor.shape().to_vec())
        .collect();
    assert!(shapes.contains(&vec![0, 3]), "{shapes:?}");
    let (value, _) = log_density_at_origin(&model);
    assert!(value.is_finite());
    // A scalar declaration still needs its one row.
    let scalar = "data {\n    s: real\n}\nmodel {\n    let w = sample(\"w\", Normal(s, 1))\n}\n";
    let (_, messages) = load(scalar, &[("empty.csv", b"s\n".to_vec())]).expect_err("an error");
    assert!(messages[0].contains("0 rows"), "{messages:?}");
}

#[test]
fn a_byte_that_is_not_utf8_is_located_by_line_and_column() {
    let bytes = b"x,y\n0.5,1.0\n1.5,2\xe9.0\n".to_vec();
    let (rendered, messages) = load(REGRESSION, &[("latin1.csv", bytes)]).expect_err("an error");
    assert_eq!(
        messages,
        vec!["`latin1.csv` is not UTF-8 text: byte 0xE9 at line 3, column 6 is not valid UTF-8"]
    );
    assert!(rendered.contains("latin1.csv:3:6"), "{rendered}");
    assert!(rendered.contains("not UTF-8"), "{rendered}");
    // JSON alike.
    let bytes = b"{\"x\": [1],\n \"y\": [\xff]}".to_vec();
    let (_, messages) = load(REGRESSION, &[("bad.json", bytes)]).expect_err("an error");
    assert!(
        messages[0].contains("byte 0xFF at line 2, column 8"),
        "{messages:?}"
    );
}

#[test]
fn carriage_return_line_endings_read_like_newlines() {
    let unix = load(
        REGRESSION,
        &[("a.csv", b"x,y\n0.5,1\n1.5,2\n2.5,3\n".to_vec())],
    )
    .expect("loads");
    let mac = load(
        REGRESSION,
        &[("b.csv", b"x,y\r0.5,1\r1.5,2\r2.5,3\r".to_vec())],
    )
    .expect("loads");
    let windows = load(
        REGRESSION,
        &[("c.csv", b"x,y\r\n0.5,1\r\n1.5,2\r\n2.5,3".to_vec())],
    )
    .expect("loads");
    let values = |data: &DataSet| {
        let mut all: Vec<Vec<f64>> = data
            .values
            .values()
            .map(|v| v.tensor.data().to_vec())
            .collect();
        all.sort_by(|a, b| a.partial_cmp(b).unwrap());
        all
    };
    assert_eq!(values(&unix.1), values(&mac.1));
    assert_eq!(values(&unix.1), values(&windows.1));
    // Errors in a `\r` file name the right row, line and cell.
    let (rendered, messages) = load(
        REGRESSION,
        &[("mac.csv", b"x,y\r0.5,1\r1.5,oops\r2.5,3\r".to_vec())],
    )
    .expect_err("an error");
    assert_eq!(
        messages[0],
        "`mac.csv` row 2 column `y` holds `oops`, not a number"
    );
    assert!(rendered.contains("mac.csv:3:5"), "{rendered}");
    assert!(rendered.contains(" 3 │ 1.5,oops"), "{rendered}");
}

#[test]
fn a_bad_cell_on_a_very_long_line_is_shown_in_a_short_excerpt() {
    let columns = 784;
    let header: Vec<String> = (0..columns).map(|k| format!("x{k}")).collect();
    let mut text = header.join(",") + ",y\n";
    for row in 0..3 {
        let mut cells: Vec<String> = (0..columns).map(|k| format!("{}.25", k + row)).collect();
        if row == 1 {
            cells[500] = "bad".to_string();
        }
        text += &(cells.join(",") + ",1\n");
    }
    let wide = CLASSIFIER
        .replace("matrix[N, 3]", "matrix[N, 784]")
        .replace("Linear(3, 4)", "Linear(784, 4)");
    let (rendered, messages) =
        load(&wide, &[("wide.csv", text.into_bytes())]).expect_err("an error");
    assert_eq!(
        messages[0],
        "`wide.csv` row 2 column `x500` holds `bad`, not a number"
    );
    assert!(
        rendered.lines().all(|line| line.chars().count() < 400),
        "{rendered}"
    );
    assert!(rendered.contains("bad"), "{rendered}");
    assert!(
        rendered.contains("characters long; the excerpt shows characters"),
        "{rendered}"
    );
}

/// A `.npy` file of little-endian float64 values.
fn npy_f8(shape: &[usize], values: &[f64]) -> Vec<u8> {
    let body: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_raw("<f8", shape, false, &body)
}

/// A `.npy` file with the given element type, shape, order and raw elements (version 1.0).
fn npy_raw(descr: &str, shape: &[usize], fortran: bool, body: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape_text}, }}");
    // The magic, version and length take 10 bytes; the header is padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// A zip archive storing (not compressing) each `(name, npy bytes)` as `name.npy`, as
/// `np.savez` writes it.
fn npz_archive(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    zip_archive(members, false)
}

/// A zip archive of `name.npy` members, deflated (as `np.savez_compressed` writes them) or
/// stored.
fn zip_archive(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let method: u16 = if deflate { 8 } else { 0 };
    let mut archive = Vec::new();
    let mut directory = Vec::new();
    for (name, contents) in members {
        let file_name = format!("{name}.npy");
        let offset = archive.len() as u32;
        let crc = crc32(contents);
        let size = contents.len() as u32;
        let stored = if deflate {
            miniz_oxide::deflate::compress_to_vec(contents, 6)
        } else {
            contents.clone()
        };
        let stored_size = stored.len() as u32;
        let mut local = b"PK\x03\x04".to_vec();
        local.extend_from_slice(&20u16.to_le_bytes()); // version needed
        local.extend_from_slice(&0u16.to_le_bytes()); // flags
        local.extend_from_slice(&method.to_le_bytes());
        local.extend_from_slice(&[0; 4]); // time and date
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&stored_size.to_le_bytes());
        local.extend_from_slice(&size.to_le_bytes());
        local.extend_from_slice(&(file_name.len() as u16).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // extra length
        local.extend_from_slice(file_name.as_bytes());
        archive.extend_from_slice(&local);
        archive.extend_from_slice(&stored);
        let mut entry = b"PK\x01\x02".to_vec();
        entry.extend_from_slice(&20u16.to_le_bytes()); // version made by
        entry.extend_from_slice(&20u16.to_le_bytes()); // version needed
        entry.extend_from_slice(&0u16.to_le_bytes()); // flags
        entry.extend_from_slice(&method.to_le_bytes());
        entry.extend_from_slice(&[0; 4]); // time and date
        entry.extend_from_slice(&crc.to_le_bytes());
        entry.extend_from_slice(&stored_size.to_le_bytes());
        entry.extend_from_slice(&size.to_le_bytes());
        entry.extend_from_slice(&(file_name.len() as u16).to_le_bytes());
        entry.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
        entry.extend_from_slice(&[0; 4]); // external attributes
        entry.extend_from_slice(&offset.to_le_bytes());
        entry.extend_from_slice(file_name.as_bytes());
        directory.extend_from_slice(&entry);
    }
    let directory_offset = archive.len() as u32;
    archive.extend_from_slice(&directory);
    archive.extend_from_slice(b"PK\x05\x06");
    archive.extend_from_slice(&[0; 4]); // disk numbers
    archive.extend_from_slice(&(members.len() as u16).to_le_bytes());
    archive.extend_from_slice(&(members.len() as u16).to_le_bytes());
    archive.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    archive.extend_from_slice(&directory_offset.to_le_bytes());
    archive.extend_from_slice(&0u16.to_le_bytes()); // comment length
    archive
}

/// The CRC-32 zip stores (the reader does not check it; written for a well-formed archive).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The same classification data as CSV text and as arrays.
fn classification_rows() -> (String, Vec<f64>, Vec<f64>) {
    let mut csv = String::from("x0,x1,x2,y\n");
    let mut features = Vec::new();
    let mut classes = Vec::new();
    for row in 0..7 {
        let x: Vec<f64> = (0..3).map(|k| (row * 3 + k) as f64 * 0.37 - 2.0).collect();
        let y = (row % 3) as f64;
        csv += &format!("{},{},{},{}\n", x[0], x[1], x[2], y);
        features.extend_from_slice(&x);
        classes.push(y);
    }
    (csv, features, classes)
}

fn sorted_values(data: &DataSet) -> Vec<(Vec<usize>, Vec<f64>)> {
    let mut all: Vec<(Vec<usize>, Vec<f64>)> = data
        .values
        .values()
        .map(|v| (v.tensor.shape().to_vec(), v.tensor.data().to_vec()))
        .collect();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    all
}

#[test]
fn npy_and_npz_load_the_same_values_as_csv() {
    let (csv, features, classes) = classification_rows();
    let from_csv = load(CLASSIFIER, &[("rows.csv", csv.into_bytes())]).expect("loads");
    // A 2-D array for the matrix declaration (its name is `X`), int64 classes.
    let int_classes: Vec<u8> = classes
        .iter()
        .flat_map(|&c| (c as i64).to_le_bytes())
        .collect();
    let whole = CLASSIFIER.replace(" from \"x*\"", "");
    let archive = npz_archive(&[
        ("X", npy_f8(&[7, 3], &features)),
        ("y", npy_raw("<i8", &[7], false, &int_classes)),
    ]);
    let from_npz = load(&whole, &[("rows.npz", archive)]).expect("loads");
    assert_eq!(sorted_values(&from_csv.1), sorted_values(&from_npz.1));
    // The same arrays deflated, as `np.savez_compressed` writes them.
    let compressed = zip_archive(
        &[
            ("X", npy_f8(&[7, 3], &features)),
            ("y", npy_raw("<i8", &[7], false, &int_classes)),
        ],
        true,
    );
    let from_compressed = load(&whole, &[("rows.npz", compressed)]).expect("loads");
    assert_eq!(
        sorted_values(&from_csv.1),
        sorted_values(&from_compressed.1)
    );
    // 1-D arrays as the matrix's columns, float32 features and int32 classes.
    let column = |k: usize| -> Vec<u8> {
        (0..7)
            .flat_map(|row| (features[row * 3 + k] as f32).to_le_bytes())
            .collect()
    };
    let int32: Vec<u8> = classes
        .iter()
        .flat_map(|&c| (c as i32).to_le_bytes())
        .collect();
    let archive = npz_archive(&[
        ("x0", npy_raw("<f4", &[7], false, &column(0))),
        ("x1", npy_raw("<f4", &[7], false, &column(1))),
        ("x2", npy_raw("<f4", &[7], false, &column(2))),
        ("y", npy_raw("<i4", &[7], false, &int32)),
    ]);
    let from_columns = load(CLASSIFIER, &[("columns.npz", archive)]).expect("loads");
    let expected: Vec<f64> = features.iter().map(|&v| f64::from(v as f32)).collect();
    let matrix = from_columns
        .1
        .values
        .values()
        .find(|v| v.tensor.shape() == [7, 3])
        .expect("the matrix");
    assert_eq!(matrix.tensor.data(), expected.as_slice());
    // An array read by two declarations (on its own and as a matrix column) serves both.
    let shared = r#"
data {
    x0: vector[N]
    X: matrix[N, 3] from "x*"
    y: int<lower=0, upper=2>[N]
}
network mlp = Sequential(Linear(3, 4), ReLU, Linear(4, 3))
model {
    let net = lift("mlp", mlp, Normal(0, 1))
    let shift = sample("shift", Normal(0, 1))
    plate("data", N) {
        observe("y", Categorical(logits = net(X) + shift * 0 * x0[0]), y)
    }
}
"#;
    let archive = npz_archive(&[
        ("x0", npy_raw("<f4", &[7], false, &column(0))),
        ("x1", npy_raw("<f4", &[7], false, &column(1))),
        ("x2", npy_raw("<f4", &[7], false, &column(2))),
        ("y", npy_raw("<i4", &[7], false, &int32)),
    ]);
    let (_, data) = load(shared, &[("shared.npz", archive)]).expect("loads");
    let values = sorted_values(&data);
    let first: Vec<f64> = (0..7).map(|row| expected[row * 3]).collect();
    assert!(values.contains(&(vec![7], first)), "{values:?}");
    assert!(
        values.contains(&(vec![7, 3], expected.clone())),
        "{values:?}"
    );
    // A single `.npy` file names its array by its stem; booleans read as 0 and 1.
    let flags = npy_raw("|b1", &[4], false, &[0, 1, 1, 0]);
    let bernoulli = "data {\n    flags: int<lower=0, upper=1>[N]\n}\nmodel {\n    let p = sample(\"p\", Beta(1, 1))\n    plate(\"data\", N) {\n        observe(\"flags\", Bernoulli(p), flags)\n    }\n}\n";
    let (_, data) = load(bernoulli, &[("dir/flags.npy", flags)]).expect("loads");
    let values = sorted_values(&data);
    assert!(
        values.contains(&(vec![4], vec![0.0, 1.0, 1.0, 0.0])),
        "{values:?}"
    );
}

#[test]
fn npy_files_this_reader_does_not_handle_are_clear_errors() {
    let whole = CLASSIFIER.replace(" from \"x*\"", "");
    let y: Vec<u8> = [0i64, 1, 2].iter().flat_map(|c| c.to_le_bytes()).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "big_endian",
            npy_raw(">f8", &[3, 3], false, &[0; 72]),
            "holds elements of type `>f8`",
        ),
        (
            "fortran",
            npy_raw("<f8", &[3, 3], true, &[0; 72]),
            "Fortran (column-major) order",
        ),
        (
            "complex",
            npy_raw("<c16", &[3, 3], false, &[0; 144]),
            "holds elements of type `<c16`",
        ),
        (
            "short",
            npy_raw("<f8", &[3, 3], false, &[0; 40]),
            "holds 40 bytes of elements, but its shape [3, 3] of `<f8` needs 72",
        ),
        ("not_npy", b"\x93NUMPX garbage".to_vec(), "magic string"),
    ];
    for (name, x, expected) in cases {
        let archive = npz_archive(&[("X", x), ("y", npy_raw("<i8", &[3], false, &y))]);
        let (rendered, messages) = load(&whole, &[("case.npz", archive)]).expect_err(name);
        assert!(messages[0].contains(expected), "{name}: {messages:?}");
        assert!(messages[0].contains("case.npz"), "{name}: {messages:?}");
        assert!(!rendered.is_empty());
    }
    // A wrong rank is reported like any other shape error.
    let archive = npz_archive(&[
        ("X", npy_f8(&[9], &[0.0; 9])),
        ("y", npy_raw("<i8", &[3], false, &y)),
    ]);
    let (_, messages) = load(&whole, &[("rank.npz", archive)]).expect_err("an error");
    assert!(messages[0].contains("a vector of 9"), "{messages:?}");
    // A truncated archive.
    let mut archive = npz_archive(&[("y", npy_raw("<i8", &[3], false, &y))]);
    archive.truncate(archive.len() - 30);
    let (_, messages) = load(&whole, &[("cut.npz", archive)]).expect_err("an error");
    assert!(messages[0].contains("cut.npz"), "{messages:?}");
}
