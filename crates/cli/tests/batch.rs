//! `ferroserve batch` as a user runs it: every numeric conformance case of the manifest
//! (tests/conformance/cases.json, its `batch` surface) scored from a Parquet file of the case's
//! rows and compared with the manifest's tolerances; the same answers as the server for the
//! same rows (an ONNX model and a tree model), CSV / JSON lines / Parquet round trips, bad rows
//! isolated and counted (malformed CSV records and JSON lines too), `--fail-fast`, directories,
//! globs and partitioned output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, Float32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

mod common;

use common::{block_on, root, start_server};

/// Runs `ferroserve batch` with `args`; returns (exit code, stderr).
fn batch(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .arg("batch")
        .args(args)
        .args(["--progress", "plain"])
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A repository holding the example ONNX models and an XGBoost fixture (`xgb`).
fn repository(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    for model in ["iris_logreg", "digits_mlp"] {
        let from = root().join("examples/models").join(model).join("1");
        let to = repo.join(model).join("1");
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(&from).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    let xgb = repo.join("xgb/1");
    std::fs::create_dir_all(&xgb).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/trees/xgboost/binary_logistic/model.json"),
        xgb.join("model.json"),
    )
    .unwrap();
    repo
}

/// The fixture's rows: `[rows][30]` values, `None` for a missing one.
fn xgb_rows(name: &str) -> Vec<Vec<Option<f32>>> {
    let path = root().join(format!("tests/fixtures/trees/xgboost/{name}/rows.json"));
    let rows: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let width = rows["shape"][1].as_u64().unwrap() as usize;
    rows["data"]
        .as_array()
        .unwrap()
        .chunks(width)
        .map(|r| r.iter().map(|v| v.as_f64().map(|v| v as f32)).collect())
        .collect()
}

/// Writes `rows` as CSV with an `id` column and features `f0..`; empty for a missing value.
fn write_csv(path: &Path, rows: &[Vec<Option<f32>>]) {
    let width = rows[0].len();
    let mut text = String::from("id");
    for j in 0..width {
        text += &format!(",f{j}");
    }
    text.push('\n');
    for (i, r) in rows.iter().enumerate() {
        text += &i.to_string();
        for v in r {
            text.push(',');
            if let Some(v) = v {
                text += &v.to_string();
            }
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Writes `rows` as Parquet: `id` (int64) and `f0..` (float32, null for missing).
fn write_parquet(path: &Path, rows: &[Vec<Option<f32>>]) {
    let width = rows[0].len();
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut columns: Vec<Arc<dyn Array>> =
        vec![Arc::new(Int64Array::from_iter_values(0..rows.len() as i64))];
    for j in 0..width {
        fields.push(Field::new(format!("f{j}"), DataType::Float32, true));
        columns.push(Arc::new(
            rows.iter().map(|r| r[j]).collect::<Float32Array>(),
        ));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Every batch of a Parquet file.
fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The float column `name` of Parquet output, null as NaN.
fn float_column(path: &Path, name: &str) -> Vec<f32> {
    read_parquet(path)
        .iter()
        .flat_map(|b| {
            let c = b
                .column_by_name(name)
                .unwrap_or_else(|| panic!("no column {name} in {:?}", b.schema()))
                .as_primitive::<Float32Type>();
            (0..c.len())
                .map(|i| if c.is_null(i) { f32::NAN } else { c.value(i) })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `ferroserve serve` on `repo` (free ports); returns the child and its HTTP address.
fn serve(repo: &Path) -> (std::process::Child, String) {
    let server = start_server(&["--model-repository", repo.to_str().unwrap()]);
    // Keep reading its log: a closed pipe would fail the server's next log line.
    let log = server.log;
    std::thread::spawn(move || log.for_each(drop));
    (server.child, server.addr)
}

/// The server's answer for `rows` (FP32 `[N, width]` into the model's one input), output
/// `output` as f32.
fn server_answer(addr: &str, model: &str, rows: &[Vec<f32>], output: &str) -> Vec<f32> {
    block_on(async {
        let client = reqwest::Client::new();
        let base = format!("http://{addr}/v2/models/{model}");
        for _ in 0..100 {
            if client
                .get(format!("{base}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let meta: Value = client
            .get(&base)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let input = meta["inputs"][0]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{meta}"))
            .to_owned();
        let body = json!({
            "inputs": [{
                "name": input,
                "datatype": "FP32",
                "shape": [rows.len(), rows[0].len()],
                "data": rows.iter().flatten().collect::<Vec<_>>(),
            }],
            "outputs": [{"name": output}],
        });
        let reply: Value = client
            .post(format!("{base}/infer"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["outputs"][0]["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{reply}"))
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    })
}

/// CSV rows of the example data, without the label: `[rows][features]`.
fn example_rows(csv: &str) -> Vec<Vec<f32>> {
    std::fs::read_to_string(root().join(csv))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let mut v: Vec<f32> = l.split(',').map(|x| x.parse().unwrap()).collect();
            v.pop();
            v
        })
        .collect()
}

/// Splits the values of a `[N, width]` output into its `width` columns.
fn columns_of(values: &[f32], width: usize) -> Vec<Vec<f32>> {
    (0..width)
        .map(|k| values.iter().skip(k).step_by(width).copied().collect())
        .collect()
}

/// The values of output `name` in Parquet output: its column `name`, or its columns
/// `name_0`, `name_1`, … (an output with several values a row), row-major; numbers (null as
/// NaN) or strings.
fn output_values(path: &Path, name: &str) -> Result<Vec<f64>, Vec<String>> {
    let batches = read_parquet(path);
    let schema = batches[0].schema();
    let mut columns: Vec<(usize, usize)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            if f.name() == name {
                return Some((0, i));
            }
            let k = f
                .name()
                .strip_prefix(name)?
                .strip_prefix('_')?
                .parse()
                .ok()?;
            Some((k, i))
        })
        .collect();
    columns.sort();
    assert!(!columns.is_empty(), "no column {name} in {schema:?}");
    let mut numbers = Vec::new();
    let mut strings = Vec::new();
    for b in &batches {
        for row in 0..b.num_rows() {
            for &(_, i) in &columns {
                let c = b.column(i);
                if c.is_null(row) {
                    numbers.push(f64::NAN);
                    continue;
                }
                match c.data_type() {
                    DataType::Float32 => {
                        numbers.push(f64::from(c.as_primitive::<Float32Type>().value(row)))
                    }
                    DataType::Float64 => numbers.push(c.as_primitive::<Float64Type>().value(row)),
                    DataType::Int64 => {
                        numbers.push(c.as_primitive::<Int64Type>().value(row) as f64)
                    }
                    DataType::Int32 => {
                        numbers.push(f64::from(c.as_primitive::<Int32Type>().value(row)))
                    }
                    DataType::Utf8 => strings.push(c.as_string::<i32>().value(row).to_owned()),
                    DataType::LargeUtf8 => strings.push(c.as_string::<i64>().value(row).to_owned()),
                    other => panic!("column {name}: {other}"),
                }
            }
        }
    }
    if strings.is_empty() {
        Ok(numbers)
    } else {
        Err(strings)
    }
}

/// Every conformance case of the `batch` surface: each model file alone in a repository, its
/// case's rows as a Parquet file (NaN as null), `ferroserve batch`, and each compared output
/// against the manifest's expectation and tolerance.
#[test]
fn every_conformance_case_scores_as_its_library() {
    let dir = tempfile::tempdir().unwrap();
    let runs = ferroserve_conformance::manifest().runs("batch");
    for (n, (case, model)) in runs.iter().enumerate() {
        let what = case.label(model);
        let version = dir.path().join(format!("m{n}/1"));
        std::fs::create_dir_all(&version).unwrap();
        std::fs::copy(model.path(), version.join(model.file_name())).unwrap();
        let inputs = case.inputs();
        assert_eq!(inputs.len(), 1, "{what}: batch reads one input's rows");
        let input = &inputs[0];
        let rows: Vec<Vec<Option<f32>>> = (0..input.shape[0])
            .map(|r| {
                let row = input.row(r).iter();
                row.map(|&v| (!v.is_nan()).then_some(v)).collect()
            })
            .collect();
        let parquet = dir.path().join(format!("in{n}.parquet"));
        write_parquet(&parquet, &rows);
        let out = dir.path().join(format!("out{n}.parquet"));
        let (code, stderr) = batch(&[
            "--model",
            dir.path().join(format!("m{n}")).to_str().unwrap(),
            "--input",
            parquet.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--ignore",
            "id",
        ]);
        assert_eq!(code, 0, "{what}: {stderr}");
        for check in case.checks() {
            match output_values(&out, &check.output) {
                Ok(numbers) => check.assert_numbers(&numbers, &what),
                Err(strings) => check.assert_strings(&strings, &what),
            }
        }
    }
    println!("batch: {} runs", runs.len());
}

#[test]
fn batch_answers_as_the_server_does() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let (mut server, addr) = serve(&repo);

    // A tree model: XGBoost, fed from Parquet.
    let rows = xgb_rows("binary_logistic");
    let input = dir.path().join("xgb.parquet");
    write_parquet(&input, &rows);
    let out = dir.path().join("xgb-out.parquet");
    let (code, stderr) = batch(&[
        "--model",
        repo.join("xgb").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--keep",
        "id",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("scored 32 rows"), "{stderr}");
    let dense: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| r.iter().map(|v| v.unwrap()).collect())
        .collect();
    let served = server_answer(&addr, "xgb", &dense, "probabilities");
    let width = served.len() / rows.len();
    for (k, column) in columns_of(&served, width).iter().enumerate() {
        let name = if width == 1 {
            "probabilities".to_owned()
        } else {
            format!("probabilities_{k}")
        };
        let ours = float_column(&out, &name);
        assert_eq!(&ours, column, "xgb {name}");
    }

    // An ONNX model (tract or ONNX Runtime), fed from CSV.
    let digits = example_rows("examples/data/digits_mlp/test.csv");
    let out = dir.path().join("digits.parquet");
    let (code, stderr) = batch(&[
        "--model",
        repo.join("digits_mlp").to_str().unwrap(),
        "--input",
        "examples/data/digits_mlp/test.csv",
        "--output",
        out.to_str().unwrap(),
        "--ignore",
        "digit",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let served = server_answer(&addr, "digits_mlp", &digits, "probabilities");
    let width = served.len() / digits.len();
    assert_eq!(width, 10);
    for (k, column) in columns_of(&served, width).iter().enumerate() {
        assert_eq!(
            &float_column(&out, &format!("probabilities_{k}")),
            column,
            "probabilities_{k}"
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn csv_jsonl_and_parquet_give_the_same_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let rows = xgb_rows("binary_logistic");
    let csv = dir.path().join("rows.csv");
    write_csv(&csv, &rows);
    let parquet = dir.path().join("rows.parquet");
    write_parquet(&parquet, &rows);
    let model = repo.join("xgb");
    let model = model.to_str().unwrap();

    // CSV in, JSON lines (gzipped) out; that back in, Parquet out; Parquet in, CSV out.
    let jsonl = dir.path().join("a.jsonl.gz");
    let from_parquet = dir.path().join("b.parquet");
    let from_csv_again = dir.path().join("c.parquet");
    for (input, output) in [
        (&csv, &jsonl),
        (&parquet, &from_parquet),
        (&csv, &from_csv_again),
    ] {
        let (input, output) = (input.to_str().unwrap(), output.to_str().unwrap());
        let args = [
            "--model", model, "--input", input, "--output", output, "--keep", "id",
        ];
        let (code, stderr) = batch(&args);
        assert_eq!(code, 0, "{input} -> {output}: {stderr}");
    }

    let name = if float_column(&from_parquet, "probabilities_1").is_empty() {
        "probabilities"
    } else {
        "probabilities_1"
    };
    let p = float_column(&from_parquet, name);
    assert_eq!(p, float_column(&from_csv_again, name));
    // Parquet's answers against the library's are every_conformance_case_scores_as_its_library's.
    // The JSON-lines output holds the same numbers.
    let text = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&jsonl).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let from_jsonl: Vec<f32> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()[name]
                .as_f64()
                .unwrap() as f32
        })
        .collect();
    assert_eq!(from_jsonl, p);
}

#[test]
fn bad_rows_are_isolated_and_counted_or_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("iris.csv");
    std::fs::write(
        &csv,
        "id,sepal_length,sepal_width,petal_length,petal_width\n\
         1,5.1,3.5,1.4,0.2\n\
         2,abc,3.0,1.4,0.2\n\
         3,6.7,3.1,4.4,1.4\n\
         4,6.3,,5.0,1.9\n",
    )
    .unwrap();
    let out = dir.path().join("out.csv");
    let (code, stderr) = batch(&[
        "--model",
        "examples/models/iris_logreg",
        "--input",
        csv.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--keep",
        "id",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("scored 4 rows") && stderr.contains("1 failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("iris.csv row 2: column 'sepal_length': 'abc' is not a number"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "id,label,probabilities_0,probabilities_1,probabilities_2,_error"
    );
    assert!(
        lines[1].starts_with("1,0,") && lines[1].ends_with(','),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2], "2,,,,,column 'sepal_length': 'abc' is not a number",
        "the bad row has no predictions"
    );
    assert!(lines[3].starts_with("3,1,"), "{}", lines[3]);
    // A missing float is NaN, the model's missing value: scored, not failed.
    assert!(
        lines[4].starts_with("4,") && lines[4].ends_with(','),
        "{}",
        lines[4]
    );

    let (code, stderr) = batch(&[
        "--model",
        "examples/models/iris_logreg",
        "--input",
        csv.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--keep",
        "id",
        "--fail-fast",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("iris.csv row 2: column 'sepal_length'"),
        "{stderr}"
    );

    // Only the output columns asked for.
    let (code, stderr) = batch(&[
        "--model",
        "examples/models/iris_logreg",
        "--input",
        csv.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--keep",
        "id",
        "--outputs",
        "probabilities_2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().next(), Some("id,probabilities_2,_error"));

    // Columns that do not fit the model are refused before anything is scored.
    let (code, stderr) = batch(&[
        "--model",
        "examples/models/iris_logreg",
        "--input",
        csv.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("input 'input' takes 4 features per row"),
        "{stderr}"
    );
}

#[test]
fn malformed_records_fail_their_row_not_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("ragged.csv");
    std::fs::write(
        &csv,
        "id,sepal_length,sepal_width,petal_length,petal_width\n\
         1,5.1,3.5,1.4,0.2\n\
         2,3.0,1.4,0.2\n\
         3,6.7,3.1,4.4,1.4\n\
         4,6.3,2.5,5.0,1.9,extra\n\
         5,6.3,2.5,5.0,1.9\n",
    )
    .unwrap();
    let jsonl = dir.path().join("broken.jsonl");
    let row = |id: u32| {
        format!(
            "{{\"id\": {id}, \"sepal_length\": 5.1, \"sepal_width\": 3.5, \
             \"petal_length\": 1.4, \"petal_width\": 0.2}}\n"
        )
    };
    let broken = format!("{}{{\"id\": 2, \"sepal_length\": 5.1,\n{}", row(1), row(3));
    std::fs::write(&jsonl, broken).unwrap();

    let out = dir.path().join("out.csv");
    let run = |input: &Path, extra: &[&str]| {
        let mut args = vec![
            "--model",
            "examples/models/iris_logreg",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--keep",
            "id",
        ];
        args.extend_from_slice(extra);
        batch(&args)
    };
    let (code, stderr) = run(&csv, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("scored 5 rows") && stderr.contains("2 failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ragged.csv row 2: line 3: 4 fields where the header has 5"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[1].starts_with("1,0,"), "{}", lines[1]);
    assert_eq!(lines[2], ",,,,,line 3: 4 fields where the header has 5");
    assert!(lines[3].starts_with("3,1,"), "{}", lines[3]);
    assert_eq!(lines[4], ",,,,,line 5: 6 fields where the header has 5");
    assert!(lines[5].starts_with("5,"), "{}", lines[5]);

    let (code, stderr) = run(&jsonl, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("scored 3 rows") && stderr.contains("1 failed"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[2].starts_with(",,,,,line 2: not one JSON object"),
        "{text}"
    );
    assert!(lines[3].starts_with("3,0,"), "{}", lines[3]);

    let (code, stderr) = run(&csv, &["--fail-fast"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("ragged.csv row 2: line 3: 4 fields where the header has 5"),
        "{stderr}"
    );
}

#[test]
fn directories_globs_and_partitioned_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("in");
    std::fs::create_dir_all(data.join("day=1")).unwrap();
    let test = std::fs::read_to_string(root().join("examples/data/iris_logreg/test.csv")).unwrap();
    let (header, body) = test.split_once('\n').unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let half = lines.len() / 2;
    std::fs::write(
        data.join("a.csv"),
        format!("{header}\n{}\n", lines[..half].join("\n")),
    )
    .unwrap();
    std::fs::write(
        data.join("day=1/b.csv"),
        format!("{header}\n{}\n", lines[half..].join("\n")),
    )
    .unwrap();
    std::fs::write(data.join("_SUCCESS"), "").unwrap();

    let out = dir.path().join("out");
    let (code, stderr) = batch(&[
        "--model",
        "examples/models/iris_logreg",
        "--input",
        data.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--keep",
        "species",
        "--partition-by",
        "species",
        "--output-format",
        "csv",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("scored {} rows from 2 file(s)", lines.len())),
        "{stderr}"
    );
    let mut written = 0;
    for species in ["0", "1", "2"] {
        let part = out.join(format!("species={species}/part-00000.csv"));
        let text = std::fs::read_to_string(&part).unwrap();
        assert!(text.starts_with("label,probabilities_0"), "{text}");
        written += text.lines().count() - 1;
    }
    assert_eq!(written, lines.len());

    // A glob, rolled over every 10 rows.
    let pattern = format!("{}/*.csv", data.display());
    let out = dir.path().join("rolled");
    let (code, stderr) = batch(&[
        "--model",
        "examples/models/iris_logreg",
        "--input",
        &pattern,
        "--output",
        out.to_str().unwrap(),
        "--ignore",
        "species",
        "--rows-per-file",
        "10",
        "--batch-rows",
        "10",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let parts = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(parts, half.div_ceil(10), "{stderr}");
}
