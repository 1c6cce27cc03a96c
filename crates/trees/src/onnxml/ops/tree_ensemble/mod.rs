//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (ai.onnx.ml opset 1–3 attributes) and
//! the newer `TreeEnsemble` (opset 5), compiled into the same [`CompiledForest`] as XGBoost and
//! LightGBM models.
//!
//! Every comparison mode becomes a [`Split`] on float32 inputs: `BRANCH_LEQ t` is
//! `x < round_down(t).next_up()`, `BRANCH_LT t` is `x < round_up(t)`, `BRANCH_GTE`/`BRANCH_GT`
//! are those with the children swapped, `BRANCH_EQ`/`BRANCH_NEQ` an equality, `BRANCH_MEMBER`
//! (opset 5) a [`MemberSet`] from `membership_values`. A missing value
//! goes to the true branch when `nodes_missing_value_tracks_true` says so, and otherwise where
//! the comparison with NaN sends it (false, except `BRANCH_NEQ`). A tree whose leaves add to
//! several classes (random forests) becomes one tree per class. Leaf values are summed in
//! double precision and returned as FP32.

use std::collections::{BTreeMap, HashMap};

use ferroserve_core::{Tensor, TensorData};

use super::post::{Labels, PostTransform, binary_scores};
use super::{Op, Output, matrix};
use crate::compiled::CompiledForest;
use crate::forest::{Branch, Forest, MemberSet, Node, Split, round_down, round_up};
use crate::objective::argmax;
use crate::onnxml::attributes::Attributes;

/// A built tree ensemble.
#[derive(Debug)]
pub(crate) struct TreeEnsemble {
    forest: CompiledForest,
    /// Per output group, added after the trees.
    base: Vec<f64>,
    /// The sum is divided by this (`aggregate_function = AVERAGE`: the number of trees).
    divisor: f64,
    transform: PostTransform,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Regressor,
    Classifier {
        labels: Labels,
        /// Two classes, one score (boosted binary models).
        binary: bool,
        /// Every weight ≥ 0: the binary score is a probability.
        positive: bool,
    },
}

/// One node as the attributes describe it.
struct OnnxNode {
    feature: i64,
    threshold: f64,
    mode: String,
    true_id: i64,
    false_id: i64,
    missing_true: bool,
}

impl TreeEnsemble {
    pub(crate) fn classifier(a: Attributes<'_>) -> Result<TreeEnsemble, String> {
        let labels = Labels::parse(a)?;
        let class_ids = a.ints("class_ids");
        let weights = a.reals("class_weights")?;
        let used: std::collections::BTreeSet<i64> = class_ids.iter().copied().collect();
        let binary = labels.len() == 2 && used.len() == 1;
        let groups = if binary { 1 } else { labels.len() };
        let positive = weights.iter().all(|&w| w >= 0.0);
        let targets = Targets {
            trees: a.ints("class_treeids"),
            nodes: a.ints("class_nodeids"),
            ids: if binary {
                vec![0; class_ids.len()]
            } else {
                class_ids
            },
            weights,
        };
        let forest = build_forest(a, &targets, groups)?;
        Ok(TreeEnsemble {
            base: base_values(a, groups)?,
            divisor: 1.0,
            transform: PostTransform::parse(a)?,
            kind: Kind::Classifier {
                labels,
                binary,
                positive,
            },
            forest,
        })
    }

    pub(crate) fn regressor(a: Attributes<'_>) -> Result<TreeEnsemble, String> {
        let targets = Targets {
            trees: a.ints("target_treeids"),
            nodes: a.ints("target_nodeids"),
            ids: a.ints("target_ids"),
            weights: a.reals("target_weights")?,
        };
        let n_targets =
            a.int("n_targets", 0)
                .max(targets.ids.iter().copied().max().map_or(1, |m| m + 1)) as usize;
        let forest = build_forest(a, &targets, n_targets)?;
        let trees: std::collections::BTreeSet<i64> = a.ints("nodes_treeids").into_iter().collect();
        let divisor = match a.string("aggregate_function", "SUM").as_str() {
            "SUM" => 1.0,
            "AVERAGE" => trees.len().max(1) as f64,
            other => {
                return Err(format!(
                    "aggregate_function {other} is not supported (SUM, AVERAGE are)"
                ));
            }
        };
        Ok(TreeEnsemble {
            base: base_values(a, n_targets)?,
            divisor,
            transform: PostTransform::parse(a)?,
            kind: Kind::Regressor,
            forest,
        })
    }
}

impl TreeEnsemble {
    /// `TreeEnsemble` (ai.onnx.ml opset 5): nodes and leaves in separate arrays, tensor
    /// attributes, integer enums; output `[N, n_targets]`.
    pub(crate) fn v5(a: Attributes<'_>) -> Result<TreeEnsemble, String> {
        let splits = a
            .tensor_reals("nodes_splits")?
            .ok_or("nodes_splits is missing")?;
        let modes = a.tensor_small_ints("nodes_modes")?;
        let features = a.ints("nodes_featureids");
        let trues = a.ints("nodes_truenodeids");
        let falses = a.ints("nodes_falsenodeids");
        let true_leafs = a.ints("nodes_trueleafs");
        let false_leafs = a.ints("nodes_falseleafs");
        let missing = a.ints("nodes_missing_value_tracks_true");
        let leaf_targets = a.ints("leaf_targetids");
        let leaf_weights = a
            .tensor_reals("leaf_weights")?
            .ok_or("leaf_weights is missing")?;
        let roots = a.ints("tree_roots");
        let n = splits.len();
        let membership = a.tensor_reals("membership_values")?.unwrap_or_default();
        same_lengths(
            ("nodes_splits", n),
            &[
                ("nodes_modes", modes.len()),
                ("nodes_featureids", features.len()),
                ("nodes_truenodeids", trues.len()),
                ("nodes_falsenodeids", falses.len()),
                ("nodes_trueleafs", true_leafs.len()),
                ("nodes_falseleafs", false_leafs.len()),
            ],
        )?;
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
        // A child reference: (is a leaf, index).
        let child = |i: usize, leaf: bool, id: i64| -> Result<(bool, usize), String> {
            let limit = if leaf { leaf_weights.len() } else { n };
            usize::try_from(id)
                .ok()
                .filter(|&j| j < limit)
                .map(|j| (leaf, j))
                .ok_or_else(|| format!("node {i}: child {id} does not exist"))
        };
        for (t, &root) in roots.iter().enumerate() {
            let r = usize::try_from(root)
                .ok()
                .filter(|&r| r < n.max(leaf_weights.len()));
            let r = r.ok_or_else(|| format!("tree_roots[{t}] = {root} is not a node"))?;
            let single_leaf =
                r < n && true_leafs[r] != 0 && false_leafs[r] != 0 && trues[r] == falses[r];
            // The leaves reachable from the root, for the groups this tree feeds.
            let mut groups = std::collections::BTreeSet::new();
            let mut stack = vec![(single_leaf, r)];
            let mut budget = n + leaf_weights.len() + 1;
            while let Some((leaf, i)) = stack.pop() {
                budget = budget.checked_sub(1).ok_or("node references form a loop")?;
                if leaf {
                    groups.insert(leaf_group(i)?);
                } else {
                    stack.push(child(i, true_leafs[i] != 0, trues[i])?);
                    stack.push(child(i, false_leafs[i] != 0, falses[i])?);
                }
            }
            for group in groups {
                forest.roots.push(forest.nodes.len() as u32);
                forest.tree_group.push(group as u32);
                let mut stack_budget = n + leaf_weights.len() + 1;
                emit_v5(
                    &mut forest,
                    &V5 {
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
                    },
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

/// Appends the subtree at `(is_leaf, index)` for output `group` and returns its position.
fn emit_v5(
    forest: &mut Forest,
    v: &V5<'_>,
    (leaf, i): (bool, usize),
    group: usize,
    budget: &mut usize,
) -> Result<u32, String> {
    *budget = budget.checked_sub(1).ok_or("node references form a loop")?;
    let at = forest.nodes.len();
    forest.nodes.push(Node::Leaf {
        value: 0.0,
        linear: None,
    });
    if leaf {
        let value = if v.leaf_targets.get(i).is_some_and(|&t| t as usize == group) {
            v.leaf_weights[i]
        } else {
            0.0
        };
        forest.nodes[at] = Node::Leaf {
            value,
            linear: None,
        };
        return Ok(at as u32);
    }
    let t = v.splits[i];
    let (split, true_left) = match v.modes[i] {
        0 => (Split::Less(round_down(t).next_up()), true),
        1 => (Split::Less(round_up(t)), true),
        2 => (Split::Less(round_up(t)), false),
        3 => (Split::Less(round_down(t).next_up()), false),
        4 => (Split::Equal(t as f32), true),
        5 => (Split::Equal(t as f32), false),
        6 => (
            Split::Member(v.member_set[i].expect("every BRANCH_MEMBER node has a set")),
            true,
        ),
        m => return Err(format!("node {i}: unknown mode {m}")),
    };
    let missing_to_true = v.missing.get(i).is_some_and(|&m| m != 0) || v.modes[i] == 5;
    let to_ref = |leaf: i64, id: i64| -> Result<(bool, usize), String> {
        let leaf = leaf != 0;
        let limit = if leaf {
            v.leaf_weights.len()
        } else {
            v.splits.len()
        };
        usize::try_from(id)
            .ok()
            .filter(|&j| j < limit)
            .map(|j| (leaf, j))
            .ok_or_else(|| format!("node {i}: child {id} does not exist"))
    };
    let true_ref = to_ref(v.true_leafs[i], v.trues[i])?;
    let false_ref = to_ref(v.false_leafs[i], v.falses[i])?;
    let (l, r) = if true_left {
        (true_ref, false_ref)
    } else {
        (false_ref, true_ref)
    };
    let left = emit_v5(forest, v, l, group, budget)?;
    let right = emit_v5(forest, v, r, group, budget)?;
    let feature =
        u32::try_from(v.features[i]).map_err(|_| format!("node {i}: feature {}", v.features[i]))?;
    forest.nodes[at] = Node::Branch(Branch {
        feature,
        split,
        left,
        right,
        default_left: missing_to_true == true_left,
    });
    Ok(at as u32)
}

/// Checks that every per-node attribute list has as many entries as `base`.
fn same_lengths((base, n): (&str, usize), lists: &[(&str, usize)]) -> Result<(), String> {
    match lists.iter().find(|(_, len)| *len != n) {
        Some((name, len)) => Err(format!("{name} has {len} entries, {base} {n}")),
        None => Ok(()),
    }
}

/// `base_values`: one per group, or none (zeros).
fn base_values(a: Attributes<'_>, groups: usize) -> Result<Vec<f64>, String> {
    let base = a.reals("base_values")?;
    match base.len() {
        0 => Ok(vec![0.0; groups]),
        n if n == groups => Ok(base),
        n => Err(format!("{n} base_values for {groups} outputs")),
    }
}

/// The leaf weights: (tree, node) → (output, weight) entries.
struct Targets {
    trees: Vec<i64>,
    nodes: Vec<i64>,
    ids: Vec<i64>,
    weights: Vec<f64>,
}

/// Builds the forest: one forest tree per (ONNX tree, output group with weights in it).
fn build_forest(
    a: Attributes<'_>,
    targets: &Targets,
    groups: usize,
) -> Result<CompiledForest, String> {
    let tree_ids = a.ints("nodes_treeids");
    let node_ids = a.ints("nodes_nodeids");
    let features = a.ints("nodes_featureids");
    let thresholds = a.reals("nodes_values")?;
    let modes = a.strings("nodes_modes");
    let trues = a.ints("nodes_truenodeids");
    let falses = a.ints("nodes_falsenodeids");
    let missing = a.ints("nodes_missing_value_tracks_true");
    let n = tree_ids.len();
    same_lengths(
        ("nodes_treeids", n),
        &[
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_values", thresholds.len()),
            ("nodes_modes", modes.len()),
            ("nodes_truenodeids", trues.len()),
            ("nodes_falsenodeids", falses.len()),
        ],
    )?;
    if !(missing.is_empty() || missing.len() == n) {
        return Err(format!(
            "nodes_missing_value_tracks_true has {} entries for {n} nodes",
            missing.len()
        ));
    }
    let t = targets;
    if [t.nodes.len(), t.ids.len(), t.weights.len()]
        .iter()
        .any(|&l| l != t.trees.len())
    {
        return Err("the leaf weight lists (tree, node, id, weight) differ in length".into());
    }
    let mut nodes: HashMap<(i64, i64), OnnxNode> = HashMap::with_capacity(n);
    let mut max_feature = 0i64;
    for i in 0..n {
        if features[i] < 0 {
            return Err(format!("node {i}: feature {} is negative", features[i]));
        }
        max_feature = max_feature.max(features[i]);
        nodes.insert(
            (tree_ids[i], node_ids[i]),
            OnnxNode {
                feature: features[i],
                threshold: thresholds[i],
                mode: modes[i].clone(),
                true_id: trues[i],
                false_id: falses[i],
                missing_true: missing.get(i).is_some_and(|&m| m != 0),
            },
        );
    }
    // (tree, node) → weight per group; trees in id order, each with the groups it feeds.
    let mut leaf_weights: HashMap<(i64, i64), Vec<(usize, f64)>> = HashMap::new();
    let mut tree_groups: BTreeMap<i64, std::collections::BTreeSet<usize>> = BTreeMap::new();
    for tree in &tree_ids {
        tree_groups.entry(*tree).or_default();
    }
    for k in 0..t.trees.len() {
        let group = usize::try_from(t.ids[k])
            .ok()
            .filter(|&g| g < groups)
            .ok_or_else(|| format!("leaf weight {k}: output {} of {groups}", t.ids[k]))?;
        leaf_weights
            .entry((t.trees[k], t.nodes[k]))
            .or_default()
            .push((group, t.weights[k]));
        tree_groups.entry(t.trees[k]).or_default().insert(group);
    }
    let mut forest = Forest {
        groups,
        features: usize::try_from(max_feature + 1).map_err(|_| "too many features")?,
        ..Forest::default()
    };
    // Each tree's root: its one node that no branch of the tree points to (one pass over all
    // nodes, not one per tree).
    let children: std::collections::HashSet<(i64, i64)> = nodes
        .iter()
        .filter(|(_, node)| node.mode != "LEAF")
        .flat_map(|(&(t, _), node)| [(t, node.true_id), (t, node.false_id)])
        .collect();
    let mut roots: HashMap<i64, Vec<i64>> = HashMap::new();
    for &(t, id) in nodes.keys().filter(|key| !children.contains(key)) {
        roots.entry(t).or_default().push(id);
    }
    for (&tree, tree_group_set) in &tree_groups {
        let root = match roots.get(&tree).map(Vec::as_slice) {
            Some(&[root]) => root,
            _ => return Err(format!("tree {tree}: no single root node")),
        };
        for &group in tree_group_set {
            forest.roots.push(forest.nodes.len() as u32);
            forest.tree_group.push(group as u32);
            let mut budget = n + 1;
            emit(
                &mut forest,
                &nodes,
                &leaf_weights,
                tree,
                root,
                group,
                &mut budget,
            )?;
        }
    }
    forest.validate().map_err(|e| e.0)?;
    Ok(CompiledForest::new(forest))
}

/// Appends the subtree of `(tree, id)` for output `group` in pre-order and returns its index.
/// `budget` bounds the nodes visited, so a file whose node references loop fails instead.
fn emit(
    forest: &mut Forest,
    nodes: &HashMap<(i64, i64), OnnxNode>,
    weights: &HashMap<(i64, i64), Vec<(usize, f64)>>,
    tree: i64,
    id: i64,
    group: usize,
    budget: &mut usize,
) -> Result<u32, String> {
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| format!("tree {tree}: node references form a loop"))?;
    let node = nodes
        .get(&(tree, id))
        .ok_or_else(|| format!("tree {tree}: node {id} does not exist"))?;
    let at = forest.nodes.len();
    forest.nodes.push(Node::Leaf {
        value: 0.0,
        linear: None,
    });
    if node.mode == "LEAF" {
        let value = weights.get(&(tree, id)).map_or(0.0, |w| {
            w.iter().filter(|(g, _)| *g == group).map(|(_, v)| v).sum()
        });
        forest.nodes[at] = Node::Leaf {
            value,
            linear: None,
        };
        return Ok(at as u32);
    }
    let t = node.threshold;
    // (split, does the true branch go left?)
    let (split, true_left) = match node.mode.as_str() {
        "BRANCH_LEQ" => (Split::Less(round_down(t).next_up()), true),
        "BRANCH_LT" => (Split::Less(round_up(t)), true),
        "BRANCH_GTE" => (Split::Less(round_up(t)), false),
        "BRANCH_GT" => (Split::Less(round_down(t).next_up()), false),
        "BRANCH_EQ" => (Split::Equal(t as f32), true),
        "BRANCH_NEQ" => (Split::Equal(t as f32), false),
        other => {
            return Err(format!(
                "tree {tree} node {id}: mode {other} is not supported"
            ));
        }
    };
    let missing_to_true = node.missing_true || node.mode == "BRANCH_NEQ";
    let (left_id, right_id) = if true_left {
        (node.true_id, node.false_id)
    } else {
        (node.false_id, node.true_id)
    };
    let left = emit(forest, nodes, weights, tree, left_id, group, budget)?;
    let right = emit(forest, nodes, weights, tree, right_id, group, budget)?;
    forest.nodes[at] = Node::Branch(Branch {
        feature: node.feature as u32,
        split,
        left,
        right,
        default_left: missing_to_true == true_left,
    });
    Ok(at as u32)
}

impl Op for TreeEnsemble {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let x = matrix(inputs, 0)?;
        let features = self.forest.forest().features;
        if x.cols < features {
            return Err(format!(
                "input has {} columns but the trees read feature {}",
                x.cols,
                features - 1
            ));
        }
        let rows_data: std::borrow::Cow<'_, [f32]> = if x.cols == features {
            std::borrow::Cow::Borrowed(&*x.data)
        } else {
            x.data
                .chunks(x.cols)
                .flat_map(|r| r[..features].iter().copied())
                .collect::<Vec<_>>()
                .into()
        };
        let groups = self.base.len();
        let mut sums = vec![0.0f64; x.rows * groups];
        self.forest.accumulate(&rows_data, &mut sums);
        let scores: Vec<f32> = sums
            .chunks(groups)
            .flat_map(|row| {
                row.iter()
                    .zip(&self.base)
                    .map(|(s, b)| (s / self.divisor + b) as f32)
            })
            .collect();
        match &self.kind {
            Kind::Regressor => {
                let mut y = scores;
                if self.transform != PostTransform::None {
                    y.chunks_mut(groups).for_each(|r| self.transform.apply(r));
                }
                Ok(vec![(vec![x.rows, groups], TensorData::F32(y))])
            }
            Kind::Classifier {
                labels,
                binary: true,
                positive,
            } => {
                let mut classes = Vec::with_capacity(x.rows);
                let mut probabilities = Vec::with_capacity(x.rows * 2);
                for &s in &scores {
                    if *positive {
                        classes.push(usize::from(s > 0.5));
                        probabilities.extend_from_slice(&[1.0 - s, s]);
                    } else {
                        let (two, class) = binary_scores(s, self.transform);
                        classes.push(class);
                        probabilities.extend_from_slice(&two);
                    }
                }
                Ok(vec![
                    (vec![x.rows], labels.output(&classes)),
                    (vec![x.rows, 2], TensorData::F32(probabilities)),
                ])
            }
            Kind::Classifier { labels, .. } => {
                let mut classes = Vec::with_capacity(x.rows);
                let mut probabilities = scores;
                for row in probabilities.chunks_mut(groups) {
                    classes.push(argmax(row));
                    self.transform.apply(row);
                }
                Ok(vec![
                    (vec![x.rows], labels.output(&classes)),
                    (vec![x.rows, groups], TensorData::F32(probabilities)),
                ])
            }
        }
    }
}
