//! The numeric conformance manifest, `tests/conformance/cases.json`, as every Rust harness reads
//! it: the cases, the formats each surface loads, and the named tolerances. Its `about` lines
//! describe the format; this crate resolves a case into its input tensors' values and the
//! expected values of each compared output, and owns the one comparison every harness makes.
//!
//! Test-only (`publish = false`): the crates whose tests run the cases dev-depend on it. The
//! Node, Python and C harnesses read the same file by themselves.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferroserve_core::{Signature, Tensor, TensorData};
use serde_json::Value;

/// The repository root: every path in the manifest is relative to it.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The manifest's path.
pub fn manifest_path() -> PathBuf {
    root().join("tests/conformance/cases.json")
}

/// Reads a JSON file under the repository root, naming it on failure.
pub fn read_json(relative: &str) -> Value {
    let path = root().join(relative);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The manifest, read once.
pub fn manifest() -> &'static Manifest {
    static MANIFEST: OnceLock<Manifest> = OnceLock::new();
    MANIFEST.get_or_init(|| Manifest::parse(&read_json("tests/conformance/cases.json")))
}

/// A model file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// XGBoost's JSON model (`model.json`).
    XgboostJson,
    /// XGBoost's UBJSON model (`model.ubj`).
    XgboostUbj,
    /// LightGBM's text model (`model.txt`).
    LightGbm,
    /// An ONNX graph of `ai.onnx.ml` operators that ferroserve-trees' interpreter runs whole.
    OnnxMl,
    /// An ONNX network (tract, ONNX Runtime).
    Onnx,
}

impl Format {
    /// The manifest's name of the format.
    pub fn name(self) -> &'static str {
        match self {
            Format::XgboostJson => "xgboost-json",
            Format::XgboostUbj => "xgboost-ubj",
            Format::LightGbm => "lightgbm",
            Format::OnnxMl => "onnx-ml",
            Format::Onnx => "onnx",
        }
    }

    fn parse(name: &str) -> Format {
        [
            Format::XgboostJson,
            Format::XgboostUbj,
            Format::LightGbm,
            Format::OnnxMl,
            Format::Onnx,
        ]
        .into_iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("cases.json: unknown format {name:?}"))
    }
}

/// A named tolerance: `|got - want| <= abs + rel * |want|`; NaN matches NaN only.
#[derive(Debug, Clone)]
pub struct Tolerance {
    /// Its name in the manifest.
    pub name: String,
    /// The absolute part.
    pub abs: f64,
    /// The part relative to the expected value.
    pub rel: f64,
}

impl Tolerance {
    /// The tolerance the manifest names `name`.
    pub fn named(name: &str) -> Tolerance {
        manifest()
            .tolerances
            .get(name)
            .unwrap_or_else(|| panic!("cases.json: no tolerance {name:?}"))
            .clone()
    }

    /// Whether `got` is within this tolerance of `want`.
    pub fn close(&self, got: f64, want: f64) -> bool {
        if want.is_nan() || got.is_nan() {
            return want.is_nan() && got.is_nan();
        }
        (got - want).abs() <= self.abs + self.rel * want.abs()
    }

    /// Asserts that `got` matches `want` element by element.
    pub fn assert_all(&self, got: &[f64], want: &[f64], what: &str) {
        assert_eq!(
            got.len(),
            want.len(),
            "{what}: {} values, expected {}",
            got.len(),
            want.len()
        );
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            assert!(
                self.close(a, b),
                "{what}[{i}]: {a} vs {b} (tolerance {}: {} + {} relative)",
                self.name,
                self.abs,
                self.rel
            );
        }
    }
}

/// A surface's entry: the formats it loads and why it loads no other.
#[derive(Debug, Clone)]
pub struct Surface {
    /// The formats it loads.
    pub formats: Vec<Format>,
    /// Format name → why the surface does not load it.
    pub why_not: BTreeMap<String, String>,
}

/// The manifest.
#[derive(Debug)]
pub struct Manifest {
    /// The named tolerances.
    pub tolerances: BTreeMap<String, Tolerance>,
    /// Surface name → what it loads.
    pub surfaces: BTreeMap<String, Surface>,
    /// Every case, in the manifest's order.
    pub cases: Vec<Case>,
}

/// One model file of a case.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// Relative to the repository root.
    pub file: String,
    /// Its format.
    pub format: Format,
}

impl ModelFile {
    /// The absolute path.
    pub fn path(&self) -> PathBuf {
        root().join(&self.file)
    }

    /// The file's name (`model.json`, …): what a model version directory holds.
    pub fn file_name(&self) -> String {
        Path::new(&self.file)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

/// A case of the manifest.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name, `<group>/<case>`.
    pub name: String,
    /// The files of its model.
    pub models: Vec<ModelFile>,
    /// Surface name → why this case is not run there.
    pub skip: BTreeMap<String, String>,
    raw: Value,
}

/// An input tensor of a case: FP32 values, NaN for missing.
#[derive(Debug, Clone)]
pub struct Input {
    /// Its name, or `None` for the model's input at the same position.
    pub name: Option<String>,
    /// Its shape, batch first.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

impl Input {
    /// The name to send: its own, else the model's input at `index` from `model_inputs`.
    pub fn name_in(&self, model_inputs: &[String], index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| model_inputs[index].clone())
    }

    /// The input as a tensor named `name`.
    pub fn tensor(&self, name: &str) -> Tensor {
        Tensor::new(name, self.shape.clone(), TensorData::F32(self.data.clone())).unwrap()
    }

    /// The values of one row of the batch.
    pub fn row(&self, row: usize) -> &[f32] {
        let width = self.data.len() / self.shape[0];
        &self.data[row * width..(row + 1) * width]
    }
}

/// Expected values.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Numbers, NaN for null.
    Numbers(Vec<f64>),
    /// Strings (BYTES elements).
    Strings(Vec<String>),
}

/// One compared output of a case, resolved.
#[derive(Debug, Clone)]
pub struct Check {
    /// The model's output.
    pub output: String,
    /// The expected values, after `derive`.
    pub want: Values,
    /// `(index, of)`: compare column `index` of an output with `of` columns a row.
    pub column: Option<(usize, usize)>,
    /// The expected shape, when the expectation is a V2 tensor.
    pub shape: Option<Vec<usize>>,
    /// The expected datatype, when the expectation is a V2 tensor.
    pub datatype: Option<String>,
    /// How close the numbers must be.
    pub tolerance: Tolerance,
}

impl Check {
    /// Asserts numeric output values (the whole output, row-major) against the expectation.
    pub fn assert_numbers(&self, got: &[f64], what: &str) {
        let what = format!("{what} {}", self.output);
        let Values::Numbers(want) = &self.want else {
            panic!("{what}: numbers, expected strings")
        };
        let got: Vec<f64> = match self.column {
            Some((index, of)) => {
                assert_eq!(got.len() % of, 0, "{what}: not {of} columns");
                got.iter().skip(index).step_by(of).copied().collect()
            }
            None => got.to_vec(),
        };
        self.tolerance.assert_all(&got, want, &what);
    }

    /// Asserts string output values against the expectation.
    pub fn assert_strings(&self, got: &[String], what: &str) {
        let what = format!("{what} {}", self.output);
        let Values::Strings(want) = &self.want else {
            panic!("{what}: strings, expected numbers")
        };
        assert_eq!(got, want.as_slice(), "{what}");
    }

    /// Asserts an output tensor of an in-process model: its values, and its shape and datatype
    /// where the expectation gives them.
    pub fn assert_tensor(&self, got: &Tensor, what: &str) {
        self.assert_meta(&got.shape, got.datatype().name(), what);
        match got.data() {
            TensorData::Bytes(strings) => {
                let strings: Vec<String> = strings
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect();
                self.assert_strings(&strings, what);
            }
            data => {
                let values: Vec<f64> = (0..data.len()).map(|i| data.get_f64(i).unwrap()).collect();
                self.assert_numbers(&values, what);
            }
        }
    }

    /// Asserts the output's shape and datatype where the expectation gives them.
    pub fn assert_meta(&self, shape: &[usize], datatype: &str, what: &str) {
        if let Some(want) = &self.shape {
            assert_eq!(shape, want.as_slice(), "{what} {}: shape", self.output);
        }
        if let Some(want) = &self.datatype {
            assert_eq!(datatype, want, "{what} {}: datatype", self.output);
        }
    }
}

/// A JSON array of numbers, null as NaN.
pub fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a shape: {v}"))
        .iter()
        .map(|d| d.as_u64().expect("a dimension") as usize)
        .collect()
}

fn at<'a>(value: &'a Value, pointer: &str, file: &str) -> &'a Value {
    value
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{file}: nothing at {pointer:?}"))
}

/// First index of each row's maximum; a row of one value p reads as [1 - p, p].
fn argmax(scores: &[f64], rows: usize) -> Vec<f64> {
    let width = scores.len() / rows;
    scores
        .chunks(width)
        .map(|r| {
            if width == 1 {
                return if r[0] > 1.0 - r[0] { 1.0 } else { 0.0 };
            }
            r.iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > r[b] { i } else { b }) as f64
        })
        .collect()
}

impl Manifest {
    fn parse(v: &Value) -> Manifest {
        let tolerances = v["tolerances"]
            .as_object()
            .expect("cases.json: tolerances")
            .iter()
            .map(|(name, t)| {
                let tolerance = Tolerance {
                    name: name.clone(),
                    abs: t["abs"].as_f64().expect("abs"),
                    rel: t["rel"].as_f64().expect("rel"),
                };
                (name.clone(), tolerance)
            })
            .collect();
        let surfaces = v["surfaces"]
            .as_object()
            .expect("cases.json: surfaces")
            .iter()
            .map(|(name, s)| {
                let formats = s["formats"]
                    .as_array()
                    .expect("formats")
                    .iter()
                    .map(|f| Format::parse(f.as_str().unwrap()))
                    .collect();
                let why_not = strings(&s["why_not"]);
                (name.clone(), Surface { formats, why_not })
            })
            .collect();
        let cases = v["cases"]
            .as_array()
            .expect("cases.json: cases")
            .iter()
            .map(|c| Case {
                name: c["name"].as_str().expect("a case's name").to_owned(),
                models: c["models"]
                    .as_array()
                    .expect("models")
                    .iter()
                    .map(|m| ModelFile {
                        file: m["file"].as_str().expect("file").to_owned(),
                        format: Format::parse(m["format"].as_str().expect("format")),
                    })
                    .collect(),
                skip: strings(&c["skip"]),
                raw: c.clone(),
            })
            .collect();
        let manifest = Manifest {
            tolerances,
            surfaces,
            cases,
        };
        manifest.validate();
        manifest
    }

    /// Every format is either loaded by a surface or excused with a reason; every name exists.
    fn validate(&self) {
        for (name, surface) in &self.surfaces {
            for f in [
                Format::XgboostJson,
                Format::XgboostUbj,
                Format::LightGbm,
                Format::OnnxMl,
                Format::Onnx,
            ] {
                assert!(
                    surface.formats.contains(&f) != surface.why_not.contains_key(f.name()),
                    "cases.json: surface {name} must either load {} or say why not",
                    f.name()
                );
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for case in &self.cases {
            assert!(names.insert(&case.name), "cases.json: {} twice", case.name);
            for surface in case.skip.keys() {
                assert!(
                    self.surfaces.contains_key(surface),
                    "{}: skip names no surface {surface:?}",
                    case.name
                );
            }
            for o in case.raw["outputs"].as_array().expect("outputs") {
                let t = o["tolerance"].as_str().expect("tolerance");
                assert!(
                    self.tolerances.contains_key(t),
                    "{}: no tolerance {t:?}",
                    case.name
                );
            }
        }
    }

    /// The (case, model file) pairs `surface` runs, in manifest order. Prints every pair it
    /// does not run, with the manifest's reason, so that nothing is skipped silently.
    pub fn runs(&self, surface: &str) -> Vec<(&Case, &ModelFile)> {
        let entry = self
            .surfaces
            .get(surface)
            .unwrap_or_else(|| panic!("cases.json: no surface {surface:?}"));
        let mut runs = Vec::new();
        for case in &self.cases {
            if let Some(reason) = case.skip.get(surface) {
                eprintln!("{surface}: skipping {}: {reason}", case.name);
                continue;
            }
            for model in &case.models {
                match entry.why_not.get(model.format.name()) {
                    Some(reason) => eprintln!(
                        "{surface}: skipping {} ({}): {reason}",
                        case.name,
                        model.format.name()
                    ),
                    None => runs.push((case, model)),
                }
            }
        }
        assert!(!runs.is_empty(), "{surface}: no case to run");
        runs
    }
}

fn strings(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("a reason").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

impl Case {
    /// A label for messages: the case and, when it has several, the model file's format.
    pub fn label(&self, model: &ModelFile) -> String {
        if self.models.len() > 1 {
            format!("{} [{}]", self.name, model.format.name())
        } else {
            self.name.clone()
        }
    }

    /// The case's input tensors.
    pub fn inputs(&self) -> Vec<Input> {
        self.raw["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .map(|i| {
                let file = i["file"].as_str().expect("an input's file");
                let json = read_json(file);
                let t = at(&json, i["at"].as_str().unwrap_or(""), file);
                if let Some(datatype) = t.get("datatype") {
                    assert_eq!(datatype, "FP32", "{}: inputs are FP32", self.name);
                }
                let data: Vec<f32> = numbers(&t["data"]).iter().map(|&v| v as f32).collect();
                let shape = dims(&t["shape"]);
                assert_eq!(shape.iter().product::<usize>(), data.len(), "{}", self.name);
                Input {
                    name: t.get("name").and_then(Value::as_str).map(str::to_owned),
                    shape,
                    data,
                }
            })
            .collect()
    }

    /// The case's inputs as tensors named as `signature` names them (by name when the case
    /// names them, else by position).
    pub fn input_tensors(&self, signature: &Signature) -> Vec<Tensor> {
        let names: Vec<String> = signature.inputs.iter().map(|i| i.name.clone()).collect();
        self.inputs()
            .iter()
            .enumerate()
            .map(|(i, input)| input.tensor(&input.name_in(&names, i)))
            .collect()
    }

    /// Asserts that `outputs` (a model's answer to [`Case::input_tensors`]) hold every compared
    /// output, each matching its oracle; `what` names the run in the panic message.
    pub fn assert_outputs(&self, outputs: &[Tensor], what: &str) {
        for check in self.checks() {
            let got = outputs
                .iter()
                .find(|t| t.name == check.output)
                .unwrap_or_else(|| panic!("{what}: no output {}", check.output));
            check.assert_tensor(got, what);
        }
    }

    /// The number of rows: the first input's first dimension.
    pub fn rows(&self) -> usize {
        self.inputs()[0].shape[0]
    }

    /// The compared outputs, resolved.
    pub fn checks(&self) -> Vec<Check> {
        let rows = self.rows();
        let default = self.raw["expected"].as_str();
        self.raw["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .map(|o| {
                let file = o["file"]
                    .as_str()
                    .or(default)
                    .unwrap_or_else(|| panic!("{}: no expected file", self.name));
                let json = read_json(file);
                let found = at(&json, o["at"].as_str().unwrap_or(""), file);
                let (values, shape, datatype) = match found.get("data") {
                    Some(data) => (
                        data,
                        Some(dims(&found["shape"])),
                        found["datatype"].as_str().map(str::to_owned),
                    ),
                    None => (found, None, None),
                };
                let mut want = if values.get(0).is_some_and(Value::is_string) {
                    Values::Strings(
                        values
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|s| s.as_str().expect("all strings").to_owned())
                            .collect(),
                    )
                } else {
                    Values::Numbers(numbers(values))
                };
                match (o["derive"].as_str(), &want) {
                    (None, _) => {}
                    (Some("argmax"), Values::Numbers(scores)) => {
                        want = Values::Numbers(argmax(scores, rows));
                    }
                    (Some(other), _) => panic!("{}: cannot derive {other:?}", self.name),
                }
                let column = o.get("column").map(|c| {
                    (
                        c["index"].as_u64().expect("column index") as usize,
                        c["of"].as_u64().expect("column of") as usize,
                    )
                });
                Check {
                    output: o["name"].as_str().expect("an output's name").to_owned(),
                    want,
                    column,
                    shape,
                    datatype,
                    tolerance: Tolerance::named(o["tolerance"].as_str().unwrap()),
                }
            })
            .collect()
    }
}
