//! The syntax of a composite's target: `name`, `name@3` or `name@stable`.

/// A target that is not `name`, `name@version` or `name@label`.
#[derive(Debug, thiserror::Error)]
#[error("target '{0}': expected a model name, optionally with @version or @label")]
pub struct BadTarget(pub String);

/// Splits `name[@version|label]` into the model's name and the version or label after `@`.
pub fn split_target(text: &str) -> Result<(&str, Option<&str>), BadTarget> {
    let (model, version) = match text.split_once('@') {
        Some((m, v)) => (m, Some(v)),
        None => (text, None),
    };
    if model.is_empty() || model.contains('/') || version.is_some_and(str::is_empty) {
        return Err(BadTarget(text.to_owned()));
    }
    Ok((model, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_versions_and_labels() {
        assert_eq!(split_target("fraud@2").unwrap(), ("fraud", Some("2")));
        assert_eq!(split_target("fraud").unwrap(), ("fraud", None));
        assert_eq!(
            split_target("fraud@stable").unwrap(),
            ("fraud", Some("stable"))
        );
        for bad in ["", "@1", "fraud@", "a/b"] {
            assert!(split_target(bad).is_err(), "{bad}");
        }
    }
}
