//! Arrow columns → input tensors: each input's columns converted and laid out row-major,
//! the rows that cannot be converted recorded as failed, and the row subsets of the
//! gathered values that each model call takes.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType as Arrow, Field};
use ferroserve_core::{ByteStrings, DataType, TensorData};

use super::isolate::RowErrors;
use crate::BatchError;
use crate::mapping::InputColumns;

/// Refuses, before any row is read, a column no row of which could feed `datatype`.
pub(super) fn check_column_type(field: &Field, datatype: DataType) -> Result<(), BatchError> {
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

/// Whether Arrow type `t` holds text.
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
pub(super) fn gather(p: &InputColumns, batch: &RecordBatch, errors: &mut RowErrors) -> TensorData {
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
pub(super) fn take_rows(data: &TensorData, width: usize, rows: &[usize]) -> TensorData {
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
pub(super) fn slice_rows(data: &TensorData, width: usize, start: usize, end: usize) -> TensorData {
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
