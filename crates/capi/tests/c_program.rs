//! The C library from C: `tests/c/conformance.c` compiled with the system's C compiler (`$CC`,
//! else `cc`) against `libferroserve.a`, and again against `libferroserve.so`, then run on the
//! shared numeric conformance cases: every case directory of the tree fixtures
//! (`tests/fixtures/trees/{xgboost,lightgbm,onnxml}`, XGBoost both as JSON and as UBJSON) and
//! the example models' oracles (`examples/oracles`), with the comparisons and tolerances of the
//! Rust tests that own those files (crates/trees/tests/fidelity.rs and onnxml.rs,
//! crates/onnx/tests/oracles.rs).
//!
//! C has no JSON parser, so this test first writes the cases into the line-based text file
//! the C program reads (described at the top of conformance.c). The C program also checks the
//! error paths and predictions from several threads on one model.
//!
//! Linux only: the link flags (`rustc --print native-static-libs`) are the Linux ones.
#![cfg(target_os = "linux")]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferroserve_loader::{EmbeddedModel, Format};
use serde_json::Value;

/// What a Rust staticlib needs from the system on Linux (`rustc --print native-static-libs`).
const NATIVE_STATIC_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// The rows of every tree fixture.
const ROWS: usize = 32;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON array of numbers, null as NaN.
fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("a shape")
        .iter()
        .map(|d| d.as_u64().expect("a dimension") as usize)
        .collect()
}

/// The case directories of a tree library, sorted.
fn tree_cases(library: &str) -> Vec<PathBuf> {
    let root = workspace().join("tests/fixtures/trees").join(library);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 10, "{library}: fixtures missing");
    dirs
}

fn name_of(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// An output the C program compares: element `i * stride + offset` of output `index` against
/// value `i`, within `abs + rel * |want|`.
struct Expect {
    index: usize,
    name: String,
    values: Values,
    abs: f64,
    rel: f64,
    stride: usize,
    offset: usize,
    shape: Option<Vec<usize>>,
}

enum Values {
    Numbers(Vec<f64>),
    Strings(Vec<String>),
}

impl Expect {
    fn numbers(index: usize, name: &str, values: Vec<f64>, abs: f64, rel: f64) -> Expect {
        Expect {
            index,
            name: name.to_owned(),
            values: Values::Numbers(values),
            abs,
            rel,
            stride: 1,
            offset: 0,
            shape: None,
        }
    }
}

/// One case of the C program.
struct Case {
    name: String,
    /// `file` (ferroserve_model_load_file) or `bytes` (ferroserve_model_load).
    loader: &'static str,
    format: Option<&'static str>,
    path: PathBuf,
    threads: usize,
    errors: bool,
    /// (name, or `@index` for the model's own; shape; FP32 values).
    inputs: Vec<(String, Vec<usize>, Vec<f32>)>,
    outputs: Option<usize>,
    expects: Vec<Expect>,
}

impl Case {
    fn write(&self, out: &mut String) {
        let path = self.path.to_str().expect("a UTF-8 path");
        assert!(!path.contains('\n'), "{path}");
        writeln!(out, "case {}", self.name).unwrap();
        writeln!(
            out,
            "model {} {} {path}",
            self.loader,
            self.format.unwrap_or("-")
        )
        .unwrap();
        if self.threads > 0 {
            writeln!(out, "threads {}", self.threads).unwrap();
        }
        if self.errors {
            writeln!(out, "errors").unwrap();
        }
        for (name, shape, values) in &self.inputs {
            assert_eq!(
                shape.iter().product::<usize>(),
                values.len(),
                "{}",
                self.name
            );
            write!(out, "input {name} FP32 {}", shape.len()).unwrap();
            for d in shape {
                write!(out, " {d}").unwrap();
            }
            write!(out, " {}", values.len()).unwrap();
            for &v in values {
                // The f32's exact value, printed as an f64 so that C's strtod gets it back exactly.
                write!(out, " {:?}", f64::from(v)).unwrap();
            }
            out.push('\n');
        }
        if let Some(n) = self.outputs {
            writeln!(out, "outputs {n}").unwrap();
        }
        for e in &self.expects {
            let kind = match e.values {
                Values::Numbers(_) => "num",
                Values::Strings(_) => "str",
            };
            write!(
                out,
                "expect {} {} {kind} {:?} {:?} {} {}",
                e.index, e.name, e.abs, e.rel, e.stride, e.offset
            )
            .unwrap();
            match &e.shape {
                Some(shape) => {
                    write!(out, " {}", shape.len()).unwrap();
                    for d in shape {
                        write!(out, " {d}").unwrap();
                    }
                }
                None => out.push_str(" -1"),
            }
            match &e.values {
                Values::Numbers(v) => {
                    write!(out, " {}", v.len()).unwrap();
                    for x in v {
                        write!(out, " {x:?}").unwrap();
                    }
                }
                Values::Strings(v) => {
                    write!(out, " {}", v.len()).unwrap();
                    for s in v {
                        out.push_str(" x");
                        for b in s.bytes() {
                            write!(out, "{b:02x}").unwrap();
                        }
                    }
                }
            }
            out.push('\n');
        }
        out.push_str("end\n");
    }
}

/// A tree fixture's 32 rows as the model's first input.
fn fixture_rows(dir: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let rows = read_json(&dir.join("rows.json"));
    let values = numbers(&rows["data"]).iter().map(|&v| v as f32).collect();
    vec![("@0".to_owned(), dims(&rows["shape"]), values)]
}

/// The output names of the model in `path`, read as `format`.
fn output_names(path: &Path, format: Format) -> Vec<String> {
    let model = EmbeddedModel::load(&std::fs::read(path).unwrap(), Some(format))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    model.signature().output_names()
}

/// First index of each row's maximum, as fidelity.rs computes labels.
fn argmax_rows(p: &[f64], classes: usize) -> Vec<f64> {
    p.chunks(classes)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > r[b] { i } else { b }) as f64
        })
        .collect()
}

/// fidelity.rs's `check_predictions`: classifiers' labels exactly and probabilities (P(class 1)
/// of a binary one: column 1 of 2) within `tolerance`; other models' values within it.
fn fidelity_expects(dir: &Path, names: &[String], tolerance: f64) -> Vec<Expect> {
    let case = name_of(dir);
    let expected = read_json(&dir.join("expected.json"));
    let want = numbers(&expected["predict"]);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match (expected["objective"].as_str().unwrap(), names.as_slice()) {
        ("multi:softmax", ["label", "probabilities"]) => {
            vec![Expect::numbers(0, "label", want, 0.0, 0.0)]
        }
        (_, ["label", "probabilities"]) => {
            let binary = want.len() == ROWS;
            let full: Vec<f64> = if binary {
                want.iter().flat_map(|&q| [1.0 - q, q]).collect()
            } else {
                want.clone()
            };
            let classes = full.len() / ROWS;
            let mut probabilities = Expect::numbers(1, "probabilities", want, tolerance, 0.0);
            if binary {
                (probabilities.stride, probabilities.offset) = (2, 1);
            }
            vec![
                Expect::numbers(0, "label", argmax_rows(&full, classes), 0.0, 0.0),
                probabilities,
            ]
        }
        (_, ["predictions"]) => vec![Expect::numbers(0, "predictions", want, tolerance, 0.0)],
        other => panic!("{case}: unexpected outputs {other:?}"),
    }
}

/// Every case: the XGBoost fixtures (JSON, then UBJSON), LightGBM's, the ONNX-ML ones, and the
/// example models' oracles.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for dir in tree_cases("xgboost") {
        let path = dir.join("model.json");
        let names = output_names(&path, Format::XgboostJson);
        let case = name_of(&dir);
        cases.push(Case {
            name: format!("xgboost/{case}"),
            // A named format, read from the file.
            loader: "file",
            format: Some("xgboost"),
            path,
            threads: if case == "multi_softprob" { 4 } else { 0 },
            errors: cases.is_empty(),
            inputs: fixture_rows(&dir),
            outputs: Some(names.len()),
            expects: fidelity_expects(&dir, &names, 1e-5),
        });
    }
    for dir in tree_cases("xgboost") {
        let path = dir.join("model.ubj");
        let names = output_names(&path, Format::XgboostUbjson);
        cases.push(Case {
            name: format!("xgboost-ubj/{}", name_of(&dir)),
            // The format from the file name's extension.
            loader: "file",
            format: None,
            path,
            threads: 0,
            errors: false,
            inputs: fixture_rows(&dir),
            outputs: Some(names.len()),
            expects: fidelity_expects(&dir, &names, 1e-5),
        });
    }
    for dir in tree_cases("lightgbm") {
        let path = dir.join("model.txt");
        let names = output_names(&path, Format::LightGbm);
        let case = name_of(&dir);
        cases.push(Case {
            name: format!("lightgbm/{case}"),
            // Bytes, the format detected from them.
            loader: "bytes",
            format: None,
            path,
            threads: if case == "multiclass" { 4 } else { 0 },
            errors: false,
            inputs: fixture_rows(&dir),
            outputs: Some(names.len()),
            expects: fidelity_expects(&dir, &names, 1e-6),
        });
    }
    for dir in tree_cases("onnxml") {
        // onnxml.rs: labels exactly (numbers or strings), probabilities within 1e-5; regression
        // values within 1e-5 + 1e-6 relative.
        let path = dir.join("model.onnx");
        let case = name_of(&dir);
        let names = output_names(&path, Format::Onnx);
        let expected = read_json(&dir.join("expected.json"));
        let expects = if expected["kind"] == "classifier" {
            let labels = &expected["label"];
            let label = if labels[0].is_string() {
                let strings = labels
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                Expect {
                    values: Values::Strings(strings),
                    ..Expect::numbers(0, &names[0], vec![], 0.0, 0.0)
                }
            } else {
                Expect::numbers(0, &names[0], numbers(labels), 0.0, 0.0)
            };
            let probabilities = numbers(&expected["probabilities"]);
            vec![
                label,
                Expect::numbers(1, &names[1], probabilities, 1e-5, 0.0),
            ]
        } else {
            let want = numbers(&expected["predict"]);
            vec![Expect::numbers(0, &names[0], want, 1e-5, 1e-6)]
        };
        cases.push(Case {
            name: format!("onnxml/{case}"),
            loader: "file",
            format: None,
            path,
            threads: if case == "random_forest_classifier" {
                4
            } else {
                0
            },
            errors: case == "logistic_regression",
            inputs: fixture_rows(&dir),
            outputs: None,
            expects,
        });
    }
    for model in ["iris_logreg", "digits_mlp", "cnn"] {
        // oracles.rs: every output, its name and shape; floats within 1e-5 relative + 1e-6
        // absolute, integers exactly.
        let oracles = workspace().join("examples/oracles").join(model);
        let request = read_json(&oracles.join("request.json"));
        let inputs = request["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|input| {
                assert_eq!(input["datatype"], "FP32", "{model}");
                let values = numbers(&input["data"]).iter().map(|&v| v as f32).collect();
                (
                    input["name"].as_str().unwrap().to_owned(),
                    dims(&input["shape"]),
                    values,
                )
            })
            .collect();
        let expected = read_json(&oracles.join("expected.json"));
        let outputs = expected["outputs"].as_array().unwrap();
        let expects = outputs
            .iter()
            .enumerate()
            .map(|(index, output)| {
                let integer = output["datatype"].as_str().unwrap().starts_with("INT");
                let (abs, rel) = if integer { (0.0, 0.0) } else { (1e-6, 1e-5) };
                let name = output["name"].as_str().unwrap();
                Expect {
                    shape: Some(dims(&output["shape"])),
                    ..Expect::numbers(index, name, numbers(&output["data"]), abs, rel)
                }
            })
            .collect();
        cases.push(Case {
            name: format!("examples/{model}"),
            loader: "bytes",
            format: Some("onnx"),
            path: workspace()
                .join("examples/models")
                .join(model)
                .join("1/model.onnx"),
            threads: if model == "iris_logreg" { 0 } else { 4 },
            errors: model == "digits_mlp",
            inputs,
            outputs: Some(outputs.len()),
            expects,
        });
    }
    cases
}

/// The directory holding the libraries this test was built with.
///
/// This test's executable is `<target>/<profile>/deps/c_program-<hash>`. Building the tests
/// compiles the library (all its crate types) into that same `deps` directory, under the stable
/// names `libferroserve.a` and `libferroserve.so`; only `cargo build` copies them up to
/// `<target>/<profile>/`, so the copies there may be stale or missing under `cargo test` and
/// serve as a fallback only.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().expect("the test executable's directory");
    let candidates = [Some(deps), deps.parent()];
    let has_both = |dir: &Path| {
        ["libferroserve.a", "libferroserve.so"]
            .iter()
            .all(|l| dir.join(l).is_file())
    };
    candidates
        .into_iter()
        .flatten()
        .find(|dir| has_both(dir))
        .unwrap_or_else(|| {
            panic!(
                "libferroserve.a and libferroserve.so are in neither {} nor its parent (this \
                 test's executable is {}): cargo builds them with the crate's tests (crate-type \
                 staticlib + cdylib in Cargo.toml); build them with `cargo build -p \
                 ferroserve-capi` in the same profile and target directory",
                deps.display(),
                exe.display()
            )
        })
        .to_path_buf()
}

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    if !output.status.success() {
        panic!(
            "{what} failed ({}): {command:?}\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

/// The C compiler with the flags both builds share.
fn compiler(out: &Path) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cc = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()));
    // `-z noexecstack`: tract's assembly kernels lack a .note.GNU-stack section, which would
    // otherwise make ld warn and mark the stack executable.
    cc.args([
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-pedantic",
        "-Werror",
        "-O1",
        "-pthread",
    ])
    .arg("-Wl,-z,noexecstack")
    .arg("-I")
    .arg(root.join("include"))
    .arg(root.join("tests/c/conformance.c"))
    .arg("-o")
    .arg(out);
    cc
}

#[test]
fn the_c_program_passes_the_conformance_cases_on_both_libraries() {
    let cases = cases();
    let directories = ["xgboost", "lightgbm", "onnxml"]
        .iter()
        .map(|library| tree_cases(library).len())
        .sum::<usize>();
    // Every fixture directory, XGBoost's twice (JSON, UBJSON), and the three example models.
    assert_eq!(cases.len(), directories + tree_cases("xgboost").len() + 3);
    let mut text = String::new();
    for case in &cases {
        case.write(&mut text);
    }
    let tmp = tempfile::tempdir().unwrap();
    let cases_file = tmp.path().join("cases.txt");
    std::fs::write(&cases_file, text).unwrap();
    let libraries = library_dir();
    println!("libraries from {}", libraries.display());

    // Against the static library: every case.
    let static_exe = tmp.path().join("conformance_static");
    run(
        compiler(&static_exe)
            .arg(libraries.join("libferroserve.a"))
            .args(NATIVE_STATIC_LIBS),
        "compiling conformance.c against libferroserve.a",
    );
    let output = run(
        Command::new(&static_exe).arg(&cases_file),
        "the C conformance program (static library)",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    for case in &cases {
        assert!(
            stdout.contains(&format!("ok   {} ", case.name)),
            "{} did not pass:\n{stdout}",
            case.name
        );
    }
    assert!(
        stdout.contains(&format!("{} cases, ", cases.len())) && stdout.contains(", 0 failures"),
        "{stdout}"
    );

    // Against the shared library: the same program, on the first cases (which include the
    // error paths and, with `multi_softprob`, the threads).
    let shared_exe = tmp.path().join("conformance_shared");
    run(
        compiler(&shared_exe)
            .arg("-L")
            .arg(&libraries)
            .arg("-lferroserve")
            .arg(format!("-Wl,-rpath,{}", libraries.display()))
            .arg("-lm"),
        "compiling conformance.c against libferroserve.so",
    );
    if let Ok(ldd) = Command::new("ldd").arg(&shared_exe).output() {
        let linked = String::from_utf8_lossy(&ldd.stdout);
        assert!(
            linked.contains("libferroserve.so"),
            "not linked to the shared library:\n{linked}"
        );
    }
    let output = run(
        Command::new(&shared_exe).arg(&cases_file).arg("12"),
        "the C conformance program (shared library)",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        stdout.contains("12 cases, ") && stdout.contains(", 0 failures"),
        "{stdout}"
    );
}
