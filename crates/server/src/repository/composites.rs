//! Building a composite (ensemble, split, shadow, bandit) as the repository serves it: its
//! targets resolved to ready plain models that take the same inputs, served as version 1
//! with the first target's signature.

use std::path::Path;
use std::sync::Arc;

use ferroserve_core::Signature;
use ferroserve_loader::config::ModelToml;

use super::config::{self, ModelConfig, ModelSettings};
use super::fingerprint::ModelFingerprint;
use super::{Executor, LoadedVersion, Repository};
use crate::composite::bandit::BanditStore;
use crate::composite::ensemble::Ensemble;
use crate::composite::{Composite, CompositeSpec, Target};
use crate::stats::VersionStats;

impl Repository {
    /// Where the bandit `name` keeps its state: the shared store (key
    /// `ferroserve:bandit:<name>:<policy>`) when there is one, else
    /// `<state dir>/<name>/<state_file>` (default `bandit-state.json`), never in the model
    /// repository; memory without a state directory, or for another kind. `state_file` must
    /// be a plain file name, so that a `model.toml` cannot make the server write anywhere else.
    fn bandit_store(&self, name: &str, spec: &CompositeSpec) -> Result<BanditStore, String> {
        let CompositeSpec::Bandit {
            state_file, policy, ..
        } = spec
        else {
            return Ok(BanditStore::Memory);
        };
        let file = state_file.as_deref().unwrap_or("bandit-state.json");
        let plain = !file.is_empty()
            && file != "."
            && file != ".."
            && !file.contains(['/', '\\'])
            && !Path::new(file).is_absolute();
        if !plain {
            return Err(format!(
                "state_file '{file}': must be a file name; a bandit's state is kept in the \
                 server's state directory (--state-dir), under the model's name"
            ));
        }
        if let Some(state) = &self.shared_state {
            let policy = serde_json::to_value(policy.unwrap_or_default())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            return Ok(BanditStore::Shared {
                state: Arc::clone(state),
                key: format!("ferroserve:bandit:{name}:{policy}"),
            });
        }
        Ok(match &self.state_dir {
            Some(dir) => BanditStore::File(dir.join(name).join(file)),
            None => BanditStore::Memory,
        })
    }

    /// Whether `name`'s `model.toml` names a composite `kind`.
    pub(super) fn is_composite(&self, name: &str) -> bool {
        matches!(
            ModelToml::read(&self.root.join(name)),
            Ok(Some(ModelToml::Composite(_)))
        )
    }

    /// Builds a composite: its targets must be ready plain models that take the same inputs;
    /// it serves the first target's signature as its version 1.
    pub(super) fn build_composite(
        &self,
        name: &str,
        dir: &Path,
        spec: &CompositeSpec,
        disk: &ModelFingerprint,
    ) -> Result<LoadedVersion, String> {
        if let Some(ensemble) = spec.ensemble() {
            let mut max_batch = usize::MAX;
            let plan = Ensemble::plan(&ensemble, |target| {
                let version = self.composite_target(name, target)?;
                max_batch = max_batch.min(version.max_batch_size);
                Ok(version.signature.clone())
            })?;
            let signature = plan.signature.clone();
            return Ok(self.composite_version(
                name,
                dir,
                spec,
                disk,
                signature,
                max_batch,
                Composite::Ensemble(plan),
            ));
        }
        let mut first: Option<Arc<LoadedVersion>> = None;
        for text in spec.targets() {
            let version = self.composite_target(name, &Target::parse(text)?)?;
            match &first {
                None => first = Some(version),
                Some(f) if !same_inputs(&f.signature, &version.signature) => {
                    return Err(format!(
                        "targets '{}' and '{text}' take different inputs ({:?} vs {:?}); every target must take the same",
                        spec.targets()[0],
                        f.signature.inputs,
                        version.signature.inputs
                    ));
                }
                Some(_) => {}
            }
        }
        let first = first.ok_or("a composite needs at least one target")?;
        let composite = Composite::build(spec, self.bandit_store(name, spec)?, &self.feedback_key)?;
        Ok(self.composite_version(
            name,
            dir,
            spec,
            disk,
            first.signature.clone(),
            first.max_batch_size,
            composite,
        ))
    }

    /// The version `target` names now, for composite `name` to route to: a ready plain
    /// model other than the composite itself.
    pub(super) fn composite_target(
        &self,
        name: &str,
        target: &Target,
    ) -> Result<Arc<LoadedVersion>, String> {
        if target.model == name {
            return Err(format!(
                "target '{target}': a composite cannot route to itself"
            ));
        }
        let version = self
            .resolve_target(target)
            .map_err(|e| format!("target '{target}' is not ready: {e}"))?;
        if version.executor.composite().is_some() {
            return Err(format!(
                "target '{target}' is itself a composite; composites route to models only"
            ));
        }
        Ok(version)
    }

    /// The version a composite serves as.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn composite_version(
        &self,
        name: &str,
        dir: &Path,
        spec: &CompositeSpec,
        disk: &ModelFingerprint,
        signature: Signature,
        max_batch_size: usize,
        composite: Composite,
    ) -> LoadedVersion {
        LoadedVersion {
            model_name: name.to_owned(),
            version: 1,
            runtime: spec.kind(),
            platform: spec.platform(),
            signature,
            max_batch_size,
            instances: 0,
            config: ModelConfig {
                path: Some(dir.join(config::CONFIG_FILE)),
                raw: ModelSettings::default(),
            },
            executor: Executor::Composite(Arc::new(composite)),
            stats: Arc::new(VersionStats::default()),
            dir: dir.to_owned(),
            files: disk.shared.clone(),
            cache: None,
            monitor: None,
            payload_log: None,
        }
    }
}

/// Whether two signatures take the same inputs (names, datatypes, shapes).
fn same_inputs(a: &Signature, b: &Signature) -> bool {
    a.inputs == b.inputs
}
