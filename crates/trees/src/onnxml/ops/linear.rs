//! `LinearRegressor` and `LinearClassifier`: `x·Wᵀ + b`, summed in double precision (closer
//! to scikit-learn, which computes in float64, than onnxruntime's float) and returned as FP32.

use ferroserve_core::{Tensor, TensorData};

use super::post::{Labels, PostTransform, binary_scores};
use super::{Matrix, Op, Output, matrix};
use crate::objective::argmax;
use crate::onnxml::attributes::Attributes;

/// The weights shared by both operators: `rows × features` coefficients and one intercept per
/// row.
#[derive(Debug)]
struct Weights {
    coefficients: Vec<f64>,
    intercepts: Vec<f64>,
    rows: usize,
}

impl Weights {
    fn parse(a: Attributes<'_>, rows: usize) -> Result<Weights, String> {
        let coefficients: Vec<f64> = a.reals("coefficients")?;
        let mut intercepts: Vec<f64> = a.reals("intercepts")?;
        if rows == 0 || !coefficients.len().is_multiple_of(rows) || coefficients.is_empty() {
            return Err(format!(
                "{} coefficients do not divide into {rows} rows",
                coefficients.len()
            ));
        }
        if intercepts.is_empty() {
            intercepts = vec![0.0; rows];
        }
        if intercepts.len() != rows {
            return Err(format!("{} intercepts for {rows} rows", intercepts.len()));
        }
        Ok(Weights {
            coefficients,
            intercepts,
            rows,
        })
    }

    /// `x·Wᵀ + b`, `x.rows × self.rows`.
    fn apply(&self, x: &Matrix) -> Result<Vec<f64>, String> {
        let features = self.coefficients.len() / self.rows;
        if x.cols != features {
            return Err(format!(
                "input has {} columns but the model has {features} features",
                x.cols
            ));
        }
        let mut out = Vec::with_capacity(x.rows * self.rows);
        for row in x.data.chunks(x.cols.max(1)).take(x.rows) {
            for (w, b) in self.coefficients.chunks(features).zip(&self.intercepts) {
                let dot: f64 = w.iter().zip(row).map(|(w, &v)| w * f64::from(v)).sum();
                out.push(dot + b);
            }
        }
        Ok(out)
    }
}

/// `LinearRegressor`.
#[derive(Debug)]
pub(crate) struct LinearRegressor {
    weights: Weights,
    transform: PostTransform,
}

impl LinearRegressor {
    pub(crate) fn new(a: Attributes<'_>) -> Result<LinearRegressor, String> {
        let targets = a.int("targets", 1).max(1) as usize;
        Ok(LinearRegressor {
            weights: Weights::parse(a, targets)?,
            transform: PostTransform::parse(a)?,
        })
    }
}

impl Op for LinearRegressor {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let x = matrix(inputs, 0)?;
        let mut y: Vec<f32> = self.weights.apply(&x)?.iter().map(|&v| v as f32).collect();
        if self.transform != PostTransform::None {
            y.chunks_mut(self.weights.rows)
                .for_each(|row| self.transform.apply(row));
        }
        Ok(vec![(vec![x.rows, self.weights.rows], TensorData::F32(y))])
    }
}

/// `LinearClassifier`: outputs the label and the scores.
#[derive(Debug)]
pub(crate) struct LinearClassifier {
    weights: Weights,
    labels: Labels,
    transform: PostTransform,
}

impl LinearClassifier {
    pub(crate) fn new(a: Attributes<'_>) -> Result<LinearClassifier, String> {
        let labels = Labels::parse(a)?;
        let coefficients = a.reals("coefficients")?.len();
        let intercepts = a.reals("intercepts")?.len();
        // One row per class, or one row for a binary classifier.
        let rows = if intercepts > 0 {
            intercepts
        } else {
            labels.len()
        };
        if coefficients == 0 {
            return Err("coefficients is empty".into());
        }
        let weights = Weights::parse(a, rows)?;
        if !(rows == labels.len() || (rows == 1 && labels.len() == 2)) {
            return Err(format!("{rows} score rows for {} classes", labels.len()));
        }
        Ok(LinearClassifier {
            weights,
            labels,
            transform: PostTransform::parse(a)?,
        })
    }
}

impl Op for LinearClassifier {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let x = matrix(inputs, 0)?;
        let raw = self.weights.apply(&x)?;
        let classes = self.labels.len();
        let mut labels = Vec::with_capacity(x.rows);
        let mut scores = Vec::with_capacity(x.rows * classes);
        if self.weights.rows == 1 {
            for &s in &raw {
                let (two, class) = binary_scores(s as f32, self.transform);
                labels.push(class);
                scores.extend_from_slice(&two);
            }
        } else {
            for row in raw.chunks(classes) {
                let mut row: Vec<f32> = row.iter().map(|&v| v as f32).collect();
                labels.push(argmax(&row));
                self.transform.apply(&mut row);
                scores.extend_from_slice(&row);
            }
        }
        Ok(vec![
            (vec![x.rows], self.labels.output(&labels)),
            (vec![x.rows, classes], TensorData::F32(scores)),
        ])
    }
}
