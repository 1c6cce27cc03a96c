//! [`Forest`]: the trees of one model in one format-neutral description, and the reference
//! walker that defines what every split means.
//!
//! Every parser (XGBoost, LightGBM, ONNX-ML) translates its own split semantics into the few
//! [`Split`] kinds here, so the fast evaluator ([`crate::compiled`]) has one meaning to get
//! right and the reference walk ([`Forest::leaf_value`]) is the oracle it is tested against.
//! Child indices are absolute (into [`Forest::nodes`]) and always point to later nodes, so every
//! walk ends.

/// A model's trees, each adding one value to one output group (class) per row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Forest {
    /// Every node of every tree.
    pub nodes: Vec<Node>,
    /// Root node of each tree, in summation order.
    pub roots: Vec<u32>,
    /// Output group each tree adds to.
    pub tree_group: Vec<u32>,
    /// Number of output groups (1, or the number of classes).
    pub groups: usize,
    /// Number of input features.
    pub features: usize,
    /// The category sets that [`Split::Category`] nodes refer to.
    pub category_sets: Vec<CategorySet>,
    /// The value sets that [`Split::Member`] nodes refer to.
    pub member_sets: Vec<MemberSet>,
    /// The linear models that [`Node::Leaf::linear`] leaves refer to (LightGBM `linear_tree`).
    pub linear_leaves: Vec<LinearLeaf>,
}

/// One node.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A leaf: the value the tree adds.
    Leaf {
        /// The value, or the fallback of a linear leaf when one of its features is missing.
        value: f64,
        /// Index into [`Forest::linear_leaves`] when the leaf is a linear model.
        linear: Option<u32>,
    },
    /// An internal node.
    Branch(Branch),
}

/// An internal node: a test on one feature and where each outcome goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Branch {
    /// The feature tested.
    pub feature: u32,
    /// The test; when it holds the row goes `left`.
    pub split: Split,
    /// Absolute index of the child taken when the test holds.
    pub left: u32,
    /// Absolute index of the child taken otherwise.
    pub right: u32,
    /// Where a missing value (NaN) goes: `left` when true.
    pub default_left: bool,
}

/// The test of a [`Branch`]. A missing (NaN) value never reaches the test: it goes the default
/// way.
#[derive(Clone, Debug, PartialEq)]
pub enum Split {
    /// `x < threshold` (XGBoost; LightGBM's and ONNX's `<=` become `<` on the next float up).
    Less(f32),
    /// LightGBM `missing_type=Zero`: `x` within ±1e-35 (or NaN) is missing and goes the default
    /// way; otherwise `x < threshold`.
    LessZeroMissing(f32),
    /// `x == value` (ONNX `BRANCH_EQ`; `BRANCH_NEQ` is this with the children swapped).
    Equal(f32),
    /// `x`, as an integer category, is in [`Forest::category_sets`]`[index]`.
    Category(u32),
    /// `x` equals one of the values of [`Forest::member_sets`]`[index]` (ONNX `BRANCH_MEMBER`:
    /// exact equality, so 2.5 is not a member of {2, 3}).
    Member(u32),
}

/// A set of values for [`Split::Member`], sorted for binary search.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberSet {
    values: Vec<f32>,
}

impl MemberSet {
    /// A set of `values`; NaN is never a member (missing values go the default way), and -0 and
    /// +0 are the same.
    pub fn new(values: impl IntoIterator<Item = f32>) -> MemberSet {
        let mut values: Vec<f32> = values
            .into_iter()
            .filter(|v| !v.is_nan())
            .map(|v| v + 0.0)
            .collect();
        values.sort_by(f32::total_cmp);
        values.dedup();
        MemberSet { values }
    }

    /// Whether `x` (not NaN) is a member.
    pub fn contains(&self, x: f32) -> bool {
        let x = x + 0.0;
        self.values.binary_search_by(|v| v.total_cmp(&x)).is_ok()
    }
}

/// A set of integer categories, as a bitset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CategorySet {
    /// Bit `c % 32` of word `c / 32` is set when category `c` is a member.
    pub words: Vec<u32>,
    /// LightGBM truncates `x` toward zero before deciding it is negative (so -0.5 is category
    /// 0); XGBoost treats every negative `x` as no category. Non-categories are never members.
    pub truncate_before_sign_check: bool,
}

impl CategorySet {
    /// A set from its member categories.
    pub fn from_members(members: impl IntoIterator<Item = u32>, truncate: bool) -> CategorySet {
        let mut words = Vec::new();
        for c in members {
            let word = (c / 32) as usize;
            if word >= words.len() {
                words.resize(word + 1, 0);
            }
            words[word] |= 1 << (c % 32);
        }
        CategorySet {
            words,
            truncate_before_sign_check: truncate,
        }
    }

    /// Whether `x` (not NaN) is a member.
    pub fn contains(&self, x: f32) -> bool {
        let negative = if self.truncate_before_sign_check {
            x <= -1.0
        } else {
            x < 0.0
        };
        if negative || x >= 4_294_967_296.0 {
            return false;
        }
        let c = x as u32; // truncates toward zero, as both libraries' int casts do
        self.words
            .get((c / 32) as usize)
            .is_some_and(|w| w & (1 << (c % 32)) != 0)
    }
}

/// A leaf that is a linear model of some features (LightGBM `linear_tree`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinearLeaf {
    /// The intercept.
    pub constant: f64,
    /// The features the model uses.
    pub features: Vec<u32>,
    /// One coefficient per feature.
    pub coefficients: Vec<f64>,
}

/// The largest `f32` not above `t`: for a float32 `x`, `x <= t` exactly when
/// `x < round_down(t).next_up()`.
pub fn round_down(t: f64) -> f32 {
    let f = t as f32;
    if f64::from(f) > t { f.next_down() } else { f }
}

/// The smallest `f32` not below `t`: for a float32 `x`, `x < t` exactly when `x < round_up(t)`.
pub fn round_up(t: f64) -> f32 {
    let f = t as f32;
    if f64::from(f) < t { f.next_up() } else { f }
}

/// LightGBM's `kZeroThreshold`: values this close to zero count as zero.
const ZERO_THRESHOLD: f32 = 1e-35;

/// A forest whose node references do not hold together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidForest(pub String);

impl Forest {
    /// Checks that every child, feature, category-set and linear-leaf reference is in range,
    /// that thresholds are numbers, and that children come after their parent (so walks end).
    pub fn validate(&self) -> Result<(), InvalidForest> {
        let n = self.nodes.len();
        let fail = |m: String| Err(InvalidForest(m));
        if self.roots.len() != self.tree_group.len() {
            return fail("tree tables differ in length".into());
        }
        if self.groups == 0 {
            return fail("the model has no output groups".into());
        }
        for (t, (&root, &group)) in self.roots.iter().zip(&self.tree_group).enumerate() {
            if root as usize >= n {
                return fail(format!("tree {t}: root {root} is not a node"));
            }
            if group as usize >= self.groups {
                return fail(format!(
                    "tree {t}: output group {group} but the model has {}",
                    self.groups
                ));
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            match node {
                Node::Leaf { linear, .. } => {
                    if let Some(l) = linear {
                        let Some(leaf) = self.linear_leaves.get(*l as usize) else {
                            return fail(format!("node {i}: linear leaf {l} does not exist"));
                        };
                        if leaf.features.len() != leaf.coefficients.len() {
                            return fail(format!(
                                "linear leaf {l}: {} features but {} coefficients",
                                leaf.features.len(),
                                leaf.coefficients.len()
                            ));
                        }
                        if let Some(f) =
                            leaf.features.iter().find(|&&f| f as usize >= self.features)
                        {
                            return fail(format!(
                                "linear leaf {l}: feature {f} but the model has {} features",
                                self.features
                            ));
                        }
                    }
                }
                Node::Branch(b) => {
                    if b.feature as usize >= self.features {
                        return fail(format!(
                            "node {i}: split feature {} but the model has {} features",
                            b.feature, self.features
                        ));
                    }
                    match b.split {
                        Split::Less(t) | Split::LessZeroMissing(t) | Split::Equal(t)
                            if t.is_nan() =>
                        {
                            return fail(format!("node {i}: threshold is NaN"));
                        }
                        Split::Category(s) if s as usize >= self.category_sets.len() => {
                            return fail(format!("node {i}: category set {s} does not exist"));
                        }
                        Split::Member(s) if s as usize >= self.member_sets.len() => {
                            return fail(format!("node {i}: member set {s} does not exist"));
                        }
                        _ => {}
                    }
                    for child in [b.left, b.right] {
                        if child as usize >= n || child as usize <= i {
                            return fail(format!(
                                "node {i}: child {child} is not a later node of the same tree"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The value tree `tree` adds for row `x`: the reference semantics of every split.
    pub fn leaf_value(&self, tree: usize, x: &[f32]) -> f64 {
        let mut node = self.roots[tree] as usize;
        loop {
            match &self.nodes[node] {
                Node::Leaf { value, linear } => {
                    return match linear {
                        Some(l) => self.linear_leaves[*l as usize].eval(x).unwrap_or(*value),
                        None => *value,
                    };
                }
                Node::Branch(b) => {
                    let go_left = b.goes_left(x[b.feature as usize], self);
                    node = if go_left { b.left } else { b.right } as usize;
                }
            }
        }
    }

    /// Adds every tree's value to `margins` (`rows × groups`, row-major) for `x`
    /// (`rows × features`, row-major), tree by tree for each row, with the reference walk.
    pub fn accumulate_reference<M: Margin>(&self, x: &[f32], margins: &mut [M]) {
        let width = self.features.max(1);
        for (row, out) in x.chunks(width).zip(margins.chunks_mut(self.groups)) {
            for (t, &group) in self.tree_group.iter().enumerate() {
                out[group as usize].add(self.leaf_value(t, row));
            }
        }
    }
}

impl Branch {
    /// Whether value `x` of the tested feature goes left (`forest` holds the sets).
    #[inline]
    pub fn goes_left(&self, x: f32, forest: &Forest) -> bool {
        if x.is_nan() {
            return self.default_left;
        }
        match self.split {
            Split::Less(t) => x < t,
            Split::LessZeroMissing(t) => {
                if (-ZERO_THRESHOLD..=ZERO_THRESHOLD).contains(&x) {
                    self.default_left
                } else {
                    x < t
                }
            }
            Split::Equal(v) => x == v,
            Split::Category(s) => forest.category_sets[s as usize].contains(x),
            Split::Member(s) => forest.member_sets[s as usize].contains(x),
        }
    }
}

impl LinearLeaf {
    /// The linear model's value, or `None` when one of its features is missing (LightGBM then
    /// uses the leaf's plain value).
    pub fn eval(&self, x: &[f32]) -> Option<f64> {
        let mut sum = self.constant;
        for (&f, &c) in self.features.iter().zip(&self.coefficients) {
            let v = x[f as usize];
            if v.is_nan() {
                return None;
            }
            sum += c * f64::from(v);
        }
        Some(sum)
    }
}

/// The number type margins are summed in: `f32` where the training library sums in single
/// precision (XGBoost), `f64` where it sums in double (LightGBM), so results match bit for bit
/// as far as the library's own order of operations allows.
pub trait Margin:
    Copy + Default + Send + Sync + std::fmt::Debug + std::ops::AddAssign + 'static
{
    /// `self += v`, with `v` first rounded to this type.
    fn add(&mut self, v: f64);
    /// Of the same leaf values as `f64` and rounded to `f32`, the ones of this type (the
    /// compiled walks add leaves as they are, with no rounding in the loop).
    fn leaf_table<'a>(f64s: &'a [f64], f32s: &'a [f32]) -> &'a [Self];
    /// This value as `f64`.
    fn to_f64(self) -> f64;
    /// `v` rounded to this type.
    fn from_f64(v: f64) -> Self;
}

impl Margin for f32 {
    #[inline]
    fn add(&mut self, v: f64) {
        *self += v as f32;
    }
    #[inline]
    fn leaf_table<'a>(_: &'a [f64], f32s: &'a [f32]) -> &'a [f32] {
        f32s
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Margin for f64 {
    #[inline]
    fn add(&mut self, v: f64) {
        *self += v;
    }
    #[inline]
    fn leaf_table<'a>(f64s: &'a [f64], _: &'a [f32]) -> &'a [f64] {
        f64s
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One stump on feature 0 at 0.5: left leaf -1, right leaf +1, missing goes right.
    pub(crate) fn stump(split: Split) -> Forest {
        Forest {
            nodes: vec![
                Node::Branch(Branch {
                    feature: 0,
                    split,
                    left: 1,
                    right: 2,
                    default_left: false,
                }),
                Node::Leaf {
                    value: -1.0,
                    linear: None,
                },
                Node::Leaf {
                    value: 1.0,
                    linear: None,
                },
            ],
            roots: vec![0],
            tree_group: vec![0],
            groups: 1,
            features: 1,
            category_sets: vec![CategorySet::from_members([1, 33], false)],
            member_sets: vec![MemberSet::new([1.0, 2.5, -0.0, f32::NAN])],
            linear_leaves: vec![],
        }
    }

    fn run(f: &Forest, x: &[f32]) -> Vec<f64> {
        let mut m = vec![0.0; x.len()];
        f.accumulate_reference(x, &mut m);
        m
    }

    #[test]
    fn splits_left_below_the_threshold_and_follows_the_default_on_nan() {
        let f = stump(Split::Less(0.5));
        f.validate().unwrap();
        assert_eq!(run(&f, &[0.2, 0.5, f32::NAN]), vec![-1.0, 1.0, 1.0]);
    }

    #[test]
    fn zero_counts_as_missing_only_for_zero_missing_splits() {
        let f = stump(Split::LessZeroMissing(0.5));
        assert_eq!(
            run(&f, &[0.0, 1e-36, 0.2, f32::NAN]),
            vec![1.0, 1.0, -1.0, 1.0]
        );
    }

    #[test]
    fn categories_are_members_of_the_bitset() {
        let f = stump(Split::Category(0));
        let x = [1.0, 1.9, 33.0, 2.0, -0.5, 1e12];
        assert_eq!(run(&f, &x), vec![-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]);
        let lightgbm = CategorySet::from_members([0], true);
        assert!(lightgbm.contains(-0.5) && !lightgbm.contains(-1.0));
        assert!(!CategorySet::from_members([0], false).contains(-0.5));
    }

    #[test]
    fn members_are_exactly_equal_values() {
        let f = stump(Split::Member(0));
        f.validate().unwrap();
        let x = [1.0, 2.5, 0.0, 2.0, 1.5, f32::NAN];
        assert_eq!(run(&f, &x), vec![-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]);
        assert!(
            stump(Split::Member(1))
                .validate()
                .unwrap_err()
                .0
                .contains("member set 1")
        );
    }

    #[test]
    fn linear_leaves_fall_back_to_the_value_on_missing_features() {
        let mut f = stump(Split::Less(0.5));
        f.linear_leaves.push(LinearLeaf {
            constant: 0.5,
            features: vec![0],
            coefficients: vec![2.0],
        });
        f.nodes[2] = Node::Leaf {
            value: 7.0,
            linear: Some(0),
        };
        f.validate().unwrap();
        assert_eq!(run(&f, &[3.0, f32::NAN]), vec![6.5, 7.0]);
    }

    #[test]
    fn rejects_dangling_references() {
        let mut f = stump(Split::Less(0.5));
        let Node::Branch(b) = &mut f.nodes[0] else {
            unreachable!()
        };
        b.left = 7;
        assert!(f.validate().unwrap_err().0.contains("child 7"));
        let mut f = stump(Split::Less(0.5));
        f.features = 0;
        assert!(f.validate().unwrap_err().0.contains("feature 0"));
        let f = stump(Split::Category(4));
        assert!(f.validate().unwrap_err().0.contains("category set 4"));
        let f = stump(Split::Less(f32::NAN));
        assert!(f.validate().unwrap_err().0.contains("NaN"));
        let mut f = stump(Split::Less(0.5));
        let Node::Branch(b) = &mut f.nodes[0] else {
            unreachable!()
        };
        b.left = 0;
        assert!(f.validate().is_err(), "a self-loop never ends");
    }
}
