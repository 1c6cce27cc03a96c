//! The ai.onnx.ml opset 5 attributes of `TreeEnsemble`: branch nodes and leaves in separate
//! arrays (`nodes_splits`, `nodes_modes` and the rest per branch node; `leaf_targetids`,
//! `leaf_weights` per leaf), tree roots listed in `tree_roots`, thresholds and weights as
//! tensor attributes, modes and the post-transform as integer enums, and `BRANCH_MEMBER`
//! sets in `membership_values`.

use std::collections::BTreeSet;

use super::build::{Fork, Layout, Mode, PerNode, Visit, emit};
use super::{Kind, TreeEnsemble};
use crate::compiled::CompiledForest;
use crate::forest::{Forest, MemberSet};
use crate::onnxml::attributes::Attributes;
use crate::onnxml::ops::post::PostTransform;

impl TreeEnsemble {
    /// `TreeEnsemble` (ai.onnx.ml opset 5): nodes and leaves in separate arrays, tensor
    /// attributes, integer enums; output `[N, n_targets]`.
    pub(crate) fn v5(a: Attributes<'_>) -> Result<TreeEnsemble, String> {
        let splits = a
            .tensor_reals("nodes_splits")?
            .ok_or("nodes_splits is missing")?;
        let n = splits.len();
        let mut lists = PerNode::new("nodes_splits", n);
        let modes = lists.add("nodes_modes", a.tensor_small_ints("nodes_modes")?);
        let features = lists.add("nodes_featureids", a.ints("nodes_featureids"));
        let trues = lists.add("nodes_truenodeids", a.ints("nodes_truenodeids"));
        let falses = lists.add("nodes_falsenodeids", a.ints("nodes_falsenodeids"));
        let true_leafs = lists.add("nodes_trueleafs", a.ints("nodes_trueleafs"));
        let false_leafs = lists.add("nodes_falseleafs", a.ints("nodes_falseleafs"));
        let missing = a.ints("nodes_missing_value_tracks_true");
        let leaf_targets = a.ints("leaf_targetids");
        let leaf_weights = a
            .tensor_reals("leaf_weights")?
            .ok_or("leaf_weights is missing")?;
        let roots = a.ints("tree_roots");
        let membership = a.tensor_reals("membership_values")?.unwrap_or_default();
        lists.check()?;
        if !(missing.is_empty() || missing.len() == n) || leaf_targets.len() != leaf_weights.len() {
            return Err(
                "nodes_missing_value_tracks_true or the leaf lists differ in length".into(),
            );
        }
        let n_targets = usize::try_from(a.int("n_targets", 1))
            .map_err(|_| "n_targets")?
            .max(1);
        let leaf_group = |l: usize| -> Result<usize, String> {
            usize::try_from(leaf_targets[l])
                .ok()
                .filter(|&t| t < n_targets)
                .ok_or_else(|| format!("leaf {l}: target {} of {n_targets}", leaf_targets[l]))
        };
        let mut forest = Forest {
            groups: n_targets,
            features: features.iter().copied().max().map_or(1, |m| m as usize + 1),
            ..Forest::default()
        };
        let member_set = member_sets(&modes, &membership, &mut forest)?;
        let layout = V5 {
            splits: &splits,
            modes: &modes,
            features: &features,
            trues: &trues,
            falses: &falses,
            true_leafs: &true_leafs,
            false_leafs: &false_leafs,
            missing: &missing,
            member_set: &member_set,
            leaf_targets: &leaf_targets,
            leaf_weights: &leaf_weights,
        };
        for (t, &root) in roots.iter().enumerate() {
            let r = usize::try_from(root)
                .ok()
                .filter(|&r| r < n.max(leaf_weights.len()));
            let r = r.ok_or_else(|| format!("tree_roots[{t}] = {root} is not a node"))?;
            let single_leaf =
                r < n && true_leafs[r] != 0 && false_leafs[r] != 0 && trues[r] == falses[r];
            // The leaves reachable from the root, for the groups this tree feeds.
            let mut groups = BTreeSet::new();
            let mut stack = vec![(single_leaf, r)];
            let mut budget = n + leaf_weights.len() + 1;
            while let Some((leaf, i)) = stack.pop() {
                budget = budget.checked_sub(1).ok_or("node references form a loop")?;
                if leaf {
                    groups.insert(leaf_group(i)?);
                } else {
                    stack.push(layout.child(i, true_leafs[i], trues[i])?);
                    stack.push(layout.child(i, false_leafs[i], falses[i])?);
                }
            }
            for group in groups {
                forest.roots.push(forest.nodes.len() as u32);
                forest.tree_group.push(group as u32);
                let mut stack_budget = n + leaf_weights.len() + 1;
                emit(
                    &mut forest,
                    &layout,
                    (single_leaf, r),
                    group,
                    &mut stack_budget,
                )?;
            }
        }
        forest.validate().map_err(|e| e.0)?;
        let transform = match a.int("post_transform", 0) {
            0 => PostTransform::None,
            1 => PostTransform::Softmax,
            2 => PostTransform::Logistic,
            3 => PostTransform::SoftmaxZero,
            other => return Err(format!("post_transform {other} is not supported")),
        };
        let divisor = match a.int("aggregate_function", 1) {
            1 => 1.0,
            0 => roots.len().max(1) as f64,
            other => {
                return Err(format!(
                    "aggregate_function {other} is not supported (SUM, AVERAGE are)"
                ));
            }
        };
        Ok(TreeEnsemble {
            forest: CompiledForest::new(forest),
            base: vec![0.0; n_targets],
            divisor,
            transform,
            kind: Kind::Regressor,
        })
    }
}

/// Splits `membership_values` at its NaNs into one set per `BRANCH_MEMBER` node, in node order
/// (as the specification lists them), adds them to `forest`, and gives each node its set.
fn member_sets(
    modes: &[i64],
    membership: &[f64],
    forest: &mut Forest,
) -> Result<Vec<Option<u32>>, String> {
    let mut sets = membership.split(|v| v.is_nan());
    let mut of_node = vec![None; modes.len()];
    for (i, _) in modes.iter().enumerate().filter(|(_, m)| **m == 6) {
        let values = sets.next().ok_or_else(|| {
            format!("node {i}: BRANCH_MEMBER has no set in membership_values (sets end at NaN)")
        })?;
        of_node[i] = Some(forest.member_sets.len() as u32);
        forest
            .member_sets
            .push(MemberSet::new(values.iter().map(|&v| v as f32)));
    }
    Ok(of_node)
}

/// The attribute arrays of a `TreeEnsemble` node.
struct V5<'a> {
    splits: &'a [f64],
    modes: &'a [i64],
    features: &'a [i64],
    trues: &'a [i64],
    falses: &'a [i64],
    true_leafs: &'a [i64],
    false_leafs: &'a [i64],
    missing: &'a [i64],
    /// The set of each `BRANCH_MEMBER` node.
    member_set: &'a [Option<u32>],
    leaf_targets: &'a [i64],
    leaf_weights: &'a [f64],
}

impl V5<'_> {
    /// Node `i`'s child `id`, a leaf when `leaf` is not 0, as (is a leaf, index).
    fn child(&self, i: usize, leaf: i64, id: i64) -> Result<(bool, usize), String> {
        let leaf = leaf != 0;
        let limit = if leaf {
            self.leaf_weights.len()
        } else {
            self.splits.len()
        };
        usize::try_from(id)
            .ok()
            .filter(|&j| j < limit)
            .map(|j| (leaf, j))
            .ok_or_else(|| format!("node {i}: child {id} does not exist"))
    }
}

impl Layout for V5<'_> {
    /// (is a leaf, index in the leaf or the node arrays).
    type Ref = (bool, usize);

    fn visit(&self, (leaf, i): (bool, usize), group: usize) -> Result<Visit<Self::Ref>, String> {
        if leaf {
            let value = if self
                .leaf_targets
                .get(i)
                .is_some_and(|&t| t as usize == group)
            {
                self.leaf_weights[i]
            } else {
                0.0
            };
            return Ok(Visit::Leaf(value));
        }
        let mode = match self.modes[i] {
            0 => Mode::Leq,
            1 => Mode::Lt,
            2 => Mode::Gte,
            3 => Mode::Gt,
            4 => Mode::Eq,
            5 => Mode::Neq,
            6 => Mode::Member(self.member_set[i].expect("every BRANCH_MEMBER node has a set")),
            m => return Err(format!("node {i}: unknown mode {m}")),
        };
        Ok(Visit::Branch(Fork {
            feature: u32::try_from(self.features[i])
                .map_err(|_| format!("node {i}: feature {}", self.features[i])),
            mode,
            threshold: self.splits[i],
            missing_true: self.missing.get(i).is_some_and(|&m| m != 0),
            true_child: self.child(i, self.true_leafs[i], self.trues[i])?,
            false_child: self.child(i, self.false_leafs[i], self.falses[i])?,
        }))
    }

    fn looped(&self, _: Self::Ref) -> String {
        "node references form a loop".to_owned()
    }
}
