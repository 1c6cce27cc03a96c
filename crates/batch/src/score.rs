//! One record batch through a model: the chosen columns gathered into input tensors, the
//! model run, its outputs appended as columns next to the kept ones.
//!
//! A row that cannot become model input (text that is not a number, a missing value for an
//! integer or text input) is isolated, as Openscoring does: its outputs are null and the
//! `_error` column says why; the other rows of the batch are scored. Nulls and NaN in
//! floating-point inputs are passed on as NaN, the missing value tree models understand.
//!
//! [`Scorer`] is `Sync`: the batch command calls one from every core, the Python package from
//! every Spark task.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, StringArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType as Arrow, Field, Schema, SchemaRef};
use ferroserve_core::{ByteStrings, DataType, Model, Tensor, TensorData};

use crate::BatchError;
use crate::mapping::{ColumnMapping, InputColumns, features_per_row};
use crate::model::LoadedModel;

/// The column that says why a row was not scored (null for the rows that were).
pub const ERROR_COLUMN: &str = "_error";

/// What to score and what to keep.
#[derive(Clone, Debug, Default)]
pub struct ScoreOptions {
    /// Which columns feed which input.
    pub mapping: ColumnMapping,
    /// Columns copied to the output unchanged (an id, a timestamp), before the predictions.
    pub keep: Vec<String>,
    /// The output columns written (`probabilities_1`), or whole output tensors
    /// (`probabilities`); every one when empty.
    pub outputs: Vec<String>,
}

/// One output tensor as output columns.
#[derive(Clone, Debug)]
struct OutputColumns {
    /// The tensor's name.
    tensor: String,
    /// Its datatype.
    datatype: DataType,
    /// Values per row: one column each.
    width: usize,
}

/// A model bound to the columns of one input schema.
#[derive(Debug)]
pub struct Scorer {
    model: Arc<dyn Model>,
    plan: Vec<InputColumns>,
    keep: Vec<usize>,
    outputs: Vec<OutputColumns>,
    /// The output columns written: (output tensor, value within its row).
    selected: Vec<(usize, usize)>,
    schema: SchemaRef,
    /// Rows per model call when the model's batch dimension is fixed.
    step: Option<usize>,
}

/// A scored batch.
#[derive(Debug)]
pub struct Scored {
    /// The kept columns, the output columns and [`ERROR_COLUMN`].
    pub batch: RecordBatch,
    /// Rows not scored, each with its reason in [`ERROR_COLUMN`].
    pub failed: usize,
}

impl Scorer {
    /// Binds `loaded` to the columns of `input` (read from `source`, named in errors).
    pub fn new(
        loaded: &LoadedModel,
        input: &Schema,
        options: &ScoreOptions,
        source: &str,
    ) -> Result<Scorer, BatchError> {
        let plan = plan(loaded, input, options, source)?;
        for p in &plan {
            for &c in &p.columns {
                check_column_type(input.field(c), p.spec.datatype)?;
            }
        }
        let keep = options
            .keep
            .iter()
            .map(|name| {
                input.index_of(name).map_err(|_| {
                    BatchError::Columns(format!(
                        "--keep {name}: no such column in {source} (columns: {})",
                        crate::mapping::column_names(input)
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let step = match loaded
            .signature
            .inputs
            .first()
            .and_then(|s| s.shape.first())
        {
            Some(&d) if d > 0 => Some(d as usize),
            _ => None,
        };
        let mut scorer = Scorer {
            model: Arc::clone(&loaded.model),
            plan,
            keep,
            outputs: Vec::new(),
            selected: Vec::new(),
            schema: Arc::new(Schema::empty()),
            step,
        };
        scorer.outputs = scorer.output_columns(loaded)?;
        let mut fields: Vec<Field> = scorer
            .keep
            .iter()
            .map(|&c| input.field(c).clone())
            .collect();
        for (i, o) in scorer.outputs.iter().enumerate() {
            for k in 0..o.width {
                let name = column_name(o, k);
                if options.outputs.is_empty()
                    || options.outputs.iter().any(|n| *n == name || *n == o.tensor)
                {
                    scorer.selected.push((i, k));
                    fields.push(Field::new(name, arrow_type(o.datatype), true));
                }
            }
        }
        if let Some(unknown) = options.outputs.iter().find(|n| {
            !scorer
                .outputs
                .iter()
                .any(|o| o.tensor == **n || (0..o.width).any(|k| column_name(o, k) == **n))
        }) {
            return Err(BatchError::Columns(format!(
                "--outputs {unknown}: the model has no such output or output column (outputs: {})",
                scorer
                    .outputs
                    .iter()
                    .flat_map(|o| (0..o.width).map(move |k| column_name(o, k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        fields.push(Field::new(ERROR_COLUMN, Arrow::Utf8, true));
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = fields.iter().find(|f| !seen.insert(f.name().clone())) {
            return Err(BatchError::Columns(format!(
                "output column '{}' would appear twice (a kept column named like a model \
                 output?)",
                dup.name()
            )));
        }
        scorer.schema = Arc::new(Schema::new(fields));
        Ok(scorer)
    }

    /// The columns of `input` that would feed the model (CSV and JSON-lines sources read them
    /// as text, so that a bad value fails its row only): the mapping alone, without the
    /// output-width probe [`Scorer::new`] may run.
    pub fn feature_columns(
        loaded: &LoadedModel,
        input: &Schema,
        options: &ScoreOptions,
        source: &str,
    ) -> Result<Vec<String>, BatchError> {
        Ok(plan(loaded, input, options, source)?
            .iter()
            .flat_map(|p| p.columns.iter().map(|&c| input.field(c).name().clone()))
            .collect())
    }

    /// The schema of every scored batch.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The model's output tensors, each with its values per row: from the signature when its
    /// dimensions are fixed, else from a one-row call on zeros.
    fn output_columns(&self, loaded: &LoadedModel) -> Result<Vec<OutputColumns>, BatchError> {
        let declared: Option<Vec<usize>> = loaded
            .signature
            .outputs
            .iter()
            .map(features_per_row)
            .collect();
        let widths = match declared {
            Some(widths) => widths,
            None => {
                let rows = self.step.unwrap_or(1);
                let zeros = self
                    .plan
                    .iter()
                    .map(|p| TensorData::zeros(p.spec.datatype, rows * p.width()))
                    .collect();
                let inputs = self.tensors(zeros, rows)?;
                let outputs = loaded.model.predict(&inputs).map_err(|e| {
                    BatchError::Load(format!(
                        "the model's output widths are not in its signature and a one-row \
                         call on zeros to find them failed: {e}"
                    ))
                })?;
                outputs.iter().map(|t| t.len() / rows).collect()
            }
        };
        Ok(loaded
            .signature
            .outputs
            .iter()
            .zip(widths)
            .map(|(spec, width)| OutputColumns {
                tensor: spec.name.clone(),
                datatype: spec.datatype,
                width,
            })
            .collect())
    }

    /// The shape of `rows` rows of input `p`.
    fn input_shape(&self, p: &InputColumns, rows: usize) -> Vec<usize> {
        match p.spec.shape.len() {
            0 | 1 => vec![rows],
            2 => vec![rows, p.width()],
            _ => std::iter::once(rows)
                .chain(p.spec.shape[1..].iter().map(|&d| d as usize))
                .collect(),
        }
    }

    /// `rows` rows of every input, row-major, as the model's input tensors.
    fn tensors(&self, data: Vec<TensorData>, rows: usize) -> Result<Vec<Tensor>, BatchError> {
        self.plan
            .iter()
            .zip(data)
            .map(|(p, data)| {
                Tensor::new(&p.spec.name, self.input_shape(p, rows), data)
                    .map_err(|e| BatchError::Columns(e.to_string()))
            })
            .collect()
    }

    /// Scores every row of `batch`.
    pub fn score(&self, batch: &RecordBatch) -> Result<Scored, BatchError> {
        self.score_marked(batch, &[])
    }

    /// Scores every row of `batch` except the `failed` ones, `(row, why)`: rows already known
    /// to be bad (malformed records, [`crate::source::Source::take_rejected`]), which get
    /// their reason as their error.
    pub fn score_marked(
        &self,
        batch: &RecordBatch,
        failed: &[(usize, String)],
    ) -> Result<Scored, BatchError> {
        let rows = batch.num_rows();
        let mut errors = RowErrors::new(rows);
        for (row, reason) in failed {
            errors.fail(*row, || reason.clone());
        }
        let gathered: Vec<TensorData> = self
            .plan
            .iter()
            .map(|p| gather(p, batch, &mut errors))
            .collect();
        let good: Vec<usize> = (0..rows).filter(|&r| errors.ok(r)).collect();
        // The outputs of each model call, in row order.
        let mut outputs: Vec<Vec<Tensor>> = Vec::new();
        if !good.is_empty() {
            let inputs: Vec<TensorData> = if good.len() == rows {
                gathered
            } else {
                gathered
                    .into_iter()
                    .zip(&self.plan)
                    .map(|(data, p)| take_rows(&data, p.width(), &good))
                    .collect()
            };
            let call = |inputs: Vec<TensorData>, rows: usize| {
                Ok::<_, BatchError>(self.model.predict(&self.tensors(inputs, rows)?)?)
            };
            match self.step {
                None => outputs.push(call(inputs, good.len())?),
                Some(step) => {
                    for start in (0..good.len()).step_by(step) {
                        let end = (start + step).min(good.len());
                        let part = inputs
                            .iter()
                            .zip(&self.plan)
                            .map(|(data, p)| slice_rows(data, p.width(), start, end))
                            .collect();
                        outputs.push(call(part, end - start)?);
                    }
                }
            }
        }
        // Row r's place among the scored rows.
        let mut place = vec![None; rows];
        for (i, &r) in good.iter().enumerate() {
            place[r] = Some(i);
        }
        let mut columns: Vec<ArrayRef> = self
            .keep
            .iter()
            .map(|&c| Arc::clone(batch.column(c)))
            .collect();
        for (o, spec) in self.outputs.iter().enumerate() {
            let parts: Vec<&TensorData> = outputs.iter().map(|call| call[o].data()).collect();
            let scored: usize = parts.iter().map(|d| d.len()).sum();
            if scored != good.len() * spec.width {
                return Err(BatchError::Load(format!(
                    "output '{}' has {scored} values for {} rows; {} per row expected",
                    spec.tensor,
                    good.len(),
                    spec.width
                )));
            }
            for &(_, k) in self.selected.iter().filter(|(i, _)| *i == o) {
                columns.push(output_array(spec.datatype, &parts, spec.width, k, &place));
            }
        }
        let failed = rows - good.len();
        columns.push(Arc::new(errors.into_array()));
        let batch = RecordBatch::try_new(self.schema(), columns)
            .map_err(|e| BatchError::Columns(e.to_string()))?;
        Ok(Scored { batch, failed })
    }
}

/// Maps the columns of `input` onto the model's inputs; kept columns (an id) are not
/// features unless named as such.
fn plan(
    loaded: &LoadedModel,
    input: &Schema,
    options: &ScoreOptions,
    source: &str,
) -> Result<Vec<InputColumns>, BatchError> {
    let mut mapping = options.mapping.clone();
    if mapping.columns.is_none() && mapping.inputs.is_empty() {
        mapping.ignore.extend(options.keep.iter().cloned());
    }
    mapping.plan(&loaded.signature, input, source)
}

/// `tensor`'s `k`-th output column's name: the tensor's name when it has one value per row.
fn column_name(o: &OutputColumns, k: usize) -> String {
    if o.width == 1 {
        o.tensor.clone()
    } else {
        format!("{}_{k}", o.tensor)
    }
}

/// Why each row failed, allocated on the first failure.
#[derive(Debug)]
struct RowErrors {
    rows: usize,
    reasons: Option<Vec<Option<String>>>,
}

impl RowErrors {
    fn new(rows: usize) -> RowErrors {
        RowErrors {
            rows,
            reasons: None,
        }
    }

    fn ok(&self, row: usize) -> bool {
        self.reasons.as_ref().is_none_or(|r| r[row].is_none())
    }

    /// Records the first reason row `row` fails.
    fn fail(&mut self, row: usize, reason: impl FnOnce() -> String) {
        let rows = self.rows;
        let reasons = self.reasons.get_or_insert_with(|| vec![None; rows]);
        if reasons[row].is_none() {
            reasons[row] = Some(reason());
        }
    }

    fn into_array(self) -> StringArray {
        match self.reasons {
            None => StringArray::new_null(self.rows),
            Some(reasons) => {
                let mut b = StringBuilder::with_capacity(self.rows, 0);
                for r in reasons {
                    b.append_option(r);
                }
                b.finish()
            }
        }
    }
}

/// Refuses, before any row is read, a column no row of which could feed `datatype`.
fn check_column_type(field: &Field, datatype: DataType) -> Result<(), BatchError> {
    let t = field.data_type();
    let fits = is_text(t) || t.is_numeric() || matches!(t, Arrow::Boolean | Arrow::Null);
    if fits {
        Ok(())
    } else {
        Err(BatchError::Columns(format!(
            "column '{}' is {t}; an input of type {datatype} is filled from numbers or text",
            field.name()
        )))
    }
}

fn is_text(t: &Arrow) -> bool {
    matches!(
        t,
        Arrow::Utf8 | Arrow::LargeUtf8 | Arrow::Utf8View | Arrow::Dictionary(..)
    )
}

/// A numeric element type inputs are gathered as.
trait Element: Copy + Default {
    fn from_f64(v: f64) -> Self;
    fn from_f32(v: f32) -> Self;
}

impl Element for f32 {
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn from_f32(v: f32) -> f32 {
        v
    }
}

impl Element for f64 {
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn from_f32(v: f32) -> f64 {
        v as f64
    }
}

/// The values of input `p`, row-major, for every row of `batch`; rows that cannot be
/// converted are recorded in `errors` (their values are left at zero).
fn gather(p: &InputColumns, batch: &RecordBatch, errors: &mut RowErrors) -> TensorData {
    let rows = batch.num_rows();
    let width = p.width();
    let schema = batch.schema();
    match p.spec.datatype {
        DataType::Fp32 => {
            let mut out = vec![0f32; rows * width];
            for (j, &c) in p.columns.iter().enumerate() {
                let name = schema.field(c).name();
                fill_floats(batch.column(c), name, &mut out, width, j, errors);
            }
            TensorData::F32(out)
        }
        DataType::Bytes => {
            let mut out = vec![Vec::new(); rows * width];
            for (j, &c) in p.columns.iter().enumerate() {
                let name = schema.field(c).name();
                fill_bytes(
                    batch.column(c),
                    name,
                    &p.spec.name,
                    &mut out,
                    width,
                    j,
                    errors,
                );
            }
            // Filled a column at a time; one copy into the row-major buffer.
            TensorData::Bytes(out.into())
        }
        datatype => {
            let mut out = vec![0f64; rows * width];
            for (j, &c) in p.columns.iter().enumerate() {
                let name = schema.field(c).name();
                fill_floats(batch.column(c), name, &mut out, width, j, errors);
                // Integer and boolean inputs have no missing value: a null or NaN is an error.
                if !matches!(datatype, DataType::Fp64 | DataType::Fp16 | DataType::Bf16) {
                    for r in 0..rows {
                        if out[r * width + j].is_nan() && errors.ok(r) {
                            errors.fail(r, || {
                                format!(
                                    "column '{name}' is empty; input '{}' is {datatype} and has \
                                     no missing value",
                                    p.spec.name
                                )
                            });
                        }
                    }
                }
            }
            match datatype {
                DataType::Fp64 => TensorData::F64(out),
                // NaN rows already failed; zero keeps the conversion total.
                _ => TensorData::from_f64(
                    datatype,
                    &out.iter()
                        .map(|v| if v.is_nan() { 0.0 } else { *v })
                        .collect::<Vec<_>>(),
                )
                .expect("BYTES is handled above"),
            }
        }
    }
}

/// Writes column `array` into feature `j` of the row-major `out` (`width` values a row):
/// numbers as they are, nulls as NaN, text parsed (a row whose text is not a number fails).
fn fill_floats<T: Element>(
    array: &ArrayRef,
    name: &str,
    out: &mut [T],
    width: usize,
    j: usize,
    errors: &mut RowErrors,
) {
    let nan = T::from_f64(f64::NAN);
    let rows = array.len();
    match array.data_type() {
        Arrow::Float32 => fill_primitive(
            array.as_primitive::<Float32Type>(),
            T::from_f32,
            out,
            width,
            j,
        ),
        Arrow::Float64 => fill_primitive(
            array.as_primitive::<Float64Type>(),
            T::from_f64,
            out,
            width,
            j,
        ),
        t if is_text(t) => {
            let text = arrow_cast::cast(array, &Arrow::Utf8).expect("text casts to Utf8");
            let text = text.as_string::<i32>();
            for r in 0..rows {
                out[r * width + j] = if text.is_null(r) {
                    nan
                } else {
                    let s = text.value(r).trim();
                    if s.is_empty() || s.eq_ignore_ascii_case("nan") || s.eq_ignore_ascii_case("na")
                    {
                        nan
                    } else {
                        match s.parse::<f64>() {
                            Ok(v) => T::from_f64(v),
                            Err(_) => {
                                errors
                                    .fail(r, || format!("column '{name}': '{s}' is not a number"));
                                T::default()
                            }
                        }
                    }
                };
            }
        }
        _ => {
            // Integers, booleans, decimals, half floats: Arrow's cast to f64 (checked up front).
            let cast = arrow_cast::cast(array, &Arrow::Float64).expect("numeric casts to f64");
            fill_floats(&cast, name, out, width, j, errors);
        }
    }
}

/// Writes a float column into feature `j` of the row-major `out`, nulls as NaN.
fn fill_primitive<T: Element, P: arrow_array::types::ArrowPrimitiveType>(
    a: &arrow_array::PrimitiveArray<P>,
    convert: impl Fn(P::Native) -> T,
    out: &mut [T],
    width: usize,
    j: usize,
) {
    for (r, v) in a.values().iter().enumerate() {
        out[r * width + j] = convert(*v);
    }
    if a.null_count() > 0 {
        let nan = T::from_f64(f64::NAN);
        for r in (0..a.len()).filter(|&r| a.is_null(r)) {
            out[r * width + j] = nan;
        }
    }
}

/// Writes column `array` into feature `j` of the BYTES input `out`: text as UTF-8, numbers
/// in their shortest decimal form; a null fails the row (text has no missing value).
fn fill_bytes(
    array: &ArrayRef,
    name: &str,
    input: &str,
    out: &mut [Vec<u8>],
    width: usize,
    j: usize,
    errors: &mut RowErrors,
) {
    let text = arrow_cast::cast(array, &Arrow::Utf8).expect("checked: numbers or text");
    let text = text.as_string::<i32>();
    for r in 0..array.len() {
        if text.is_null(r) {
            errors.fail(r, || {
                format!(
                    "column '{name}' is empty; input '{input}' is BYTES and has no missing value"
                )
            });
        } else {
            out[r * width + j] = text.value(r).as_bytes().to_vec();
        }
    }
}

/// The rows `rows` of row-major `data` (`width` values a row).
fn take_rows(data: &TensorData, width: usize, rows: &[usize]) -> TensorData {
    macro_rules! take {
        ($($v:ident),*) => {
            match data {
                $(TensorData::$v(d) => TensorData::$v(
                    rows.iter().flat_map(|&r| d[r * width..(r + 1) * width].iter().cloned()).collect(),
                ),)*
                TensorData::Bytes(d) => {
                    let mut out = ByteStrings::with_capacity(rows.len() * width, 0);
                    for &r in rows {
                        out.extend_from_range(d, r * width, (r + 1) * width);
                    }
                    TensorData::Bytes(out)
                }
            }
        };
    }
    take!(
        Bool, U8, U16, U32, U64, I8, I16, I32, I64, F16, Bf16, F32, F64
    )
}

/// Rows `start..end` of row-major `data`.
fn slice_rows(data: &TensorData, width: usize, start: usize, end: usize) -> TensorData {
    macro_rules! slice {
        ($($v:ident),*) => {
            match data {
                $(TensorData::$v(d) => TensorData::$v(d[start * width..end * width].to_vec()),)*
                TensorData::Bytes(d) => TensorData::Bytes(d.slice(start * width, end * width)),
            }
        };
    }
    slice!(
        Bool, U8, U16, U32, U64, I8, I16, I32, I64, F16, Bf16, F32, F64
    )
}

/// The Arrow type of an output column.
fn arrow_type(datatype: DataType) -> Arrow {
    match datatype {
        DataType::Bool => Arrow::Boolean,
        DataType::Uint8 => Arrow::UInt8,
        DataType::Uint16 => Arrow::UInt16,
        DataType::Uint32 => Arrow::UInt32,
        DataType::Uint64 => Arrow::UInt64,
        DataType::Int8 => Arrow::Int8,
        DataType::Int16 => Arrow::Int16,
        DataType::Int32 => Arrow::Int32,
        DataType::Int64 => Arrow::Int64,
        DataType::Fp16 | DataType::Bf16 | DataType::Fp32 => Arrow::Float32,
        DataType::Fp64 => Arrow::Float64,
        DataType::Bytes => Arrow::Utf8,
    }
}

/// Column `k` of an output with `width` values a row, over every input row: row `r` is
/// scored row `place[r]` of the concatenated `parts`, or null.
fn output_array(
    datatype: DataType,
    parts: &[&TensorData],
    width: usize,
    k: usize,
    place: &[Option<usize>],
) -> ArrayRef {
    // Values of scored row i, column k, across the parts of several calls.
    let mut offsets = Vec::with_capacity(parts.len());
    let mut total = 0;
    for p in parts {
        offsets.push(total);
        total += p.len() / width.max(1);
    }
    let locate = |i: usize| {
        let part = offsets.partition_point(|&o| o <= i) - 1;
        (parts[part], (i - offsets[part]) * width + k)
    };
    macro_rules! column {
        ($array:ty, $variant:ident, $conv:expr) => {
            Arc::new(
                place
                    .iter()
                    .map(|p| {
                        p.map(|i| match locate(i) {
                            (TensorData::$variant(d), at) => $conv(&d[at]),
                            _ => unreachable!("an output keeps its datatype"),
                        })
                    })
                    .collect::<$array>(),
            ) as ArrayRef
        };
    }
    match datatype {
        DataType::Bool => column!(BooleanArray, Bool, |v: &bool| *v),
        DataType::Uint8 => column!(UInt8Array, U8, |v: &u8| *v),
        DataType::Uint16 => column!(UInt16Array, U16, |v: &u16| *v),
        DataType::Uint32 => column!(UInt32Array, U32, |v: &u32| *v),
        DataType::Uint64 => column!(UInt64Array, U64, |v: &u64| *v),
        DataType::Int8 => column!(Int8Array, I8, |v: &i8| *v),
        DataType::Int16 => column!(Int16Array, I16, |v: &i16| *v),
        DataType::Int32 => column!(Int32Array, I32, |v: &i32| *v),
        DataType::Int64 => column!(Int64Array, I64, |v: &i64| *v),
        DataType::Fp16 => column!(Float32Array, F16, |v: &half::f16| v.to_f32()),
        DataType::Bf16 => column!(Float32Array, Bf16, |v: &half::bf16| v.to_f32()),
        DataType::Fp32 => column!(Float32Array, F32, |v: &f32| *v),
        DataType::Fp64 => column!(Float64Array, F64, |v: &f64| *v),
        DataType::Bytes => Arc::new(
            place
                .iter()
                .map(|p| {
                    p.map(|i| match locate(i) {
                        (TensorData::Bytes(d), at) => String::from_utf8_lossy(&d[at]).into_owned(),
                        _ => unreachable!("an output keeps its datatype"),
                    })
                })
                .collect::<StringArray>(),
        ),
    }
}
