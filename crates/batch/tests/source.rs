//! The same rows read back from Parquet (written by the parquet crate's own writer), CSV,
//! gzipped CSV and JSON lines, with nulls as missing values.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{Array, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use ferroserve_batch::columns::{Values, values};
use ferroserve_batch::source::Source;

fn read_all(path: &std::path::Path) -> (Vec<f64>, Vec<Option<String>>) {
    let source = Source::open(path, 2).unwrap();
    let x = source.schema.index_of("x").unwrap();
    let s = source.schema.index_of("s").unwrap();
    let (mut xs, mut ss) = (Vec::new(), Vec::new());
    for batch in source {
        let batch = batch.unwrap();
        assert!(batch.num_rows() <= 2, "batches of the size asked for");
        let Some(Values::Numbers(v)) = values(batch.column(x)) else {
            panic!("x is numeric")
        };
        xs.extend(v);
        let Some(Values::Strings(v)) = values(batch.column(s)) else {
            panic!("s is text")
        };
        ss.extend(v);
    }
    (xs, ss)
}

fn check(path: &std::path::Path) {
    let (xs, ss) = read_all(path);
    assert_eq!(xs.len(), 3, "{}", path.display());
    assert_eq!(xs[0], 1.5);
    assert!(xs[1].is_nan(), "a null is missing");
    assert_eq!(xs[2], -2.0);
    assert_eq!(ss[0].as_deref(), Some("a"));
    assert_eq!(ss[2].as_deref(), Some("c"));
}

#[test]
fn every_format_reads_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-2.0)])),
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), Some("c")])),
        ],
    )
    .unwrap();
    let parquet = dir.path().join("rows.parquet");
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&parquet).unwrap(),
        schema,
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    check(&parquet);

    let csv_text = "x,s\n1.5,a\n,b\n-2,c\n";
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, csv_text).unwrap();
    check(&csv);
    let gz = dir.path().join("rows.csv.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), Default::default());
    encoder.write_all(csv_text.as_bytes()).unwrap();
    encoder.finish().unwrap();
    check(&gz);

    let jsonl = dir.path().join("rows.jsonl");
    std::fs::write(
        &jsonl,
        "{\"x\": 1.5, \"s\": \"a\"}\n{\"x\": null, \"s\": \"b\"}\n{\"x\": -2, \"s\": \"c\"}\n",
    )
    .unwrap();
    check(&jsonl);

    let unknown = dir.path().join("rows.xlsx");
    std::fs::write(&unknown, "").unwrap();
    let error = Source::open(&unknown, 2).unwrap_err().to_string();
    assert!(error.contains("unknown data format"), "{error}");
}

/// Each batch hands out the malformed records that fell in it, by their row in the batch.
fn rejected_by_batch(path: &std::path::Path) -> Vec<Vec<(usize, String)>> {
    let mut source = Source::open(path, 2).unwrap();
    let mut out = Vec::new();
    while let Some(batch) = source.next() {
        batch.unwrap();
        out.push(source.take_rejected());
    }
    out
}

#[test]
fn malformed_records_are_handed_out_with_their_batch() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("r.csv");
    std::fs::write(&csv, "x,s\n1,a\n2,b\n3\n4,d\n5,e,f\n").unwrap();
    let line = |n: usize, found: usize| format!("line {n}: {found} fields where the header has 2");
    assert_eq!(
        rejected_by_batch(&csv),
        vec![vec![], vec![(0, line(4, 1))], vec![(0, line(6, 3))]]
    );

    let jsonl = dir.path().join("r.jsonl");
    std::fs::write(
        &jsonl,
        "{\"x\": 1, \"s\": \"a\"}\n[2]\n\n{\"x\": 3, \"s\": \"c\"}\n",
    )
    .unwrap();
    let rejected = rejected_by_batch(&jsonl);
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].len(), 1);
    assert_eq!(rejected[0][0].0, 1);
    assert!(rejected[0][0].1.starts_with("line 2: not one JSON object"));
    assert!(rejected[1].is_empty());
    // The file's own key order, not arrow-json's sorted one.
    let names: Vec<String> = Source::open(&jsonl, 2)
        .unwrap()
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["x", "s"]);
}

#[test]
fn a_value_of_another_type_than_its_column_fails_its_row() {
    let dir = tempfile::tempdir().unwrap();
    // 1,100 integer ids (the types are inferred from the first 1,000 rows), then text.
    let mut csv_text = String::from("id,x\n");
    let mut json_text = String::new();
    for i in 0..1_100 {
        let id = if i == 1_050 {
            "x7".to_owned()
        } else {
            i.to_string()
        };
        let quoted = if i == 1_050 {
            "\"x7\"".to_owned()
        } else {
            i.to_string()
        };
        let empty = i == 1_060;
        csv_text.push_str(&format!("{},{i}.5\n", if empty { "" } else { id.as_str() }));
        if !empty {
            json_text.push_str(&format!("{{\"id\": {quoted}, \"x\": {i}.5}}\n"));
        } else {
            json_text.push_str(&format!("{{\"x\": {i}.5}}\n"));
        }
    }
    let csv = dir.path().join("typed.csv");
    std::fs::write(&csv, csv_text).unwrap();
    let jsonl = dir.path().join("typed.jsonl");
    std::fs::write(&jsonl, json_text).unwrap();
    for path in [&csv, &jsonl] {
        let mut source = Source::open(path, 2_000).unwrap();
        assert_eq!(source.schema.field(0).data_type(), &DataType::Int64);
        let batch = source.next().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 1_100);
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        assert_eq!(ids.value(1_049), 1_049);
        assert!(ids.is_null(1_050) && ids.is_null(1_060));
        assert_eq!(
            source.take_rejected(),
            vec![(
                1_050,
                "column 'id': 'x7' is not of its type, Int64".to_owned()
            )],
            "{}: an empty value is missing, not an error",
            path.display()
        );
    }
}
