//! The ai.onnx.ml opset 1–3 attributes of `TreeEnsembleClassifier` and
//! `TreeEnsembleRegressor`: nodes keyed by (tree id, node id) in the `nodes_*` lists, string
//! modes with `LEAF` for leaves, and the leaf weights in separate (tree, node, output, weight)
//! lists, `class_*` for a classifier and `target_*` for a regressor.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::build::{Fork, Layout, Mode, PerNode, Visit, emit};
use super::{Kind, TreeEnsemble};
use crate::compiled::CompiledForest;
use crate::forest::Forest;
use crate::onnxml::attributes::Attributes;
use crate::onnxml::ops::post::{Labels, PostTransform};

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
    /// `TreeEnsembleClassifier`: a label and class probabilities per row.
    pub(crate) fn classifier(a: Attributes<'_>) -> Result<TreeEnsemble, String> {
        let labels = Labels::parse(a)?;
        let class_ids = a.ints("class_ids");
        let weights = a.reals("class_weights")?;
        let used: BTreeSet<i64> = class_ids.iter().copied().collect();
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

    /// `TreeEnsembleRegressor`: `n_targets` values per row.
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
        let trees: BTreeSet<i64> = a.ints("nodes_treeids").into_iter().collect();
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

/// One tree of the legacy layout, its nodes referred to by id.
struct Tree<'a> {
    nodes: &'a HashMap<(i64, i64), OnnxNode>,
    /// (tree, node) → weight per group.
    weights: &'a HashMap<(i64, i64), Vec<(usize, f64)>>,
    tree: i64,
}

impl Layout for Tree<'_> {
    type Ref = i64;

    fn visit(&self, id: i64, group: usize) -> Result<Visit<i64>, String> {
        let tree = self.tree;
        let node = self
            .nodes
            .get(&(tree, id))
            .ok_or_else(|| format!("tree {tree}: node {id} does not exist"))?;
        let mode = match node.mode.as_str() {
            "LEAF" => {
                let value = self.weights.get(&(tree, id)).map_or(0.0, |w| {
                    w.iter().filter(|(g, _)| *g == group).map(|(_, v)| v).sum()
                });
                return Ok(Visit::Leaf(value));
            }
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            other => {
                return Err(format!(
                    "tree {tree} node {id}: mode {other} is not supported"
                ));
            }
        };
        Ok(Visit::Branch(Fork {
            // Checked not negative when the nodes were read.
            feature: Ok(node.feature as u32),
            mode,
            threshold: node.threshold,
            missing_true: node.missing_true,
            true_child: node.true_id,
            false_child: node.false_id,
        }))
    }

    fn looped(&self, _: i64) -> String {
        format!("tree {}: node references form a loop", self.tree)
    }
}

/// Builds the forest: one forest tree per (ONNX tree, output group with weights in it).
fn build_forest(
    a: Attributes<'_>,
    targets: &Targets,
    groups: usize,
) -> Result<CompiledForest, String> {
    let tree_ids = a.ints("nodes_treeids");
    let n = tree_ids.len();
    let mut lists = PerNode::new("nodes_treeids", n);
    let node_ids = lists.add("nodes_nodeids", a.ints("nodes_nodeids"));
    let features = lists.add("nodes_featureids", a.ints("nodes_featureids"));
    let thresholds = lists.add("nodes_values", a.reals("nodes_values")?);
    let modes = lists.add("nodes_modes", a.strings("nodes_modes"));
    let trues = lists.add("nodes_truenodeids", a.ints("nodes_truenodeids"));
    let falses = lists.add("nodes_falsenodeids", a.ints("nodes_falsenodeids"));
    let missing = a.ints("nodes_missing_value_tracks_true");
    lists.check()?;
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
    let mut tree_groups: BTreeMap<i64, BTreeSet<usize>> = BTreeMap::new();
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
    let children: HashSet<(i64, i64)> = nodes
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
        let layout = Tree {
            nodes: &nodes,
            weights: &leaf_weights,
            tree,
        };
        for &group in tree_group_set {
            forest.roots.push(forest.nodes.len() as u32);
            forest.tree_group.push(group as u32);
            let mut budget = n + 1;
            emit(&mut forest, &layout, root, group, &mut budget)?;
        }
    }
    forest.validate().map_err(|e| e.0)?;
    Ok(CompiledForest::new(forest))
}
