//! [`CompositeSpec`]: the `model.toml` of a composite (it has a `kind`: split, shadow, bandit,
//! ensemble) as plain data, with the values serde cannot check checked: weights, fractions,
//! counts, target syntax. The targets themselves are resolved by the server.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ensemble::{CombineSpec, EnsembleSpec, StepSpec};
use super::error::ConfigError;
use super::target::split_target;

/// `kind` and the keys of one kind of composite, as written in `model.toml`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum CompositeSpec {
    /// `kind = "split"`.
    Split {
        /// Target (`model`, `model@3`, `model@stable`) to its weight.
        variants: BTreeMap<String, f64>,
        /// The request parameter (or, failing that, header) whose value keeps a caller on
        /// one variant.
        sticky_by: Option<String>,
    },
    /// `kind = "shadow"`.
    Shadow {
        /// The target that answers.
        primary: String,
        /// Targets that get a copy of the request; their answers are only compared.
        shadows: Vec<String>,
        /// Share of requests mirrored, 0 to 1 (default 1).
        fraction: Option<f64>,
        /// Relative tolerance when comparing floating-point outputs (default 1e-3).
        rtol: Option<f64>,
        /// Absolute tolerance when comparing floating-point outputs (default 1e-5).
        atol: Option<f64>,
        /// Mirrored requests running at once at most (default 1); more are skipped.
        max_in_flight: Option<usize>,
    },
    /// `kind = "bandit"`.
    Bandit {
        /// The targets to choose among.
        variants: Vec<String>,
        /// `"thompson"` (default) or `"exp3"`.
        policy: Option<PolicyKind>,
        /// Exp3's exploration rate, 0 to 1 (default 0.1).
        gamma: Option<f64>,
        /// The file the state is kept in: a plain file name, placed in the server's state
        /// directory under the model's name (default `bandit-state.json`), never in the model
        /// repository.
        state_file: Option<String>,
    },
    /// `kind = "ensemble"`.
    Ensemble {
        /// The ensemble tensors returned, in order.
        outputs: Vec<String>,
        /// The model steps (`[[step]]`).
        #[serde(default)]
        step: Vec<StepSpec>,
        /// The combiners (`[[combine]]`).
        #[serde(default)]
        combine: Vec<CombineSpec>,
    },
}

/// A bandit's `policy` in `model.toml` (also written to its state file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// Beta-Bernoulli Thompson sampling.
    #[default]
    Thompson,
    /// Exp3.
    Exp3,
}

impl CompositeSpec {
    /// The composite of a parsed `model.toml` that has a `kind`, read from `path` (named in
    /// errors), checked.
    pub fn from_table(table: toml::Table, path: &Path) -> Result<CompositeSpec, ConfigError> {
        let error = |message: String| ConfigError::Composite {
            path: path.to_owned(),
            message,
        };
        let spec: CompositeSpec = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| error(e.message().to_owned()))?;
        spec.check().map_err(error)?;
        Ok(spec)
    }

    /// The kind's name (`"split"`).
    pub fn kind(&self) -> &'static str {
        match self {
            CompositeSpec::Split { .. } => "split",
            CompositeSpec::Shadow { .. } => "shadow",
            CompositeSpec::Bandit { .. } => "bandit",
            CompositeSpec::Ensemble { .. } => "ensemble",
        }
    }

    /// The platform name metadata and config report: Triton's `ensemble` for ensembles,
    /// `ferroserve_<kind>` for the kinds Triton has no name for.
    pub fn platform(&self) -> &'static str {
        match self {
            CompositeSpec::Split { .. } => "ferroserve_split",
            CompositeSpec::Shadow { .. } => "ferroserve_shadow",
            CompositeSpec::Bandit { .. } => "ferroserve_bandit",
            CompositeSpec::Ensemble { .. } => "ensemble",
        }
    }

    /// The ensemble's parts, if this is one.
    pub fn ensemble(&self) -> Option<EnsembleSpec> {
        match self {
            CompositeSpec::Ensemble {
                outputs,
                step,
                combine,
            } => Some(EnsembleSpec {
                outputs: outputs.clone(),
                step: step.clone(),
                combine: combine.clone(),
            }),
            _ => None,
        }
    }

    /// Every target named, the one whose signature the composite serves first.
    pub fn targets(&self) -> Vec<&str> {
        match self {
            CompositeSpec::Split { variants, .. } => variants.keys().map(String::as_str).collect(),
            CompositeSpec::Shadow {
                primary, shadows, ..
            } => std::iter::once(primary.as_str())
                .chain(shadows.iter().map(String::as_str))
                .collect(),
            CompositeSpec::Bandit { variants, .. } => variants.iter().map(String::as_str).collect(),
            CompositeSpec::Ensemble { step, .. } => step.iter().map(|s| s.model.as_str()).collect(),
        }
    }

    /// Checks the values serde cannot: weights, fractions, counts, target syntax.
    fn check(&self) -> Result<(), String> {
        let in_unit = |key: &str, v: Option<f64>| match v {
            Some(v) if !(0.0..=1.0).contains(&v) => {
                Err(format!("{key} = {v}: expected a number from 0 to 1"))
            }
            _ => Ok(()),
        };
        match self {
            CompositeSpec::Split { variants, .. } => {
                if variants.is_empty() {
                    return Err("variants: a split needs at least one variant".into());
                }
                if let Some((t, w)) = variants.iter().find(|(_, w)| !w.is_finite() || **w < 0.0) {
                    return Err(format!(
                        "variants.\"{t}\" = {w}: a weight must be 0 or more"
                    ));
                }
                if variants.values().sum::<f64>() <= 0.0 {
                    return Err("variants: the weights add up to 0".into());
                }
            }
            CompositeSpec::Shadow {
                shadows,
                fraction,
                rtol,
                atol,
                max_in_flight,
                ..
            } => {
                if *max_in_flight == Some(0) {
                    return Err("max_in_flight = 0: expected 1 or more".into());
                }
                if shadows.is_empty() {
                    return Err("shadows: name at least one shadow target".into());
                }
                in_unit("fraction", *fraction)?;
                for (key, v) in [("rtol", rtol), ("atol", atol)] {
                    if let Some(v) = v
                        && !(v.is_finite() && *v >= 0.0)
                    {
                        return Err(format!("{key} = {v}: expected a number of 0 or more"));
                    }
                }
            }
            CompositeSpec::Bandit {
                variants, gamma, ..
            } => {
                if variants.len() < 2 {
                    return Err("variants: a bandit needs at least two variants".into());
                }
                in_unit("gamma", *gamma)?;
            }
            // Checked against the steps' signatures when it loads.
            CompositeSpec::Ensemble { .. } => {}
        }
        for target in self.targets() {
            split_target(target).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
