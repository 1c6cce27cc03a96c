//! XGBoost's model formats (`Booster.save_model("model.json")` and `"model.ubj"`, the same
//! document as JSON or Universal Binary JSON) into a [`Forest`].
//!
//! Read: `learner.learner_model_param` (`base_score`, `num_class`, `num_feature`),
//! `learner.objective.name`, and per tree of `learner.gradient_booster.model.trees` the node
//! arrays `left_children`, `right_children`, `split_indices`, `split_conditions` (the leaf value
//! at leaves), `default_left`, `split_type`, and for categorical splits (`split_type` 1)
//! `categories_nodes`/`categories_segments`/`categories_sizes`/`categories` (the categories that
//! go *right*); `tree_info` gives each tree's output group. `dart` boosters scale each tree by
//! its `weight_drop`.

pub mod ubjson;

use serde::Deserialize;

use crate::forest::{Branch, CategorySet, Forest, Node, Split};
use crate::objective::Objective;

/// A parsed XGBoost model: its trees, objective and base margin per output group.
#[derive(Clone, Debug, PartialEq)]
pub struct XgboostModel {
    /// The trees.
    pub forest: Forest,
    /// The objective's transformation.
    pub objective: Objective,
    /// The objective's name as XGBoost writes it (`binary:logistic`).
    pub objective_name: String,
    /// Added to each group's margin before the trees (the base score in margin space).
    pub base_margin: Vec<f64>,
}

#[derive(Deserialize)]
struct File {
    learner: Learner,
}

#[derive(Deserialize)]
struct Learner {
    learner_model_param: LearnerModelParam,
    objective: ObjectiveJson,
    gradient_booster: GradientBooster,
}

#[derive(Deserialize)]
struct LearnerModelParam {
    base_score: String,
    #[serde(default)]
    num_class: Option<String>,
    num_feature: String,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct ObjectiveJson {
    name: String,
}

#[derive(Deserialize)]
struct GradientBooster {
    name: String,
    model: Option<Booster>,
    /// `dart` nests a `gbtree` booster here.
    gbtree: Option<Box<GradientBooster>>,
    /// Per-tree weights, single precision as XGBoost keeps them.
    #[serde(default)]
    weight_drop: Vec<f32>,
}

#[derive(Deserialize)]
struct Booster {
    trees: Vec<Tree>,
    tree_info: Vec<u32>,
}

#[derive(Deserialize)]
struct Tree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<u64>,
    split_conditions: Vec<f32>,
    default_left: Vec<DefaultLeft>,
    #[serde(default)]
    split_type: Vec<u8>,
    #[serde(default)]
    categories: Vec<u32>,
    #[serde(default)]
    categories_nodes: Vec<u32>,
    #[serde(default)]
    categories_segments: Vec<u64>,
    #[serde(default)]
    categories_sizes: Vec<u64>,
}

/// `default_left` is written as 0/1 integers by some versions and booleans by others. A
/// visitor rather than `#[serde(untagged)]`, which builds and discards an error per node
/// (a third of the load time of a 100-tree model).
struct DefaultLeft(bool);

impl DefaultLeft {
    fn get(&self) -> bool {
        self.0
    }
}

impl<'de> Deserialize<'de> for DefaultLeft {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DefaultLeft;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a boolean or 0/1")
            }
            fn visit_bool<E>(self, v: bool) -> Result<DefaultLeft, E> {
                Ok(DefaultLeft(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<DefaultLeft, E> {
                Ok(DefaultLeft(v != 0))
            }
            fn visit_i64<E>(self, v: i64) -> Result<DefaultLeft, E> {
                Ok(DefaultLeft(v != 0))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Why a model file could not be read, naming the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

/// Parses the text of a `model.json`.
pub fn parse_json(bytes: &[u8]) -> Result<XgboostModel, FormatError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let file = File::deserialize(de)
        .map_err(|e| FormatError(format!("not an XGBoost JSON model: {e}")))?;
    from_file(file)
}

/// Parses the bytes of a `model.ubj`.
pub fn parse_ubjson(bytes: &[u8]) -> Result<XgboostModel, FormatError> {
    let value = ubjson::parse(bytes)?;
    let file = File::deserialize(value)
        .map_err(|e| FormatError(format!("not an XGBoost UBJSON model: {e}")))?;
    from_file(file)
}

fn from_file(file: File) -> Result<XgboostModel, FormatError> {
    let learner = file.learner;
    let objective_name = learner.objective.name;
    let objective = match objective_name.as_str() {
        "binary:logistic" => Objective::BinaryLogistic { scale: 1.0 },
        "binary:logitraw" => Objective::Identity,
        "multi:softprob" | "multi:softmax" => Objective::Softmax,
        "reg:squarederror"
        | "reg:linear"
        | "reg:absoluteerror"
        | "reg:pseudohubererror"
        | "reg:quantileerror"
        | "rank:pairwise"
        | "rank:ndcg"
        | "rank:map" => Objective::Identity,
        "reg:logistic" => Objective::Sigmoid { scale: 1.0 },
        "count:poisson" | "reg:gamma" | "reg:tweedie" => Objective::Exp,
        other => {
            return Err(FormatError(format!(
                "learner.objective.name: objective '{other}' is not supported"
            )));
        }
    };
    let number = |field: &str, text: &str| -> Result<usize, FormatError> {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v >= 0.0)
            .map(|v| v as usize)
            .ok_or_else(|| {
                FormatError(format!(
                    "learner.learner_model_param.{field}: not a count: {text:?}"
                ))
            })
    };
    let features = number("num_feature", &learner.learner_model_param.num_feature)?;
    let classes = match &learner.learner_model_param.num_class {
        Some(text) => number("num_class", text)?,
        None => 0,
    };
    let targets = match &learner.learner_model_param.num_target {
        Some(text) => number("num_target", text)?.max(1),
        None => 1,
    };
    let groups = if objective == Objective::Softmax {
        classes.max(1)
    } else {
        targets
    };
    if objective == Objective::Softmax && classes < 2 {
        return Err(FormatError(format!(
            "learner.learner_model_param.num_class: {objective_name} needs at least 2 classes, got {classes}"
        )));
    }
    let base_scores = parse_base_score(&learner.learner_model_param.base_score)?;
    let base_margin: Vec<f64> = match base_scores.as_slice() {
        [one] => vec![f64::from(objective.prob_to_margin(*one)); groups],
        many if many.len() == groups => many
            .iter()
            .map(|b| f64::from(objective.prob_to_margin(*b)))
            .collect(),
        many => {
            return Err(FormatError(format!(
                "learner.learner_model_param.base_score: {} values for {groups} output groups",
                many.len()
            )));
        }
    };
    let (booster, weights) = match learner.gradient_booster.name.as_str() {
        "gbtree" => (learner.gradient_booster.model, None),
        "dart" => (
            learner.gradient_booster.gbtree.and_then(|g| g.model),
            Some(learner.gradient_booster.weight_drop),
        ),
        other => {
            return Err(FormatError(format!(
                "learner.gradient_booster.name: booster '{other}' is not supported (gbtree and dart are)"
            )));
        }
    };
    let booster =
        booster.ok_or_else(|| FormatError("learner.gradient_booster.model: missing".into()))?;
    if booster.tree_info.len() != booster.trees.len() {
        return Err(FormatError(format!(
            "learner.gradient_booster.model.tree_info: {} entries for {} trees",
            booster.tree_info.len(),
            booster.trees.len()
        )));
    }
    if let Some(w) = &weights
        && w.len() != booster.trees.len()
    {
        return Err(FormatError(format!(
            "learner.gradient_booster.weight_drop: {} weights for {} trees",
            w.len(),
            booster.trees.len()
        )));
    }
    let mut forest = Forest {
        groups,
        features,
        ..Forest::default()
    };
    for (t, (tree, &group)) in booster.trees.iter().zip(&booster.tree_info).enumerate() {
        // f32 × f32 is exact in f64, so rounding the product to f32 when it is summed gives
        // XGBoost's own single-precision product.
        let weight = weights.as_ref().map_or(1.0, |w| f64::from(w[t]));
        append_tree(&mut forest, t, tree, weight)?;
        forest.tree_group.push(group);
    }
    forest
        .validate()
        .map_err(|e| FormatError(format!("learner.gradient_booster.model.trees: {e}")))?;
    Ok(XgboostModel {
        forest,
        objective,
        objective_name,
        base_margin,
    })
}

/// Appends one tree's nodes to `forest`, translating child indices to absolute ones.
fn append_tree(forest: &mut Forest, t: usize, tree: &Tree, weight: f64) -> Result<(), FormatError> {
    let n = tree.left_children.len();
    let at =
        |field: &str| FormatError(format!("learner.gradient_booster.model.trees[{t}].{field}"));
    if [
        tree.right_children.len(),
        tree.split_indices.len(),
        tree.split_conditions.len(),
        tree.default_left.len(),
    ]
    .iter()
    .any(|&l| l != n)
        || n == 0
        || !(tree.split_type.is_empty() || tree.split_type.len() == n)
    {
        return Err(FormatError(format!(
            "learner.gradient_booster.model.trees[{t}]: node arrays are empty or differ in length"
        )));
    }
    let categories = categorical_sets(tree).map_err(|e| at(&e))?;
    let offset = forest.nodes.len();
    forest.roots.push(offset as u32);
    for i in 0..n {
        let (left, right) = (tree.left_children[i], tree.right_children[i]);
        if left == -1 {
            let value = f64::from(tree.split_conditions[i]) * weight;
            forest.nodes.push(Node::Leaf {
                value,
                linear: None,
            });
            continue;
        }
        let child = |c: i64, name: &str| {
            usize::try_from(c)
                .ok()
                .filter(|&c| c < n)
                .map(|c| (c + offset) as u32)
                .ok_or_else(|| at(&format!("{name}[{i}]: {c} is not a node of this tree")))
        };
        let (left, right) = (
            child(left, "left_children")?,
            child(right, "right_children")?,
        );
        let feature = u32::try_from(tree.split_indices[i]).map_err(|_| at("split_indices"))?;
        let default_left = tree.default_left[i].get();
        let branch = match tree.split_type.get(i).copied().unwrap_or(0) {
            0 => Branch {
                feature,
                split: Split::Less(tree.split_conditions[i]),
                left,
                right,
                default_left,
            },
            1 => {
                let members = categories
                    .iter()
                    .find(|(node, _)| *node as usize == i)
                    .map(|(_, members)| members.clone())
                    .ok_or_else(|| at(&format!("categories_nodes: node {i} has no categories")))?;
                // XGBoost sends the listed categories right; our Category split sends members
                // left, so the children (and the missing side) swap.
                forest
                    .category_sets
                    .push(CategorySet::from_members(members, false));
                Branch {
                    feature,
                    split: Split::Category((forest.category_sets.len() - 1) as u32),
                    left: right,
                    right: left,
                    default_left: !default_left,
                }
            }
            other => return Err(at(&format!("split_type[{i}]: unknown split type {other}"))),
        };
        forest.nodes.push(Node::Branch(branch));
    }
    Ok(())
}

/// The category list of every categorical node of `tree`.
fn categorical_sets(tree: &Tree) -> Result<Vec<(u32, Vec<u32>)>, String> {
    let nodes = &tree.categories_nodes;
    if tree.categories_segments.len() != nodes.len() || tree.categories_sizes.len() != nodes.len() {
        return Err(
            "categories_nodes, categories_segments and categories_sizes differ in length".into(),
        );
    }
    nodes
        .iter()
        .enumerate()
        .map(|(k, &node)| {
            let start = tree.categories_segments[k] as usize;
            let end = start.saturating_add(tree.categories_sizes[k] as usize);
            let members = tree.categories.get(start..end).ok_or_else(|| {
                format!("categories_segments[{k}]: {start}..{end} is outside categories")
            })?;
            if let Some(c) = members.iter().find(|&&c| c >= 1 << 24) {
                return Err(format!("categories: category {c} is too large"));
            }
            Ok((node, members.to_vec()))
        })
        .collect()
}

/// `base_score` is written as `"5E-1"`, or since XGBoost 3 as a list `"[5E-1]"` /
/// `"[1E0,2E0]"` (one per target or class).
fn parse_base_score(text: &str) -> Result<Vec<f32>, FormatError> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            FormatError(format!(
                "learner.learner_model_param.base_score: not a number list: {text:?}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(objective: &str, base_score: &str, extra: &str) -> String {
        format!(
            r#"{{"learner": {{
                "learner_model_param": {{"base_score": "{base_score}", "num_class": "0", "num_feature": "2"}},
                "objective": {{"name": "{objective}"}},
                "gradient_booster": {{"name": "gbtree", "model": {{
                    "tree_info": [0],
                    "trees": [{{"left_children": [1, -1, -1], "right_children": [2, -1, -1],
                        "split_indices": [1, 0, 0], "split_conditions": [0.5, -0.25, 0.75],
                        "default_left": [1, 0, 0], "split_type": [0, 0, 0]{extra}}}]}}}}}}}}"#
        )
    }

    #[test]
    fn reads_trees_objective_and_base_score() {
        let m = parse_json(model("binary:logistic", "[5E-1]", "").as_bytes()).unwrap();
        assert_eq!(m.objective, Objective::BinaryLogistic { scale: 1.0 });
        assert_eq!(m.base_margin, vec![0.0]);
        let Node::Branch(b) = &m.forest.nodes[0] else {
            panic!("root is a branch")
        };
        assert_eq!((b.feature, b.default_left), (1, true));
        assert_eq!(b.split, Split::Less(0.5));
        assert!(matches!(m.forest.nodes[1], Node::Leaf { value, .. } if value == -0.25));
        let m = parse_json(model("reg:squarederror", "1.5E0", "").as_bytes()).unwrap();
        assert_eq!(m.base_margin, vec![1.5]);
    }

    #[test]
    fn rejects_unknown_objective_and_bad_references() {
        let err = parse_json(model("reg:mystery", "0", "").as_bytes())
            .unwrap_err()
            .0;
        assert!(err.contains("reg:mystery"), "{err}");
        let bad = model("reg:squarederror", "0", "").replace("[1, -1, -1]", "[9, -1, -1]");
        let err = parse_json(bad.as_bytes()).unwrap_err().0;
        assert!(err.contains("left_children[0]"), "{err}");
        let err = parse_json(b"{\"learner\": {").unwrap_err().0;
        assert!(err.contains("not an XGBoost JSON model"), "{err}");
    }
}
