//! Composite models: repository entries whose `model.toml` has a `kind` and no model file of
//! their own. Each routes a request to other models of the repository, resolved by name at
//! request time (so their hot swaps apply at once), and is addressed, described and counted
//! like any model.
//!
//! - [`split`]: A/B traffic by weights, sticky by a request parameter or header.
//! - [`shadow`]: answers from the primary; mirrors a fraction to shadows in the background and
//!   counts how often they agree.
//! - [`ensemble`]: a DAG of models and built-in combiners over named tensors.
//! - [`bandit`]: picks a variant online (Thompson sampling or Exp3) from rewards sent to
//!   `POST /v2/models/{m}/feedback`; its state is kept in a small file.
//!
//! A composite serves as version 1 of its name. Its targets must be plain models (no
//! composite of composites, so routing can never loop).

pub mod bandit;
pub mod ensemble;
pub mod shadow;
pub mod split;
mod target;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

pub use target::Target;

use crate::repository::config::CONFIG_FILE;

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
        policy: Option<bandit::PolicyKind>,
        /// Exp3's exploration rate, 0 to 1 (default 0.1).
        gamma: Option<f64>,
        /// Where the state is kept, relative to the model directory (default
        /// `.bandit-state.json`: hidden, so writing it never looks like a model change).
        state_file: Option<String>,
    },
    /// `kind = "ensemble"`.
    Ensemble {
        /// The ensemble tensors returned, in order.
        outputs: Vec<String>,
        /// The model steps (`[[step]]`).
        #[serde(default)]
        step: Vec<ensemble::StepSpec>,
        /// The combiners (`[[combine]]`).
        #[serde(default)]
        combine: Vec<ensemble::CombineSpec>,
    },
}

impl CompositeSpec {
    /// Reads the composite spec of `model_dir`, if its `model.toml` names a `kind`.
    pub fn read(model_dir: &Path) -> Result<Option<CompositeSpec>, String> {
        let path = model_dir.join(CONFIG_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let table: toml::Table = match text.parse() {
            Ok(table) => table,
            // Not ours to report: the plain model config reader names the error.
            Err(_) => return Ok(None),
        };
        if !table.contains_key("kind") {
            return Ok(None);
        }
        let spec: CompositeSpec = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("{}: {}", path.display(), e.message()))?;
        spec.check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Some(spec))
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
    pub fn ensemble(&self) -> Option<ensemble::EnsembleSpec> {
        match self {
            CompositeSpec::Ensemble {
                outputs,
                step,
                combine,
            } => Some(ensemble::EnsembleSpec {
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

    /// Checks the values serde cannot: weights, fractions, counts.
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
            Target::parse(target)?;
        }
        Ok(())
    }
}

/// A composite, built from its spec.
#[derive(Debug)]
pub enum Composite {
    /// A weighted split.
    Split(split::Split),
    /// A primary with shadows.
    Shadow(shadow::Shadow),
    /// A bandit.
    Bandit(std::sync::Arc<bandit::Bandit>),
    /// An ensemble.
    Ensemble(ensemble::Ensemble),
}

impl Composite {
    /// Builds the composite `spec` describes; `model_dir` is where a bandit keeps its state.
    pub fn build(spec: &CompositeSpec, model_dir: &Path) -> Result<Composite, String> {
        let parse = |t: &str| Target::parse(t);
        Ok(match spec {
            CompositeSpec::Split {
                variants,
                sticky_by,
            } => Composite::Split(split::Split::new(
                variants
                    .iter()
                    .map(|(t, w)| Ok((parse(t)?, *w)))
                    .collect::<Result<_, String>>()?,
                sticky_by.clone(),
            )),
            CompositeSpec::Shadow {
                primary,
                shadows,
                fraction,
                rtol,
                atol,
                max_in_flight,
            } => Composite::Shadow(shadow::Shadow::new(
                parse(primary)?,
                shadows.iter().map(|t| parse(t)).collect::<Result<_, _>>()?,
                fraction.unwrap_or(1.0),
                (rtol.unwrap_or(1e-3), atol.unwrap_or(1e-5)),
                max_in_flight.unwrap_or(1),
            )),
            CompositeSpec::Bandit {
                variants,
                policy,
                gamma,
                state_file,
            } => Composite::Bandit(bandit::Bandit::new(
                variants
                    .iter()
                    .map(|t| parse(t))
                    .collect::<Result<_, _>>()?,
                policy.unwrap_or_default(),
                gamma.unwrap_or(0.1),
                model_dir.join(state_file.as_deref().unwrap_or(".bandit-state.json")),
            )),
            CompositeSpec::Ensemble { .. } => {
                return Err("an ensemble is planned against its steps' signatures".into());
            }
        })
    }

    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Composite::Split(_) => "split",
            Composite::Shadow(_) => "shadow",
            Composite::Bandit(_) => "bandit",
            Composite::Ensemble(_) => "ensemble",
        }
    }

    /// What it routes and what it saw, for the statistics.
    pub fn describe(&self) -> Value {
        match self {
            Composite::Split(s) => s.describe(),
            Composite::Shadow(s) => s.describe(),
            Composite::Bandit(b) => b.describe(),
            Composite::Ensemble(e) => serde_json::json!({
                "kind": "ensemble",
                "steps": e.steps.iter().map(|(t, s)| serde_json::json!({
                    "model": t.to_string(), "inputs": s.inputs, "outputs": s.outputs,
                })).collect::<Vec<_>>(),
                "combine": e.combines.iter().map(|c| serde_json::json!({
                    "op": format!("{:?}", c.op).to_lowercase(), "inputs": c.inputs, "output": c.output,
                })).collect::<Vec<_>>(),
            }),
        }
    }
}
