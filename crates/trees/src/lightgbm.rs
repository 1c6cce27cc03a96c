//! LightGBM's text model format (`Booster.save_model("model.txt")`) into a [`Forest`].
//!
//! The file is a header of `key=value` lines (`num_tree_per_iteration`, `max_feature_idx`,
//! `objective`, an optional bare `average_output` line), then one block per tree starting
//! `Tree=N` with space-separated arrays: internal nodes `split_feature`, `threshold`,
//! `decision_type`, `left_child`, `right_child` (a negative child `c` is leaf `!c`), leaves
//! `leaf_value`; categorical splits' bitsets `cat_boundaries`/`cat_threshold`; linear leaves
//! `leaf_const`/`num_features`/`leaf_features`/`leaf_coeff`; then `end of trees` and sections
//! we do not need.
//!
//! LightGBM tests `x <= threshold` in double precision on the float32 input widened to double;
//! for a float32 `x` that is exactly `x < next_up(round_down_to_f32(threshold))`, so thresholds
//! become [`Split::Less`] with no loss. `decision_type` bits: 1 categorical, 2 default left,
//! bits 2–3 the missing type (0 None: NaN counts as 0; 1 Zero: 0 and NaN go the default way;
//! 2 NaN: NaN goes the default way).

use crate::forest::{Branch, CategorySet, Forest, LinearLeaf, Node, Split, round_down};
use crate::objective::Objective;
use crate::xgboost::FormatError;

/// A parsed LightGBM model.
#[derive(Clone, Debug, PartialEq)]
pub struct LightgbmModel {
    /// The trees.
    pub forest: Forest,
    /// The objective's transformation.
    pub objective: Objective,
    /// The objective line as LightGBM writes it (`binary sigmoid:1`).
    pub objective_name: String,
}

/// Parses the text of a `model.txt`.
pub fn parse(text: &str) -> Result<LightgbmModel, FormatError> {
    let mut lines = text.lines().enumerate().peekable();
    match lines.next() {
        Some((_, first)) if first.trim() == "tree" => {}
        _ => {
            return Err(FormatError(
                "not a LightGBM text model: the first line is not 'tree'".into(),
            ));
        }
    }
    let mut header = Header::default();
    while let Some(&(_, line)) = lines.peek() {
        if line.starts_with("Tree=") || line.starts_with("end of trees") {
            break;
        }
        lines.next();
        header.read(line.trim())?;
    }
    let features = header
        .max_feature_idx
        .ok_or_else(|| FormatError("header: max_feature_idx is missing".into()))?
        .checked_add(1)
        .ok_or_else(|| FormatError("header: max_feature_idx is too large".into()))?;
    let per_iteration = header.num_tree_per_iteration.unwrap_or(1);
    if per_iteration == 0 {
        return Err(FormatError("header: num_tree_per_iteration is 0".into()));
    }
    let (objective, objective_name) = objective(header.objective.as_deref().unwrap_or(""))?;
    if objective == Objective::Softmax && per_iteration < 2 {
        return Err(FormatError(format!(
            "header: objective '{objective_name}' needs num_tree_per_iteration ≥ 2, got {per_iteration}"
        )));
    }
    let mut forest = Forest {
        groups: per_iteration,
        features,
        ..Forest::default()
    };
    let mut ended = false;
    while let Some((number, line)) = lines.next() {
        let line = line.trim();
        if line.starts_with("end of trees") {
            ended = true;
            break;
        }
        if line.is_empty() {
            continue;
        }
        let Some(name) = line.strip_prefix("Tree=") else {
            return Err(FormatError(format!(
                "line {}: expected 'Tree=N' or 'end of trees', found {:?}",
                number + 1,
                truncate(line)
            )));
        };
        let mut block = TreeBlock {
            name: format!("Tree={name}"),
            fields: Vec::new(),
        };
        while let Some(&(_, line)) = lines.peek() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("Tree=") || line.starts_with("end of trees") {
                break;
            }
            lines.next();
            let (key, value) = line.split_once('=').ok_or_else(|| {
                FormatError(format!(
                    "{}: line {:?} is not key=value",
                    block.name,
                    truncate(line)
                ))
            })?;
            block.fields.push((key.to_owned(), value.to_owned()));
        }
        let t = forest.roots.len();
        block.append_to(&mut forest)?;
        forest.tree_group.push((t % per_iteration) as u32);
    }
    if !ended {
        return Err(FormatError(
            "the file ends before 'end of trees' (truncated?)".into(),
        ));
    }
    if !forest.roots.len().is_multiple_of(per_iteration) {
        return Err(FormatError(format!(
            "{} trees is not a whole number of iterations of {per_iteration} trees",
            forest.roots.len()
        )));
    }
    if header.average_output && !forest.roots.is_empty() {
        let iterations = (forest.roots.len() / per_iteration) as f64;
        for node in &mut forest.nodes {
            if let Node::Leaf { value, .. } = node {
                *value /= iterations;
            }
        }
        for leaf in &mut forest.linear_leaves {
            leaf.constant /= iterations;
            leaf.coefficients.iter_mut().for_each(|c| *c /= iterations);
        }
    }
    forest
        .validate()
        .map_err(|e| FormatError(format!("trees: {e}")))?;
    Ok(LightgbmModel {
        forest,
        objective,
        objective_name,
    })
}

/// The header fields we read.
#[derive(Default)]
struct Header {
    max_feature_idx: Option<usize>,
    num_tree_per_iteration: Option<usize>,
    objective: Option<String>,
    average_output: bool,
}

impl Header {
    fn read(&mut self, line: &str) -> Result<(), FormatError> {
        if line == "average_output" {
            self.average_output = true;
            return Ok(());
        }
        let Some((key, value)) = line.split_once('=') else {
            return Ok(());
        };
        let count = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| FormatError(format!("header: {key}: not a count: {:?}", truncate(v))))
        };
        match key {
            "max_feature_idx" => self.max_feature_idx = Some(count(value)?),
            "num_tree_per_iteration" => self.num_tree_per_iteration = Some(count(value)?),
            "objective" => self.objective = Some(value.trim().to_owned()),
            _ => {}
        }
        Ok(())
    }
}

/// The objective line's transformation.
fn objective(line: &str) -> Result<(Objective, String), FormatError> {
    let mut tokens = line.split_whitespace();
    let name = tokens.next().unwrap_or("");
    let mut sigmoid = 1.0;
    let mut sqrt = false;
    for token in tokens {
        if let Some(v) = token.strip_prefix("sigmoid:") {
            sigmoid = v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| {
                    FormatError(format!("header: objective: bad sigmoid parameter {v:?}"))
                })?;
        } else if token == "sqrt" {
            sqrt = true;
        }
    }
    let objective = match name {
        "binary" => Objective::BinaryLogistic { scale: sigmoid },
        "multiclass" => Objective::Softmax,
        "multiclassova" => Objective::OneVsRest { scale: sigmoid },
        "regression" | "regression_l1" | "huber" | "fair" | "quantile" | "mape" if sqrt => {
            Objective::SignedSquare
        }
        "" | "regression" | "regression_l1" | "huber" | "fair" | "quantile" | "mape"
        | "lambdarank" | "rank_xendcg" | "custom" => Objective::Identity,
        "poisson" | "gamma" | "tweedie" => Objective::Exp,
        "cross_entropy" => Objective::Sigmoid { scale: 1.0 },
        "cross_entropy_lambda" => Objective::Softplus,
        other => {
            return Err(FormatError(format!(
                "header: objective '{}' is not supported",
                truncate(other)
            )));
        }
    };
    Ok((objective, line.to_owned()))
}

/// One `Tree=N` block's fields.
struct TreeBlock {
    name: String,
    fields: Vec<(String, String)>,
}

impl TreeBlock {
    fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn error(&self, key: &str, message: impl std::fmt::Display) -> FormatError {
        FormatError(format!("{}.{key}: {message}", self.name))
    }

    /// The space-separated array `key` of exactly `len` values (`None`: any length).
    fn array<T: std::str::FromStr>(
        &self,
        key: &str,
        len: Option<usize>,
    ) -> Result<Vec<T>, FormatError> {
        let Some(text) = self.field(key) else {
            if len == Some(0) {
                return Ok(Vec::new());
            }
            return Err(self.error(key, "missing"));
        };
        let values = text
            .split_whitespace()
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| self.error(key, format!("not a number: {:?}", truncate(v))))
            })
            .collect::<Result<Vec<T>, _>>()?;
        if let Some(len) = len
            && values.len() != len
        {
            return Err(self.error(key, format!("{} values, expected {len}", values.len())));
        }
        Ok(values)
    }

    /// Appends this tree's nodes (internal nodes, then leaves) to `forest`.
    fn append_to(&self, forest: &mut Forest) -> Result<(), FormatError> {
        let leaves: usize = self
            .field("num_leaves")
            .ok_or_else(|| self.error("num_leaves", "missing"))?
            .trim()
            .parse()
            .ok()
            .filter(|&l| l >= 1)
            .ok_or_else(|| self.error("num_leaves", "not a positive count"))?;
        let internal = leaves - 1;
        let split_feature: Vec<u32> = self.array("split_feature", Some(internal))?;
        let threshold: Vec<f64> = self.array("threshold", Some(internal))?;
        let decision_type: Vec<u8> = self.array("decision_type", Some(internal))?;
        let left_child: Vec<i64> = self.array("left_child", Some(internal))?;
        let right_child: Vec<i64> = self.array("right_child", Some(internal))?;
        let leaf_value: Vec<f64> = self.array("leaf_value", Some(leaves))?;
        let has_categorical = decision_type.iter().any(|d| d & 1 != 0);
        let (cat_boundaries, cat_threshold): (Vec<usize>, Vec<u32>) = if has_categorical {
            (
                self.array("cat_boundaries", None)?,
                self.array("cat_threshold", None)?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let linear = self.field("is_linear").map(str::trim) == Some("1");

        let offset = forest.nodes.len();
        let node_of = |c: i64, key: &str, i: usize| -> Result<u32, FormatError> {
            let index = if c >= 0 {
                usize::try_from(c).ok().filter(|&c| c < internal)
            } else {
                usize::try_from(!c)
                    .ok()
                    .filter(|&l| l < leaves)
                    .map(|l| internal + l)
            };
            index
                .map(|n| (offset + n) as u32)
                .ok_or_else(|| self.error(key, format!("[{i}]: {c} is not a node of this tree")))
        };
        for i in 0..internal {
            let d = decision_type[i];
            let left = node_of(left_child[i], "left_child", i)?;
            let right = node_of(right_child[i], "right_child", i)?;
            let feature = split_feature[i];
            let default_left = d & 2 != 0;
            let branch = if d & 1 != 0 {
                let k = threshold[i];
                let words = (k >= 0.0 && k.fract() == 0.0)
                    .then_some(k as usize)
                    .and_then(|k| {
                        Some((
                            *cat_boundaries.get(k)?,
                            *cat_boundaries.get(k.checked_add(1)?)?,
                        ))
                    })
                    .and_then(|(start, end)| cat_threshold.get(start..end))
                    .ok_or_else(|| {
                        self.error("threshold", format!("[{i}]: {k} is not a category bitset"))
                    })?;
                forest.category_sets.push(CategorySet {
                    words: words.to_vec(),
                    truncate_before_sign_check: true,
                });
                // NaN always goes right for categorical splits.
                Branch {
                    feature,
                    split: Split::Category((forest.category_sets.len() - 1) as u32),
                    left,
                    right,
                    default_left: false,
                }
            } else {
                let t = threshold[i];
                if t.is_nan() {
                    return Err(self.error("threshold", format!("[{i}]: NaN")));
                }
                let less = round_down(t).next_up();
                let (split, default_left) = match (d >> 2) & 3 {
                    // None: NaN is treated as 0.
                    0 => (Split::Less(less), 0.0 <= t),
                    1 => (Split::LessZeroMissing(less), default_left),
                    2 => (Split::Less(less), default_left),
                    m => {
                        return Err(
                            self.error("decision_type", format!("[{i}]: unknown missing type {m}"))
                        );
                    }
                };
                Branch {
                    feature,
                    split,
                    left,
                    right,
                    default_left,
                }
            };
            forest.nodes.push(Node::Branch(branch));
        }
        let linear_models = if linear {
            self.linear_leaves(leaves)?
        } else {
            Vec::new()
        };
        for (l, &value) in leaf_value.iter().enumerate() {
            let linear = linear_models.get(l).map(|model| {
                forest.linear_leaves.push(model.clone());
                (forest.linear_leaves.len() - 1) as u32
            });
            forest.nodes.push(Node::Leaf { value, linear });
        }
        forest.roots.push(offset as u32);
        Ok(())
    }

    /// The linear models of a `linear_tree` tree's leaves.
    fn linear_leaves(&self, leaves: usize) -> Result<Vec<LinearLeaf>, FormatError> {
        let constants: Vec<f64> = self.array("leaf_const", Some(leaves))?;
        let counts: Vec<usize> = self.array("num_features", Some(leaves))?;
        let total = counts
            .iter()
            .try_fold(0usize, |a, &c| a.checked_add(c))
            .ok_or_else(|| self.error("num_features", "too large"))?;
        let features: Vec<u32> = self.array("leaf_features", Some(total))?;
        let coefficients: Vec<f64> = self.array("leaf_coeff", Some(total))?;
        let mut at = 0;
        Ok(constants
            .iter()
            .zip(&counts)
            .map(|(&constant, &count)| {
                let leaf = LinearLeaf {
                    constant,
                    features: features[at..at + count].to_vec(),
                    coefficients: coefficients[at..at + count].to_vec(),
                };
                at += count;
                leaf
            })
            .collect())
    }
}

/// At most 60 characters of `s`, for error messages.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUMP: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\n\
        max_feature_idx=1\nobjective=binary sigmoid:2\n\nTree=0\nnum_leaves=2\nnum_cat=0\n\
        split_feature=1\nthreshold=0.5\ndecision_type=2\nleft_child=-1\nright_child=-2\n\
        leaf_value=-1 1\nshrinkage=1\n\n\nend of trees\n";

    #[test]
    fn reads_a_stump() {
        let m = parse(STUMP).unwrap();
        assert_eq!(m.objective, Objective::BinaryLogistic { scale: 2.0 });
        assert_eq!(m.forest.features, 2);
        let Node::Branch(b) = &m.forest.nodes[0] else {
            panic!()
        };
        // x <= 0.5  <=>  x < next_up(0.5f32)
        assert_eq!(b.split, Split::Less(0.5f32.next_up()));
        assert!(b.default_left);
        assert_eq!(m.forest.leaf_value(0, &[0.0, 0.5]), -1.0);
        assert_eq!(m.forest.leaf_value(0, &[0.0, 0.500_000_06]), 1.0);
    }

    #[test]
    fn thresholds_round_down_to_the_float_below() {
        assert_eq!(round_down(0.1), 0.1f32.next_down());
        let t = 0.1f64;
        let d = round_down(t);
        assert!(f64::from(d) <= t && f64::from(d.next_up()) > t);
        assert_eq!(round_down(1e300), f32::MAX);
        assert_eq!(round_down(-1e300), f32::NEG_INFINITY);
    }

    #[test]
    fn rejects_truncated_files_and_bad_references() {
        let err = parse(&STUMP[..STUMP.len() - 14]).unwrap_err().0;
        assert!(err.contains("truncated"), "{err}");
        let err = parse(&STUMP.replace("left_child=-1", "left_child=-7"))
            .unwrap_err()
            .0;
        assert!(err.contains("Tree=0.left_child"), "{err}");
        let err = parse(&STUMP.replace("binary sigmoid:2", "mystery"))
            .unwrap_err()
            .0;
        assert!(err.contains("mystery"), "{err}");
        let err = parse(&STUMP.replace("threshold=0.5", "threshold=x"))
            .unwrap_err()
            .0;
        assert!(err.contains("Tree=0.threshold"), "{err}");
        assert!(parse("{\"learner\": 1}").is_err());
    }
}
