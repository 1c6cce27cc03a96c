//! `ferroserve profile`: a reference profile of a model's data. Rows of a training file are
//! sampled (reservoir sampling with a fixed seed, so the same file gives the same profile and
//! memory stays bounded whatever its size), mapped onto the model's inputs, run through the
//! model, and every input feature and output column is summarised
//! ([`ColumnProfile`]).
//!
//! Columns map onto inputs by name when every input is named like a column (one column per
//! input); otherwise a model with one `[N, F]` input takes `F` columns: those of `--columns`,
//! else every column not ignored, in file order.

use std::collections::BTreeMap;

use arrow_array::{BooleanArray, RecordBatch};
use ferroserve_core::profile::{ColumnProfile, Profile};
use ferroserve_core::{ByteStrings, DataType, Model, Signature, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::BatchError;
use crate::columns::{Values, is_integer, values};
use crate::mapping::{ColumnMapping, InputColumns};
use crate::source::Source;

/// How to profile.
#[derive(Clone, Debug)]
pub struct ProfileOptions {
    /// The feature columns of a one-input model, in the order of its last dimension.
    pub columns: Option<Vec<String>>,
    /// Columns that are not features (a label, an id).
    pub ignore: Vec<String>,
    /// Rows kept (a uniform sample of the file beyond that).
    pub max_rows: usize,
    /// Rows per model call.
    pub batch_rows: usize,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            columns: None,
            ignore: Vec::new(),
            max_rows: 100_000,
            batch_rows: 1_024,
        }
    }
}

/// A column's sampled values.
#[derive(Debug)]
enum Kept {
    Numbers(Vec<f64>),
    Strings(Vec<Option<String>>),
}

/// Profiles `model` (whose signature is `signature`) over the rows of `source`.
pub fn profile(
    model: &dyn Model,
    signature: &Signature,
    mut source: Source,
    options: &ProfileOptions,
) -> Result<Profile, BatchError> {
    let mapping = ColumnMapping {
        columns: options.columns.clone(),
        inputs: Vec::new(),
        ignore: options.ignore.clone(),
    };
    let plan = mapping.plan(
        signature,
        &source.schema,
        &source.path().display().to_string(),
    )?;
    let used: Vec<usize> = plan.iter().flat_map(|p| p.columns.clone()).collect();
    let schema = source.schema.clone();
    let mut kept: BTreeMap<usize, Kept> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(0x5EED);
    let mut seen: usize = 0;
    while let Some(batch) = source.next() {
        let batch = without_rows(batch?, &source.take_rejected())?;
        let columns: Vec<(usize, Values)> = used
            .iter()
            .map(|&c| {
                let v = values(batch.column(c)).ok_or_else(|| {
                    BatchError::Columns(format!(
                        "column '{}' is {}, neither numbers nor text",
                        schema.field(c).name(),
                        batch.column(c).data_type()
                    ))
                })?;
                Ok((c, v))
            })
            .collect::<Result<_, BatchError>>()?;
        for row in 0..batch.num_rows() {
            // Reservoir sampling (Vitter's algorithm R): row `seen` replaces a kept one with
            // probability max_rows / (seen + 1).
            let slot = if seen < options.max_rows {
                None
            } else {
                let j = rng.random_range(0..=seen);
                if j >= options.max_rows {
                    seen += 1;
                    continue;
                }
                Some(j)
            };
            seen += 1;
            for (c, v) in &columns {
                let entry = kept.entry(*c).or_insert_with(|| match v {
                    Values::Numbers(_) => Kept::Numbers(Vec::new()),
                    Values::Strings(_) => Kept::Strings(Vec::new()),
                });
                match (entry, v) {
                    (Kept::Numbers(k), Values::Numbers(v)) => put(k, slot, v[row]),
                    (Kept::Strings(k), Values::Strings(v)) => put(k, slot, v[row].clone()),
                    _ => unreachable!("a column keeps its kind across batches"),
                }
            }
        }
    }
    let rows = seen.min(options.max_rows);
    if rows == 0 {
        return Err(BatchError::Columns(format!(
            "{} has no rows",
            source.path().display()
        )));
    }

    // Inputs: one profile per feature column.
    let mut inputs = Vec::new();
    for p in &plan {
        for (index, &c) in p.columns.iter().enumerate() {
            let name = schema.field(c).name();
            inputs.push(match &kept[&c] {
                Kept::Numbers(v) => ColumnProfile::numeric(
                    name,
                    &p.spec.name,
                    index,
                    &as_the_model_sees(p.spec.datatype, v),
                    is_integer(schema.field(c).data_type()),
                ),
                Kept::Strings(v) => ColumnProfile::categorical(
                    name,
                    &p.spec.name,
                    index,
                    v.iter().map(|s| s.as_deref()),
                ),
            });
        }
    }

    // Outputs: the model's predictions on the same rows.
    let step = match plan.first().map(|p| p.spec.shape.first().copied()) {
        Some(Some(d)) if d > 0 => d as usize,
        _ => options.batch_rows.max(1),
    };
    let mut outputs: Vec<Vec<Kept>> = Vec::new();
    let mut integer_outputs: Vec<bool> = Vec::new();
    for start in (0..rows).step_by(step) {
        let end = (start + step).min(rows);
        let tensors = plan
            .iter()
            .map(|p| input_tensor(p, &kept, start, end))
            .collect::<Result<Vec<_>, _>>()?;
        let predicted = model.predict(&tensors)?;
        if outputs.is_empty() {
            outputs = predicted.iter().map(|_| Vec::new()).collect();
            integer_outputs = predicted
                .iter()
                .map(|t| {
                    !matches!(
                        t.datatype(),
                        DataType::Fp16 | DataType::Bf16 | DataType::Fp32 | DataType::Fp64
                    )
                })
                .collect();
        }
        for (o, t) in predicted.iter().enumerate() {
            let n = end - start;
            let width = t.len().checked_div(n).unwrap_or(0);
            if outputs[o].is_empty() {
                outputs[o] = (0..width)
                    .map(|_| match t.data() {
                        TensorData::Bytes(_) => Kept::Strings(Vec::new()),
                        _ => Kept::Numbers(Vec::new()),
                    })
                    .collect();
            }
            for (k, column) in outputs[o].iter_mut().enumerate() {
                for r in 0..n {
                    let i = r * width + k;
                    match (&mut *column, t.data()) {
                        (Kept::Strings(c), TensorData::Bytes(b)) => {
                            c.push(Some(String::from_utf8_lossy(&b[i]).into_owned()))
                        }
                        (Kept::Numbers(c), data) => c.push(data.get_f64(i).unwrap_or(f64::NAN)),
                        _ => unreachable!("kind chosen from this tensor"),
                    }
                }
            }
        }
    }
    let outputs = outputs
        .iter()
        .enumerate()
        .flat_map(|(o, columns)| {
            let tensor = signature
                .outputs
                .get(o)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| format!("output{o}"));
            let single = columns.len() == 1;
            let integer = integer_outputs.get(o).copied().unwrap_or(false);
            columns
                .iter()
                .enumerate()
                .map(move |(k, c)| {
                    let name = if single {
                        tensor.clone()
                    } else {
                        format!("{tensor}[{k}]")
                    };
                    match c {
                        Kept::Numbers(v) => ColumnProfile::numeric(&name, &tensor, k, v, integer),
                        Kept::Strings(v) => ColumnProfile::categorical(
                            &name,
                            &tensor,
                            k,
                            v.iter().map(|s| s.as_deref()),
                        ),
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Profile {
        format: 1,
        rows: rows as u64,
        source: source
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        inputs,
        outputs,
    })
}

/// `values` rounded to `datatype`, as the model (and the server's monitor) sees them: `5.1`
/// read as a double is not the FP32 `5.1` a request carries, and the reference's bin edges
/// and range must be the values requests will have.
fn as_the_model_sees(datatype: DataType, values: &[f64]) -> Vec<f64> {
    match TensorData::from_f64(datatype, values) {
        Some(data) => (0..values.len())
            .map(|i| {
                if values[i].is_nan() {
                    f64::NAN
                } else {
                    data.get_f64(i).unwrap_or(f64::NAN)
                }
            })
            .collect(),
        None => values.to_vec(),
    }
}

/// Appends `value`, or puts it at `slot`.
fn put<T>(kept: &mut Vec<T>, slot: Option<usize>, value: T) {
    match slot {
        Some(j) => kept[j] = value,
        None => kept.push(value),
    }
}

/// Rows `start..end` of the kept columns as the input tensor `p` describes.
fn input_tensor(
    p: &InputColumns,
    kept: &BTreeMap<usize, Kept>,
    start: usize,
    end: usize,
) -> Result<Tensor, BatchError> {
    let n = end - start;
    let width = p.columns.len();
    let shape = if p.spec.shape.len() >= 2 {
        vec![n, width]
    } else {
        vec![n]
    };
    let data = if p.spec.datatype == DataType::Bytes {
        let mut out = ByteStrings::with_capacity(n * width, 0);
        for r in start..end {
            for c in &p.columns {
                match &kept[c] {
                    Kept::Strings(v) => out.push(v[r].as_deref().unwrap_or_default()),
                    Kept::Numbers(v) => out.push(v[r].to_string()),
                }
            }
        }
        TensorData::Bytes(out)
    } else {
        let mut out = Vec::with_capacity(n * width);
        for r in start..end {
            for c in &p.columns {
                out.push(match &kept[c] {
                    Kept::Numbers(v) => v[r],
                    Kept::Strings(_) => {
                        return Err(BatchError::Columns(format!(
                            "input '{}' is {:?} but a chosen column is text",
                            p.spec.name, p.spec.datatype
                        )));
                    }
                });
            }
        }
        TensorData::from_f64(p.spec.datatype, &out).expect("not BYTES")
    };
    Tensor::new(&p.spec.name, shape, data)
        .map_err(|e| BatchError::Columns(format!("input '{}': {e}", p.spec.name)))
}

/// `batch` without the `rejected` rows (malformed records, read as empty ones): they are not
/// part of the sample.
fn without_rows(
    batch: RecordBatch,
    rejected: &[(usize, String)],
) -> Result<RecordBatch, BatchError> {
    if rejected.is_empty() {
        return Ok(batch);
    }
    let mut keep = vec![true; batch.num_rows()];
    for &(row, _) in rejected {
        keep[row] = false;
    }
    arrow_select::filter::filter_record_batch(&batch, &BooleanArray::from(keep))
        .map_err(|e| BatchError::Columns(e.to_string()))
}
