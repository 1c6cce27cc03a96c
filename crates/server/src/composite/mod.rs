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

pub(crate) mod bandit;
pub(crate) mod ensemble;
pub(crate) mod feedback_id;
pub(crate) mod shadow;
pub(crate) mod shared_state;
pub(crate) mod split;
mod target;

use std::sync::Arc;

use serde_json::Value;

pub(crate) use ferroserve_loader::config::CompositeSpec;
pub(crate) use target::Target;

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
    /// Builds the composite `spec` describes; `store` is where a bandit keeps its state,
    /// `feedback_key` what signs its feedback ids.
    pub fn build(
        spec: &CompositeSpec,
        store: bandit::BanditStore,
        feedback_key: &Arc<feedback_id::FeedbackKey>,
    ) -> Result<Composite, String> {
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
                state_file: _,
            } => Composite::Bandit(bandit::Bandit::new(
                variants
                    .iter()
                    .map(|t| parse(t))
                    .collect::<Result<_, _>>()?,
                policy.unwrap_or_default(),
                gamma.unwrap_or(0.1),
                store,
                Arc::clone(feedback_key),
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
