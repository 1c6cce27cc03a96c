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
//!
//! This module owns the scorer: binding a model to an input schema and running batches
//! through it. [`gather`](mod@gather) turns Arrow columns into input tensors, [`emit`]
//! output tensors into Arrow arrays, and [`isolate`] keeps the reasons rows failed.

mod emit;
mod gather;
mod isolate;

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType as Arrow, Field, Schema, SchemaRef};
use ferroserve_core::{DataType, Model, Tensor, TensorData};

use self::emit::{arrow_type, output_array};
use self::gather::{check_column_type, gather, slice_rows, take_rows};
use self::isolate::RowErrors;
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
