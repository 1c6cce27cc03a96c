//! A composite's reference to another model: `name`, `name@3` or `name@stable`.

use ferroserve_loader::config::split_target;
use std::fmt;

/// A model of the repository, at its latest ready version, a version number, or a label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The model's name.
    pub model: String,
    /// The version number or label after `@`.
    pub version: Option<String>,
}

impl Target {
    /// Parses `name[@version|label]`.
    pub fn parse(text: &str) -> Result<Target, String> {
        let (model, version) = split_target(text).map_err(|e| e.to_string())?;
        Ok(Target {
            model: model.to_owned(),
            version: version.map(str::to_owned),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.model),
            None => f.write_str(&self.model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_versions_and_labels() {
        assert_eq!(
            Target::parse("fraud@2").unwrap(),
            Target {
                model: "fraud".into(),
                version: Some("2".into())
            }
        );
        assert_eq!(Target::parse("fraud").unwrap().version, None);
        assert_eq!(
            Target::parse("fraud@stable").unwrap().to_string(),
            "fraud@stable"
        );
        for bad in ["", "@1", "fraud@", "a/b"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
