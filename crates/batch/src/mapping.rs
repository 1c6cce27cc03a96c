//! Which columns of a file feed which input of a model.
//!
//! - By name: every input is named like a column (one column per input).
//! - By list: a model with one `[N, F]` input takes `F` columns, those of `--columns` in that
//!   order, else every column neither ignored nor kept, in file order.
//! - By input: `--map input=c1,c2` names the columns of each input of a many-input model;
//!   inputs not mapped fall back to a column of their own name.

use arrow_schema::Schema;
use ferroserve_core::{Signature, TensorSpec};

use crate::BatchError;

/// How the user chose the feature columns.
#[derive(Clone, Debug, Default)]
pub struct ColumnMapping {
    /// The feature columns of a one-input model, in the order of its last dimension.
    pub columns: Option<Vec<String>>,
    /// The columns of named inputs, for models with several.
    pub inputs: Vec<(String, Vec<String>)>,
    /// Columns that are not features (a label, an id).
    pub ignore: Vec<String>,
}

/// The file columns that make one model input.
#[derive(Clone, Debug)]
pub struct InputColumns {
    /// The input.
    pub spec: TensorSpec,
    /// Indices into the file's schema, one per feature, in the order of the input's last
    /// dimension.
    pub columns: Vec<usize>,
}

impl InputColumns {
    /// Features per row (the size of the last dimension; 1 for a `[N]` input).
    pub fn width(&self) -> usize {
        self.columns.len()
    }
}

impl ColumnMapping {
    /// Maps the columns of `schema` (read from `source`, named in errors) onto the inputs of
    /// `signature`.
    pub fn plan(
        &self,
        signature: &Signature,
        schema: &Schema,
        source: &str,
    ) -> Result<Vec<InputColumns>, BatchError> {
        let index_of = |name: &str| {
            schema.index_of(name).map_err(|_| {
                BatchError::Columns(format!(
                    "no column '{name}' in {source} (columns: {})",
                    column_names(schema)
                ))
            })
        };
        if let Some((name, _)) = self
            .inputs
            .iter()
            .find(|(name, _)| signature.inputs.iter().all(|s| &s.name != name))
        {
            return Err(BatchError::Columns(format!(
                "--map {name}=...: the model has no input '{name}' (inputs: {})",
                signature.input_names().join(", ")
            )));
        }
        let by_name = signature.inputs.iter().all(|s| {
            self.inputs.iter().any(|(n, _)| n == &s.name) || schema.index_of(&s.name).is_ok()
        });
        let plan = if by_name && self.columns.is_none() {
            signature
                .inputs
                .iter()
                .map(|spec| {
                    let columns = match self.inputs.iter().find(|(n, _)| n == &spec.name) {
                        Some((_, names)) => names
                            .iter()
                            .map(|n| index_of(n))
                            .collect::<Result<_, _>>()?,
                        None => vec![index_of(&spec.name)?],
                    };
                    Ok(InputColumns {
                        spec: spec.clone(),
                        columns,
                    })
                })
                .collect::<Result<Vec<_>, BatchError>>()?
        } else {
            let [spec] = signature.inputs.as_slice() else {
                return Err(BatchError::Columns(format!(
                    "the model has {} inputs ({}); name the file's columns after them, or map \
                     them with --map INPUT=COLUMN,...",
                    signature.inputs.len(),
                    signature.input_names().join(", ")
                )));
            };
            let columns: Vec<usize> = match &self.columns {
                Some(names) => names
                    .iter()
                    .map(|n| index_of(n))
                    .collect::<Result<_, _>>()?,
                None => (0..schema.fields().len())
                    .filter(|&i| !self.ignore.iter().any(|n| n == schema.field(i).name()))
                    .collect(),
            };
            vec![InputColumns {
                spec: spec.clone(),
                columns,
            }]
        };
        for input in &plan {
            check_width(input, schema)?;
        }
        Ok(plan)
    }
}

/// Features per row an input takes: the product of its dimensions after the batch one
/// (`[N, 4]` 4, `[N, 1, 8, 8]` 64, `[N]` 1), or `None` when one of them is dynamic.
pub fn features_per_row(spec: &TensorSpec) -> Option<usize> {
    spec.shape
        .iter()
        .skip(1)
        .try_fold(1usize, |n, &d| (d >= 0).then(|| n * d as usize))
}

/// Checks that an input gets as many columns as its dimensions after the batch one hold.
fn check_width(input: &InputColumns, schema: &Schema) -> Result<(), BatchError> {
    let spec = &input.spec;
    let chosen = || {
        input
            .columns
            .iter()
            .map(|&c| schema.field(c).name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if input.columns.is_empty() {
        return Err(BatchError::Columns(format!(
            "input '{}': no columns chosen",
            spec.name
        )));
    }
    match features_per_row(spec) {
        Some(width) if width != input.columns.len() => Err(BatchError::Columns(format!(
            "input '{}' takes {width} features per row ({:?}) but {} columns were chosen ({}); \
             pick them with --columns or leave some out with --ignore",
            spec.name,
            spec.shape,
            input.columns.len(),
            chosen()
        ))),
        // A dynamic feature dimension takes any number of columns when it is the only one.
        None if spec.shape.len() != 2 => Err(BatchError::Columns(format!(
            "input '{}' ({:?}) has dynamic dimensions after the batch one; batch scoring fills \
             [N, F] inputs from F columns",
            spec.name, spec.shape
        ))),
        _ => Ok(()),
    }
}

/// The schema's column names, for error messages.
pub fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType as Arrow, Field};
    use ferroserve_core::DataType;

    fn schema(names: &[&str]) -> Schema {
        Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, Arrow::Float64, true))
                .collect::<Vec<_>>(),
        )
    }

    fn one_input(width: i64) -> Signature {
        Signature {
            inputs: vec![TensorSpec::new("x", DataType::Fp32, vec![-1, width])],
            outputs: vec![TensorSpec::new("y", DataType::Fp32, vec![-1])],
        }
    }

    #[test]
    fn gathers_the_columns_not_ignored_in_file_order() {
        let s = schema(&["id", "a", "b", "c"]);
        let m = ColumnMapping {
            ignore: vec!["id".into()],
            ..ColumnMapping::default()
        };
        let plan = m.plan(&one_input(3), &s, "f.csv").unwrap();
        assert_eq!(plan[0].columns, vec![1, 2, 3]);
    }

    #[test]
    fn a_wrong_count_names_the_input_and_the_columns() {
        let s = schema(&["a", "b"]);
        let err = ColumnMapping::default()
            .plan(&one_input(3), &s, "f.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("input 'x' takes 3 features"), "{err}");
        assert!(err.contains("(a, b)"), "{err}");
    }

    #[test]
    fn maps_named_inputs_and_falls_back_to_same_named_columns() {
        let sig = Signature {
            inputs: vec![
                TensorSpec::new("num", DataType::Fp32, vec![-1, 2]),
                TensorSpec::new("cat", DataType::Bytes, vec![-1, 1]),
            ],
            outputs: vec![],
        };
        let s = schema(&["cat", "p", "q"]);
        let m = ColumnMapping {
            inputs: vec![("num".into(), vec!["q".into(), "p".into()])],
            ..ColumnMapping::default()
        };
        let plan = m.plan(&sig, &s, "f").unwrap();
        assert_eq!(plan[0].columns, vec![2, 1]);
        assert_eq!(plan[1].columns, vec![0]);
        let bad = ColumnMapping {
            inputs: vec![("nope".into(), vec!["p".into()])],
            ..ColumnMapping::default()
        };
        let err = bad.plan(&sig, &s, "f").unwrap_err().to_string();
        assert!(err.contains("no input 'nope'"), "{err}");
    }
}
