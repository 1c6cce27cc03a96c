//! `SVMClassifier` and `SVMRegressor` (scikit-learn's SVC/SVR/LinearSVC through skl2onnx), as
//! the ONNX reference implementation defines them and libsvm computes them: kernels over the
//! support vectors, one-vs-one votes for the label, and Platt scaling with pairwise coupling
//! (libsvm's `multiclass_probability`) for probabilities. Computed in double precision, as
//! libsvm does, and returned as FP32.

use ferroserve_core::{Tensor, TensorData};

use super::post::{Labels, PostTransform};
use super::{Op, Output, matrix};
use crate::objective::argmax;
use crate::onnxml::attributes::Attributes;

/// The kernel and its parameters.
#[derive(Debug, Clone, Copy)]
enum Kernel {
    Linear,
    Poly { gamma: f64, coef0: f64, degree: i32 },
    Rbf { gamma: f64 },
    Sigmoid { gamma: f64, coef0: f64 },
}

impl Kernel {
    fn parse(a: Attributes<'_>) -> Result<Kernel, String> {
        let p = a.floats("kernel_params");
        let gamma = f64::from(p.first().copied().unwrap_or(0.0));
        let coef0 = f64::from(p.get(1).copied().unwrap_or(0.0));
        let degree = p.get(2).copied().unwrap_or(0.0) as i32;
        Ok(match a.string("kernel_type", "LINEAR").as_str() {
            "LINEAR" => Kernel::Linear,
            "POLY" => Kernel::Poly {
                gamma,
                coef0,
                degree,
            },
            "RBF" => Kernel::Rbf { gamma },
            "SIGMOID" => Kernel::Sigmoid { gamma, coef0 },
            other => return Err(format!("kernel_type {other} is not supported")),
        })
    }

    fn apply(self, x: &[f32], v: &[f64]) -> f64 {
        let dot = || x.iter().zip(v).map(|(&a, b)| f64::from(a) * b).sum::<f64>();
        match self {
            Kernel::Linear => dot(),
            Kernel::Poly {
                gamma,
                coef0,
                degree,
            } => (gamma * dot() + coef0).powi(degree),
            Kernel::Sigmoid { gamma, coef0 } => (gamma * dot() + coef0).tanh(),
            Kernel::Rbf { gamma } => {
                let d2: f64 = x
                    .iter()
                    .zip(v)
                    .map(|(&a, b)| (f64::from(a) - b).powi(2))
                    .sum();
                (-gamma * d2).exp()
            }
        }
    }
}

/// `SVMRegressor`.
#[derive(Debug)]
pub(crate) struct SvmRegressor {
    kernel: Kernel,
    /// `n_supports × features`; empty for a linear model.
    support_vectors: Vec<f64>,
    coefficients: Vec<f64>,
    rho: f64,
    one_class: bool,
}

impl SvmRegressor {
    pub(crate) fn new(a: Attributes<'_>) -> Result<SvmRegressor, String> {
        if PostTransform::parse(a)? != PostTransform::None {
            return Err("post_transform must be NONE".into());
        }
        let supports = a.int("n_supports", 0).max(0) as usize;
        let coefficients = a.reals("coefficients")?;
        let support_vectors = a.reals("support_vectors")?;
        if supports > 0
            && (coefficients.len() != supports || !support_vectors.len().is_multiple_of(supports))
        {
            return Err(format!(
                "{supports} support vectors but {} coefficients and {} vector values",
                coefficients.len(),
                support_vectors.len()
            ));
        }
        Ok(SvmRegressor {
            kernel: if supports > 0 {
                Kernel::parse(a)?
            } else {
                Kernel::Linear
            },
            support_vectors: if supports > 0 {
                support_vectors
            } else {
                Vec::new()
            },
            coefficients,
            rho: a.reals("rho")?.first().copied().unwrap_or(0.0),
            one_class: a.int("one_class", 0) != 0,
        })
    }
}

impl Op for SvmRegressor {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let x = matrix(inputs, 0)?;
        let mut y = Vec::with_capacity(x.rows);
        for row in x.data.chunks(x.cols.max(1)).take(x.rows) {
            let s = if self.support_vectors.is_empty() {
                if self.coefficients.len() != row.len() {
                    return Err(format!(
                        "{} coefficients for {} columns",
                        self.coefficients.len(),
                        row.len()
                    ));
                }
                Kernel::Linear.apply(row, &self.coefficients)
            } else {
                let width = self.support_vectors.len() / self.coefficients.len();
                if width != row.len() {
                    return Err(format!(
                        "support vectors have {width} features, the input {}",
                        row.len()
                    ));
                }
                self.support_vectors
                    .chunks(width)
                    .zip(&self.coefficients)
                    .map(|(sv, c)| c * self.kernel.apply(row, sv))
                    .sum()
            } + self.rho;
            y.push(if self.one_class {
                if s > 0.0 { 1.0 } else { -1.0 }
            } else {
                s as f32
            });
        }
        Ok(vec![(vec![x.rows, 1], TensorData::F32(y))])
    }
}

/// `SVMClassifier` in its libsvm (one-vs-one) form.
#[derive(Debug)]
pub(crate) struct SvmClassifier {
    kernel: Kernel,
    labels: Labels,
    /// `vectors × features`.
    support_vectors: Vec<f64>,
    vectors_per_class: Vec<usize>,
    /// `(classes - 1) × vectors` (libsvm's `dual_coef_`).
    coefficients: Vec<f64>,
    rho: Vec<f64>,
    prob_a: Vec<f64>,
    prob_b: Vec<f64>,
}

impl SvmClassifier {
    pub(crate) fn new(a: Attributes<'_>) -> Result<SvmClassifier, String> {
        let labels = Labels::parse(a)?;
        let classes = labels.len();
        let vectors_per_class: Vec<usize> = a
            .ints("vectors_per_class")
            .iter()
            .map(|&v| usize::try_from(v).map_err(|_| "vectors_per_class is negative".to_owned()))
            .collect::<Result<_, _>>()?;
        let vectors: usize = vectors_per_class.iter().sum();
        if vectors == 0 {
            return Err("linear SVMClassifier (no support vectors) is not supported".into());
        }
        if vectors_per_class.len() != classes || classes < 2 {
            return Err(format!(
                "vectors_per_class has {} entries for {classes} classes",
                vectors_per_class.len()
            ));
        }
        let support_vectors = a.reals("support_vectors")?;
        let coefficients = a.reals("coefficients")?;
        let rho = a.reals("rho")?;
        let pairs = classes * (classes - 1) / 2;
        if !support_vectors.len().is_multiple_of(vectors)
            || coefficients.len() != (classes - 1) * vectors
            || rho.len() != pairs
        {
            return Err(format!(
                "{vectors} support vectors and {classes} classes need (classes-1)×vectors coefficients and one rho per pair; got {} and {}",
                coefficients.len(),
                rho.len()
            ));
        }
        let prob_a = a.reals("prob_a")?;
        let prob_b = a.reals("prob_b")?;
        if !(prob_a.is_empty() || (prob_a.len() == pairs && prob_b.len() == pairs)) {
            return Err("prob_a and prob_b need one value per pair of classes".into());
        }
        if PostTransform::parse(a)? != PostTransform::None {
            return Err("post_transform must be NONE".into());
        }
        Ok(SvmClassifier {
            kernel: Kernel::parse(a)?,
            labels,
            support_vectors,
            vectors_per_class,
            coefficients,
            rho,
            prob_a,
            prob_b,
        })
    }
}

impl Op for SvmClassifier {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let x = matrix(inputs, 0)?;
        let vectors: usize = self.vectors_per_class.iter().sum();
        let width = self.support_vectors.len() / vectors;
        if x.cols != width {
            return Err(format!(
                "support vectors have {width} features, the input {}",
                x.cols
            ));
        }
        let classes = self.labels.len();
        let starts: Vec<usize> = self
            .vectors_per_class
            .iter()
            .scan(0, |at, &n| {
                let s = *at;
                *at += n;
                Some(s)
            })
            .collect();
        let with_proba = !self.prob_a.is_empty();
        let columns = if with_proba || classes > 2 {
            if with_proba {
                classes
            } else {
                classes * (classes - 1) / 2
            }
        } else {
            2
        };
        let mut labels = Vec::with_capacity(x.rows);
        let mut scores = Vec::with_capacity(x.rows * columns);
        let mut kernels = vec![0.0; vectors];
        for row in x.data.chunks(x.cols.max(1)).take(x.rows) {
            for (k, sv) in kernels.iter_mut().zip(self.support_vectors.chunks(width)) {
                *k = self.kernel.apply(row, sv);
            }
            let mut votes = vec![0usize; classes];
            let mut decisions = Vec::with_capacity(self.rho.len());
            let mut pair = 0;
            for i in 0..classes {
                for j in i + 1..classes {
                    let (si, ni) = (starts[i], self.vectors_per_class[i]);
                    let (sj, nj) = (starts[j], self.vectors_per_class[j]);
                    let coef = |r: usize, s: usize, n: usize| -> f64 {
                        (s..s + n)
                            .map(|v| self.coefficients[r * vectors + v] * kernels[v])
                            .sum()
                    };
                    let d = self.rho[pair] + coef(j - 1, si, ni) + coef(i, sj, nj);
                    votes[if d > 0.0 { i } else { j }] += 1;
                    decisions.push(d);
                    pair += 1;
                }
            }
            labels.push(argmax(&votes));
            if with_proba {
                let p = self.probabilities(&decisions, classes);
                scores.extend(p.iter().map(|&v| v as f32));
            } else if classes == 2 {
                scores.extend_from_slice(&[-decisions[0] as f32, decisions[0] as f32]);
            } else {
                scores.extend(decisions.iter().map(|&v| v as f32));
            }
        }
        Ok(vec![
            (vec![x.rows], self.labels.output(&labels)),
            (vec![x.rows, columns], TensorData::F32(scores)),
        ])
    }
}

impl SvmClassifier {
    /// Platt-scaled pairwise probabilities, coupled into one distribution (libsvm).
    #[allow(clippy::needless_range_loop)] // index loops mirror libsvm's matrix code
    fn probabilities(&self, decisions: &[f64], k: usize) -> Vec<f64> {
        let mut r = vec![vec![0.0; k]; k];
        let mut pair = 0;
        for i in 0..k {
            for j in i + 1..k {
                let f = decisions[pair] * self.prob_a[pair] + self.prob_b[pair];
                let p = if f >= 0.0 {
                    (-f).exp() / (1.0 + (-f).exp())
                } else {
                    1.0 / (1.0 + f.exp())
                };
                let p = p.clamp(1e-7, 1.0 - 1e-7);
                r[i][j] = p;
                r[j][i] = 1.0 - p;
                pair += 1;
            }
        }
        // Also for two classes: scikit-learn's libsvm couples them iteratively too (newer
        // libsvm releases take the pairwise value as is, which differs by up to 1e-4).
        multiclass_probability(k, &r)
    }
}

/// Method 2 of Wu, Lin and Weng (2004), as libsvm implements it.
#[allow(clippy::needless_range_loop)] // index loops mirror libsvm's matrix code
fn multiclass_probability(k: usize, r: &[Vec<f64>]) -> Vec<f64> {
    let max_iter = 100.max(k);
    let eps = 0.005 / k as f64;
    let mut q = vec![vec![0.0; k]; k];
    let mut p = vec![1.0 / k as f64; k];
    let mut qp = vec![0.0; k];
    for t in 0..k {
        for j in 0..t {
            q[t][t] += r[j][t] * r[j][t];
            q[t][j] = q[j][t];
        }
        for j in t + 1..k {
            q[t][t] += r[j][t] * r[j][t];
            q[t][j] = -r[j][t] * r[t][j];
        }
    }
    for _ in 0..max_iter {
        let mut pqp = 0.0;
        for t in 0..k {
            qp[t] = (0..k).map(|j| q[t][j] * p[j]).sum();
            pqp += p[t] * qp[t];
        }
        let max_error = (0..k).map(|t| (qp[t] - pqp).abs()).fold(0.0, f64::max);
        if max_error < eps {
            break;
        }
        for t in 0..k {
            let diff = (-qp[t] + pqp) / q[t][t];
            p[t] += diff;
            pqp = (pqp + diff * (diff * q[t][t] + 2.0 * qp[t])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[t][j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
    p
}
