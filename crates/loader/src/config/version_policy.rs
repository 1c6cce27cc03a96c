//! [`VersionPolicy`]: which versions of a model are loaded (`version_policy` in `model.toml`).

use serde::Deserialize;

/// Which versions of a model are loaded.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionPolicy {
    /// The N highest version numbers (`version_policy = { latest = 2 }`).
    Latest(u32),
    /// Every version found (`version_policy = "all"`).
    All,
    /// Exactly these versions (`version_policy = { specific = [1, 3] }`).
    Specific(Vec<u64>),
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest(1)
    }
}

impl VersionPolicy {
    /// Builds the versions this policy serves out of `available` (ascending), calling `build`
    /// for each version tried; `build` answers whether that version is ready. `latest = N`
    /// walks down from the newest until N are ready, so a newer version that fails to load
    /// never displaces an older ready one (TF Serving's availability-preserving policy);
    /// `all` and `specific` try every version they name. Returns the versions tried, ascending.
    pub fn build(&self, available: &[u64], mut build: impl FnMut(u64) -> bool) -> Vec<u64> {
        let mut tried = Vec::new();
        match self {
            VersionPolicy::Latest(n) => {
                let mut ready = 0;
                for &version in available.iter().rev() {
                    if ready >= *n as usize {
                        break;
                    }
                    tried.push(version);
                    if build(version) {
                        ready += 1;
                    }
                }
                tried.reverse();
            }
            VersionPolicy::All => {
                for &version in available {
                    tried.push(version);
                    build(version);
                }
            }
            VersionPolicy::Specific(wanted) => {
                for &version in available.iter().filter(|v| wanted.contains(v)) {
                    tried.push(version);
                    build(version);
                }
            }
        }
        tried
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_policies_serve_the_newest_ready_versions() {
        let v = [1, 2, 5];
        let all_ready = |_| true;
        assert_eq!(VersionPolicy::Latest(2).build(&v, all_ready), vec![2, 5]);
        assert_eq!(VersionPolicy::All.build(&v, all_ready), vec![1, 2, 5]);
        assert_eq!(
            VersionPolicy::Specific(vec![5, 9]).build(&v, all_ready),
            vec![5]
        );
        // A newest version that fails is tried, and the walk goes on down to a ready one.
        let five_fails = |version| version != 5;
        assert_eq!(VersionPolicy::Latest(1).build(&v, five_fails), vec![2, 5]);
        assert_eq!(
            VersionPolicy::Latest(2).build(&v, five_fails),
            vec![1, 2, 5]
        );
        assert_eq!(VersionPolicy::Latest(1).build(&v, |_| false), vec![1, 2, 5]);
        // The others try every version they name, ready or not.
        assert_eq!(VersionPolicy::All.build(&v, five_fails), vec![1, 2, 5]);
    }
}
