//! Arrow columns as plain values: numbers (`f64`, NaN for a null) for numeric and boolean
//! columns, strings (`None` for a null) for text, whatever the Arrow type they were read as.

use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::DataType;

/// A column's values, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Numbers; NaN for a null or a NaN.
    Numbers(Vec<f64>),
    /// Text; `None` for a null.
    Strings(Vec<Option<String>>),
}

/// Whether an Arrow type holds integers (whose few distinct values make a category).
pub fn is_integer(datatype: &DataType) -> bool {
    datatype.is_integer() || matches!(datatype, DataType::Boolean)
}

/// The values of `array`: numbers when Arrow can cast it to `Float64`, else strings; `None`
/// for a type neither fits (lists, structs).
pub fn values(array: &ArrayRef) -> Option<Values> {
    match array.data_type() {
        t if t.is_numeric() || matches!(t, DataType::Boolean | DataType::Null) => {
            let cast = arrow_cast::cast(array, &DataType::Float64).ok()?;
            let floats = cast.as_any().downcast_ref::<arrow_array::Float64Array>()?;
            Some(Values::Numbers(
                (0..floats.len())
                    .map(|i| {
                        if floats.is_null(i) {
                            f64::NAN
                        } else {
                            floats.value(i)
                        }
                    })
                    .collect(),
            ))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            let cast = arrow_cast::cast(array, &DataType::Utf8).ok()?;
            let strings = cast.as_any().downcast_ref::<StringArray>()?;
            Some(Values::Strings(
                (0..strings.len())
                    .map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_owned()))
                    .collect(),
            ))
        }
        _ => None,
    }
}
