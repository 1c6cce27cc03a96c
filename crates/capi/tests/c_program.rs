//! The C library from C: `tests/c/conformance.c` compiled with the system's C compiler (`$CC`,
//! else `cc`) against `libferroserve.a`, and again against `libferroserve.so`, then run on the
//! numeric conformance cases of the manifest, tests/conformance/cases.json: every case and
//! model file of the formats its `c` surface loads, each compared output with the manifest's
//! named tolerance.
//!
//! C has no JSON parser, so this test first writes the manifest's cases, resolved (inputs,
//! expected values, tolerances), into the line-based text file the C program reads (described
//! at the top of conformance.c). The C program also checks the
//! error paths and predictions from several threads on one model.
//!
//! Linux only: the link flags (`rustc --print native-static-libs`) are the Linux ones.
#![cfg(target_os = "linux")]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferroserve_conformance::{self as conformance, manifest};
use ferroserve_loader::{EmbeddedModel, Format};

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

/// The output names of the model in `path`, read as `format`.
fn output_names(path: &Path, format: Format) -> Vec<String> {
    let model = EmbeddedModel::load(&std::fs::read(path).unwrap(), Some(format))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    model.signature().output_names()
}

/// Every (case, model file) of the manifest's `c` surface, in its order. The C API's ways of
/// loading each get used: XGBoost JSON from a file with its format named, UBJSON and ONNX-ML
/// graphs from a file with the format from the extension, LightGBM from bytes with the format
/// detected, networks from bytes with the format named. The first case of each format also
/// checks the error paths and runs on several threads at once.
fn cases() -> Vec<Case> {
    let mut seen = Vec::new();
    let mut cases = Vec::new();
    for (case, model) in manifest().runs("c") {
        let (loader, format, embed) = match model.format {
            conformance::Format::XgboostJson => ("file", Some("xgboost"), Format::XgboostJson),
            conformance::Format::XgboostUbj => ("file", None, Format::XgboostUbjson),
            conformance::Format::LightGbm => ("bytes", None, Format::LightGbm),
            conformance::Format::OnnxMl => ("file", None, Format::Onnx),
            conformance::Format::Onnx => ("bytes", Some("onnx"), Format::Onnx),
        };
        let first = !seen.contains(&model.format);
        seen.push(model.format);
        let names = output_names(&model.path(), embed);
        let expects = case
            .checks()
            .into_iter()
            .map(|check| {
                let index = names
                    .iter()
                    .position(|n| *n == check.output)
                    .unwrap_or_else(|| panic!("{}: no output {}", case.name, check.output));
                let (stride, offset) = check.column.map_or((1, 0), |(index, of)| (of, index));
                Expect {
                    index,
                    name: check.output.clone(),
                    values: match check.want {
                        conformance::Values::Numbers(v) => Values::Numbers(v),
                        conformance::Values::Strings(v) => Values::Strings(v),
                    },
                    abs: check.tolerance.abs,
                    rel: check.tolerance.rel,
                    stride,
                    offset,
                    shape: check.shape,
                }
            })
            .collect();
        cases.push(Case {
            name: format!("{}/{}", case.name, model.format.name()),
            loader,
            format,
            path: model.path(),
            threads: if first { 4 } else { 0 },
            errors: first,
            inputs: case
                .inputs()
                .into_iter()
                .enumerate()
                .map(|(i, input)| {
                    let name = input.name.clone().unwrap_or_else(|| format!("@{i}"));
                    (name, input.shape, input.data)
                })
                .collect(),
            outputs: (model.format != conformance::Format::OnnxMl).then_some(names.len()),
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
    // error paths and the threads of the first formats).
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
