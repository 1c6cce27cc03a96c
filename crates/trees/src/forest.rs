//! [`Forest`]: the trees of one model flattened into parallel node arrays, and the evaluator.
//!
//! Layout: node `i` of any tree is `feature[i]`, `threshold[i]`, `left[i]`, `right[i]`,
//! `default_left[i]`; a leaf has `feature == LEAF` and its value in `threshold`. Child indices
//! are absolute, so walking a tree never consults the tree table. A row goes left when
//! `x[feature] < threshold`, and to the default side when `x[feature]` is NaN (missing).
//! Evaluation is tree-major over blocks of rows, so a tree's nodes stay in cache while every
//! row of the block walks it.

/// The `feature` value marking a leaf.
pub const LEAF: u32 = u32::MAX;

/// Rows evaluated together against each tree.
const ROW_BLOCK: usize = 64;

/// A flattened tree ensemble whose trees each add to one output group (class).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Forest {
    /// Split feature per node, [`LEAF`] for leaves.
    pub feature: Vec<u32>,
    /// Split threshold per node; the leaf value for leaves.
    pub threshold: Vec<f32>,
    /// Absolute index of the left child.
    pub left: Vec<u32>,
    /// Absolute index of the right child.
    pub right: Vec<u32>,
    /// Whether a missing value goes left.
    pub default_left: Vec<bool>,
    /// Root node of each tree.
    pub roots: Vec<u32>,
    /// Output group each tree adds to.
    pub tree_group: Vec<u32>,
    /// Number of output groups (1, or the number of classes).
    pub groups: usize,
    /// Number of input features.
    pub features: usize,
}

/// A forest whose node references do not hold together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidForest(pub String);

impl Forest {
    /// Checks that every child and feature reference is in range and every tree is a tree
    /// (children after their parent, so walks always end).
    pub fn validate(&self) -> Result<(), InvalidForest> {
        let n = self.feature.len();
        if [
            self.threshold.len(),
            self.left.len(),
            self.right.len(),
            self.default_left.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            return Err(InvalidForest("node arrays differ in length".into()));
        }
        if self.roots.len() != self.tree_group.len() {
            return Err(InvalidForest("tree tables differ in length".into()));
        }
        for (t, (&root, &group)) in self.roots.iter().zip(&self.tree_group).enumerate() {
            if root as usize >= n {
                return Err(InvalidForest(format!(
                    "tree {t}: root {root} is not a node"
                )));
            }
            if group as usize >= self.groups {
                return Err(InvalidForest(format!(
                    "tree {t}: output group {group} but the model has {}",
                    self.groups
                )));
            }
        }
        for i in 0..n {
            if self.feature[i] == LEAF {
                continue;
            }
            if self.feature[i] as usize >= self.features {
                return Err(InvalidForest(format!(
                    "node {i}: split feature {} but the model has {} features",
                    self.feature[i], self.features
                )));
            }
            for child in [self.left[i], self.right[i]] {
                if child as usize >= n || child as usize <= i {
                    return Err(InvalidForest(format!(
                        "node {i}: child {child} is not a later node of the same tree"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Adds every tree's leaf value to `margins` (`rows × groups`, row-major) for `x`
    /// (`rows × features`, row-major).
    pub fn accumulate(&self, x: &[f32], margins: &mut [f32]) {
        let rows = margins.len() / self.groups.max(1);
        debug_assert_eq!(x.len(), rows * self.features);
        for start in (0..rows).step_by(ROW_BLOCK) {
            let end = (start + ROW_BLOCK).min(rows);
            for (&root, &group) in self.roots.iter().zip(&self.tree_group) {
                for row in start..end {
                    let features = &x[row * self.features..(row + 1) * self.features];
                    margins[row * self.groups + group as usize] += self.leaf(root, features);
                }
            }
        }
    }

    /// The leaf value a row reaches from `root`.
    #[inline]
    fn leaf(&self, root: u32, x: &[f32]) -> f32 {
        let mut node = root as usize;
        loop {
            let feature = self.feature[node];
            if feature == LEAF {
                return self.threshold[node];
            }
            let value = x[feature as usize];
            let go_left = if value.is_nan() {
                self.default_left[node]
            } else {
                value < self.threshold[node]
            };
            node = if go_left {
                self.left[node]
            } else {
                self.right[node]
            } as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One stump on feature 0 at 0.5: left leaf -1, right leaf +1, missing goes right.
    fn stump() -> Forest {
        Forest {
            feature: vec![0, LEAF, LEAF],
            threshold: vec![0.5, -1.0, 1.0],
            left: vec![1, 0, 0],
            right: vec![2, 0, 0],
            default_left: vec![false, false, false],
            roots: vec![0],
            tree_group: vec![0],
            groups: 1,
            features: 1,
        }
    }

    #[test]
    fn splits_left_below_the_threshold_and_follows_the_default_on_nan() {
        let f = stump();
        f.validate().unwrap();
        let mut m = vec![0.0; 3];
        f.accumulate(&[0.2, 0.5, f32::NAN], &mut m);
        assert_eq!(m, vec![-1.0, 1.0, 1.0]);
    }

    #[test]
    fn rejects_dangling_children_and_features() {
        let mut f = stump();
        f.left[0] = 7;
        assert!(f.validate().unwrap_err().0.contains("child 7"));
        let mut f = stump();
        f.feature[0] = 3;
        assert!(f.validate().unwrap_err().0.contains("feature 3"));
        let mut f = stump();
        f.left[0] = 0;
        assert!(f.validate().is_err(), "a self-loop never ends");
    }
}
