//! `model.toml`, parsed once for every build: [`ModelToml`] says whether a model directory
//! holds a plain model (its [`ModelSettings`]) or a composite that routes to other models (its
//! [`CompositeSpec`], told apart by its `kind` key). Unknown keys are rejected and every error
//! names the file and the key; checks that need the loaded model (its signature, batch sizes)
//! or the repository (whether a target exists) are left to whoever loads it.
//!
//! - [`settings`]: a plain model's keys, [`ModelSettings`], and the enums they take.
//! - [`version_policy`]: which versions are loaded, [`VersionPolicy`].
//! - [`composite`]: a composite's keys, [`CompositeSpec`].
//! - [`ensemble`]: an ensemble's steps and combiners.
//! - [`target`]: the syntax of a composite's target.
//! - [`error`]: the errors, [`ConfigError`].

pub mod composite;
pub mod ensemble;
pub mod error;
pub mod settings;
pub mod target;
pub mod version_policy;

use std::path::Path;

pub use composite::{CompositeSpec, PolicyKind};
pub use ensemble::{CombineOp, CombineSpec, EnsembleSpec, StepSpec};
pub use error::ConfigError;
pub use settings::{
    BatchingMode, ModelSettings, MonitoringConfig, PayloadLogConfig, TensorOverride, WarmupMode,
};
pub use target::{BadTarget, split_target};
pub use version_policy::VersionPolicy;

/// The file name of a model's configuration, beside its version directories.
pub const CONFIG_FILE: &str = "model.toml";

/// What a `model.toml` describes.
// One is made per read of a model directory and taken apart at once: the settings are not
// boxed, so callers match on them directly.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum ModelToml {
    /// A model with version directories of its own, and its settings.
    Model(ModelSettings),
    /// A composite (`kind = "split"`, `"shadow"`, `"bandit"`, `"ensemble"`) routing to other
    /// models of the repository.
    Composite(CompositeSpec),
}

impl ModelToml {
    /// Reads `<model_dir>/model.toml`; `None` when there is none.
    pub fn read(model_dir: &Path) -> Result<Option<ModelToml>, ConfigError> {
        let path = model_dir.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => ModelToml::parse(&text, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ConfigError::Io { path, source }),
        }
    }

    /// Parses the text of a `model.toml` read from `path` (named in errors): a composite when
    /// it has a `kind` key, else a plain model.
    pub fn parse(text: &str, path: &Path) -> Result<ModelToml, ConfigError> {
        match text.parse::<toml::Table>() {
            Ok(table) if table.contains_key("kind") => {
                CompositeSpec::from_table(table, path).map(ModelToml::Composite)
            }
            // Not TOML at all: the plain settings' parse reports it, with the line.
            _ => ModelSettings::parse(text, path).map(ModelToml::Model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelToml, ConfigError> {
        ModelToml::parse(text, Path::new("m/model.toml"))
    }

    #[test]
    fn a_file_without_kind_is_a_model() {
        let ModelToml::Model(settings) =
            parse("max_batch_size = 8\nlabels = { stable = 2 }\n").unwrap()
        else {
            panic!("not a model");
        };
        assert_eq!(settings.max_batch_size, Some(8));
        assert_eq!(settings.labels["stable"], 2);
        assert_eq!(
            parse("").unwrap(),
            ModelToml::Model(ModelSettings::default())
        );
    }

    #[test]
    fn a_file_with_kind_is_a_composite() {
        let ModelToml::Composite(spec) =
            parse("kind = \"split\"\nvariants = { a = 1, \"b@2\" = 3 }\nsticky_by = \"user\"\n")
                .unwrap()
        else {
            panic!("not a composite");
        };
        assert_eq!(spec.kind(), "split");
        assert_eq!(spec.targets(), ["a", "b@2"]);
        let ModelToml::Composite(spec) = parse(
            "kind = \"ensemble\"\noutputs = [\"y\"]\n[[step]]\nmodel = \"m\"\n\
             inputs = { x = \"x\" }\noutputs = { y = \"y\" }\n",
        )
        .unwrap() else {
            panic!("not a composite");
        };
        assert_eq!(spec.ensemble().unwrap().step[0].model, "m");
    }

    #[test]
    fn bad_toml_names_the_file_and_the_field() {
        for (text, field, composite) in [
            ("max_batch = 4", "max_batch", false),
            ("instances = 0", "instances", false),
            (
                "kind = \"split\"\nvariant = { a = 1 }",
                "unknown field `variant`",
                true,
            ),
            ("kind = \"sharding\"", "sharding", true),
            (
                "kind = \"shadow\"\nprimary = \"a\"\nshadows = [\"b\"]\nfraction = 2.0",
                "fraction",
                true,
            ),
            (
                "kind = \"bandit\"\nvariants = [\"a\", \"a/b\"]",
                "target 'a/b'",
                true,
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(
                matches!(err, ConfigError::Composite { .. }),
                composite,
                "{text}: {err:?}"
            );
            let err = err.to_string();
            assert!(
                err.starts_with("m/model.toml: ") && err.contains(field),
                "{text}: {err}"
            );
        }
        // Not TOML: the plain parse reports it, with where.
        let err = parse("kind = ").unwrap_err().to_string();
        assert!(
            err.starts_with("m/model.toml: ") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_is_none() {
        let dir = std::env::temp_dir().join("ferroserve-loader-no-such-model");
        assert_eq!(ModelToml::read(&dir).unwrap(), None);
    }
}
