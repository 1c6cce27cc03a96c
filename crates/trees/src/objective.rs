//! How a model's summed leaf values (margins) become what the training library's `predict`
//! returns, and which outputs a model has.

use crate::forest::Margin;

/// The transformation after the trees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Objective {
    /// Margins are the predictions (squared error, ranking, quantile, ...).
    Identity,
    /// `1 / (1 + e^(-scale·m))`: a regression onto [0, 1] (XGBoost `reg:logistic`, LightGBM
    /// `cross_entropy`).
    Sigmoid {
        /// LightGBM's `sigmoid` parameter; 1 for XGBoost.
        scale: f64,
    },
    /// `e^m` (Poisson, Gamma, Tweedie).
    Exp,
    /// `ln(1 + e^m)` (LightGBM `cross_entropy_lambda`).
    Softplus,
    /// `sign(m)·m²` (LightGBM `regression` trained with `reg_sqrt`).
    SignedSquare,
    /// Binary classification: the probability of class 1 is the sigmoid of the one margin.
    BinaryLogistic {
        /// LightGBM's `sigmoid` parameter; 1 for XGBoost.
        scale: f64,
    },
    /// Multi-class: softmax over one margin per class.
    Softmax,
    /// Multi-class one-vs-rest (LightGBM `multiclassova`): an independent sigmoid per class.
    OneVsRest {
        /// LightGBM's `sigmoid` parameter.
        scale: f64,
    },
}

impl Objective {
    /// Whether the model is a classifier (outputs `label` and `probabilities`).
    pub fn is_classifier(self) -> bool {
        matches!(
            self,
            Objective::BinaryLogistic { .. } | Objective::Softmax | Objective::OneVsRest { .. }
        )
    }

    /// The number of classes of a classifier whose trees have `groups` output groups.
    pub fn classes(self, groups: usize) -> usize {
        match self {
            Objective::BinaryLogistic { .. } => 2,
            _ => groups,
        }
    }

    /// The margin equivalent of a base score given in prediction space (XGBoost's
    /// `ProbToMargin`).
    pub fn prob_to_margin(self, base_score: f32) -> f32 {
        match self {
            Objective::Sigmoid { .. } | Objective::BinaryLogistic { .. } => {
                -(1.0 / base_score - 1.0).ln()
            }
            Objective::Exp => base_score.ln(),
            _ => base_score,
        }
    }

    /// The prediction for one margin of a non-classifier, in the margin's precision.
    pub fn transform<M: Real>(self, m: M) -> M {
        match self {
            Objective::Sigmoid { scale } => sigmoid(m, scale),
            Objective::Exp => m.exp(),
            Objective::Softplus => (M::from_f64(1.0) + m.exp()).ln(),
            Objective::SignedSquare => {
                if m < M::default() {
                    M::default() - m * m
                } else {
                    m * m
                }
            }
            _ => m,
        }
    }
}

/// Arithmetic the objectives need, in the model's precision.
pub trait Real:
    Margin
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::DivAssign
    + std::ops::AddAssign
{
    /// `e^self`.
    fn exp(self) -> Self;
    /// `ln(self)`.
    fn ln(self) -> Self;
}

impl Real for f32 {
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
}

impl Real for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
}

/// The logistic function `1 / (1 + e^(-scale·x))`, computed in `M` as the libraries do (XGBoost
/// in single precision, LightGBM in double). A scale of 1 is exact in either.
pub fn sigmoid<M: Real>(x: M, scale: f64) -> M {
    let one = M::from_f64(1.0);
    let scaled = if scale == 1.0 {
        x
    } else {
        M::from_f64(scale) * x
    };
    one / (one + (M::default() - scaled).exp())
}

/// The index of the first largest value, as numpy's `argmax` (how every classifier here
/// turns scores, probabilities or votes into a label).
pub fn argmax<T: PartialOrd>(row: &[T]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}

/// Replaces `margins` (one row of class margins) by their softmax.
pub fn softmax<M: Real>(margins: &mut [M]) {
    let max = margins
        .iter()
        .copied()
        .fold(margins[0], |a, b| if b > a { b } else { a });
    let mut sum = M::default();
    for m in margins.iter_mut() {
        *m = (*m - max).exp();
        sum += *m;
    }
    for m in margins.iter_mut() {
        *m /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_score_round_trips_through_the_link() {
        for o in [
            Objective::Sigmoid { scale: 1.0 },
            Objective::Exp,
            Objective::Identity,
        ] {
            let m = o.prob_to_margin(0.3);
            assert!((o.transform(m) - 0.3f32).abs() < 1e-6, "{o:?}");
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut m = [1.0f64, 2.0, 3.0];
        softmax(&mut m);
        assert!((m.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(m[2] > m[1] && m[1] > m[0]);
    }

    #[test]
    fn signed_square_and_softplus() {
        assert_eq!(Objective::SignedSquare.transform(-3.0f64), -9.0);
        assert_eq!(Objective::SignedSquare.transform(2.0f64), 4.0);
        let s: f64 = Objective::Softplus.transform(0.0);
        assert!((s - 2f64.ln()).abs() < 1e-15);
        assert!((sigmoid(1.0f64, 2.0) - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
    }
}
