//! How a model's summed leaf values (margins) become what the training library's `predict`
//! returns, and which outputs a model has.

/// The transformation after the trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Margins are the predictions (squared error, ranking).
    Identity,
    /// `1 / (1 + e^-m)`: a regression onto [0, 1].
    Sigmoid,
    /// `e^m` (Poisson, Gamma, Tweedie counts).
    Exp,
    /// Binary classification: probability of class 1 is the sigmoid of the one margin.
    BinaryLogistic,
    /// Multi-class: softmax over one margin per class.
    Softmax,
}

impl Objective {
    /// Whether the model is a classifier (outputs `label` and `probabilities`).
    pub fn is_classifier(self) -> bool {
        matches!(self, Objective::BinaryLogistic | Objective::Softmax)
    }

    /// The margin equivalent of a base score given in prediction space (XGBoost's
    /// `ProbToMargin`).
    pub fn prob_to_margin(self, base_score: f32) -> f32 {
        match self {
            Objective::Sigmoid | Objective::BinaryLogistic => -(1.0 / base_score - 1.0).ln(),
            Objective::Exp => base_score.ln(),
            Objective::Identity | Objective::Softmax => base_score,
        }
    }

    /// The prediction for one value of a regression objective.
    pub fn transform(self, margin: f32) -> f32 {
        match self {
            Objective::Sigmoid | Objective::BinaryLogistic => sigmoid(margin),
            Objective::Exp => margin.exp(),
            Objective::Identity | Objective::Softmax => margin,
        }
    }
}

/// The logistic function, computed as XGBoost does in single precision.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Replaces `margins` (one row of class margins) by their softmax.
pub fn softmax(margins: &mut [f32]) {
    let max = margins.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
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
        for o in [Objective::Sigmoid, Objective::Exp, Objective::Identity] {
            let m = o.prob_to_margin(0.3);
            assert!((o.transform(m) - 0.3).abs() < 1e-6, "{o:?}");
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut m = [1.0, 2.0, 3.0];
        softmax(&mut m);
        assert!((m.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(m[2] > m[1] && m[1] > m[0]);
    }
}
