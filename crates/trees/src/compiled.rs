//! [`CompiledForest`]: the batch evaluator. A [`Forest`] is compiled once, at load, into a
//! layout made for walking many trees and rows at once without branches.
//!
//! # Layout
//! Every tree whose splits are all plain numeric comparisons (`Split::Less`) is renumbered
//! breadth-first into one shared array of 12-byte nodes, each node's two children adjacent
//! (`first`, `first + 1`). Values are compared as *keys*: an `f32` mapped to a `u32` whose
//! unsigned order is the float order, with NaN mapped to 0, below every number. A node then
//! holds a key and a *slot* (which feature, and whether to read the feature or its negation)
//! and a step is one integer comparison:
//!
//! ```text
//! next = node.first + (key_of(slot) > node.key)
//! ```
//!
//! The missing-value direction is folded in: a node whose missing values go left tests
//! `x >= t` as `key(x) > key(prev(t))`; one whose missing values go right swaps its children
//! and tests `x < t` as `key(-x) > key(-t)`. NaN's key (0) is never greater, so it always takes
//! `first`, the default side. A leaf points to itself with the largest key, so a walk may take
//! more steps than the leaf's depth and stay put: every walk runs a fixed number of steps
//! (the tree's depth) with no data-dependent branch.
//!
//! # Evaluation
//! - Blocks of [`LANES`] rows: the rows' keys are laid out feature-major (`[feature][lane]`,
//!   then the negations) once per block, and each tree is walked by all lanes in lock step —
//!   sixteen independent load chains the CPU overlaps.
//! - Fewer rows than a block (a single request row, a block's remainder): each row walks
//!   [`LANES`] trees at once instead.
//! - Trees with categorical, zero-as-missing or equality splits, linear leaves, or more than
//!   [`MAX_FAST_DEPTH`] levels keep the reference walk ([`Forest::leaf_value`]).
//!
//! Every row's tree values are added in tree order, so a row's result does not depend on the
//! batch it came in (and in `f32` matches XGBoost's own summation). Written by hand: no crate
//! evaluates XGBoost, LightGBM and ONNX-ML trees in one layout without threads of its own.

use crate::forest::{Forest, Margin, Node, Split};

/// Rows (or trees) walked in lock step.
pub const LANES: usize = 16;

/// Trees deeper than this keep the reference walk: a fixed-depth walk would waste steps.
pub const MAX_FAST_DEPTH: usize = 24;

/// Offset of the negated keys within a feature's slots.
const NEGATED: u32 = LANES as u32;

/// Slots per feature: the keys of the lanes' values, then of their negations.
const SLOTS: usize = 2 * LANES;

/// One node of the compiled layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FastNode {
    /// `feature * SLOTS`, plus [`NEGATED`] when the node tests the negated value.
    slot: u32,
    /// Go to `first + 1` when the value's key is greater than this.
    key: u32,
    /// The child taken otherwise (and the missing side). A leaf's is itself.
    first: u32,
}

/// How one tree is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Compiled: its root in the fast layout and its depth.
    Fast { root: u32, depth: u32 },
    /// The reference walk over the forest's nodes.
    Reference,
}

/// A forest compiled for batch evaluation.
#[derive(Clone, Debug)]
pub struct CompiledForest {
    forest: Forest,
    nodes: Vec<FastNode>,
    /// Leaf value per fast node (0 for branches).
    values: Vec<f64>,
    plans: Vec<Plan>,
}

/// The order-preserving key of `v`: NaN is 0; -0 and +0 are the same.
#[inline]
fn key(v: f32) -> u32 {
    if v.is_nan() {
        return 0;
    }
    let bits = (v + 0.0).to_bits();
    let mask = (((bits as i32) >> 31) as u32) | 0x8000_0000;
    bits ^ mask
}

impl CompiledForest {
    /// Compiles `forest`, which must be valid ([`Forest::validate`]).
    pub fn new(forest: Forest) -> CompiledForest {
        let mut compiled = CompiledForest {
            nodes: Vec::new(),
            values: Vec::new(),
            plans: Vec::with_capacity(forest.roots.len()),
            forest: Forest::default(),
        };
        for &root in &forest.roots {
            let plan = if forest.features > 0 && compilable(&forest, root) {
                compiled.compile_tree(&forest, root)
            } else {
                Plan::Reference
            };
            compiled.plans.push(plan);
        }
        compiled.forest = forest;
        compiled
    }

    /// The forest this was compiled from.
    pub fn forest(&self) -> &Forest {
        &self.forest
    }

    /// How many trees take the compiled walk (the rest take the reference walk).
    pub fn compiled_trees(&self) -> usize {
        self.plans
            .iter()
            .filter(|p| matches!(p, Plan::Fast { .. }))
            .count()
    }

    /// Lays `root`'s tree out breadth-first in the fast layout.
    fn compile_tree(&mut self, forest: &Forest, root: u32) -> Plan {
        let new_root = self.push_placeholders(1);
        let mut queue = std::collections::VecDeque::from([(root, new_root, 0u32)]);
        let mut depth = 0;
        while let Some((old, new, level)) = queue.pop_front() {
            depth = depth.max(level);
            match &forest.nodes[old as usize] {
                Node::Leaf { value, .. } => {
                    self.nodes[new as usize] = FastNode {
                        slot: 0,
                        key: u32::MAX,
                        first: new,
                    };
                    self.values[new as usize] = *value;
                }
                Node::Branch(b) => {
                    let Split::Less(t) = b.split else {
                        unreachable!("compilable() admits only Less splits")
                    };
                    let t = t + 0.0;
                    let first = self.push_placeholders(2);
                    let base = b.feature * SLOTS as u32;
                    let (first_old, second_old, slot, key) = if b.default_left {
                        // second iff x >= t, i.e. x > prev(t)
                        let k = if t == f32::NEG_INFINITY {
                            0
                        } else {
                            key(t.next_down())
                        };
                        (b.left, b.right, base, k)
                    } else {
                        // second iff x < t, i.e. -x > -t
                        (b.right, b.left, base + NEGATED, key(-t))
                    };
                    self.nodes[new as usize] = FastNode { slot, key, first };
                    queue.push_back((first_old, first, level + 1));
                    queue.push_back((second_old, first + 1, level + 1));
                }
            }
        }
        Plan::Fast {
            root: new_root,
            depth,
        }
    }

    fn push_placeholders(&mut self, n: usize) -> u32 {
        let at = self.nodes.len() as u32;
        self.nodes.resize(self.nodes.len() + n, FastNode::default());
        self.values.resize(self.values.len() + n, 0.0);
        at
    }

    /// Adds every tree's value to `margins` (`rows × groups`, row-major) for `x`
    /// (`rows × features`, row-major).
    pub fn accumulate<M: Margin>(&self, x: &[f32], margins: &mut [M]) {
        let features = self.forest.features;
        let groups = self.forest.groups;
        if features == 0 {
            self.forest.accumulate_reference(x, margins);
            return;
        }
        let rows = x.len() / features;
        debug_assert_eq!(margins.len(), rows * groups);
        let full_blocks = rows / LANES;
        let mut block_keys = vec![0u32; features * SLOTS];
        for block in 0..full_blocks {
            let start = block * LANES;
            let block_x = &x[start * features..(start + LANES) * features];
            self.accumulate_block(
                block_x,
                &mut block_keys,
                &mut margins[start * groups..(start + LANES) * groups],
            );
        }
        let mut row_keys = vec![0u32; features * 2];
        for row in full_blocks * LANES..rows {
            self.accumulate_row(
                &x[row * features..(row + 1) * features],
                &mut row_keys,
                &mut margins[row * groups..(row + 1) * groups],
            );
        }
    }

    /// One block of [`LANES`] rows: tree-major, every lane walking the same tree.
    fn accumulate_block<M: Margin>(&self, x: &[f32], keys: &mut [u32], margins: &mut [M]) {
        let features = self.forest.features;
        let groups = self.forest.groups;
        for (f, slots) in keys.chunks_exact_mut(SLOTS).enumerate() {
            for lane in 0..LANES {
                let v = x[lane * features + f];
                slots[lane] = key(v);
                slots[LANES + lane] = key(-v);
            }
        }
        for (t, plan) in self.plans.iter().enumerate() {
            let group = self.forest.tree_group[t] as usize;
            match *plan {
                Plan::Fast { root, depth } => {
                    let leaves = walk_rows(&self.nodes, keys, root, depth);
                    for (lane, &leaf) in leaves.iter().enumerate() {
                        margins[lane * groups + group].add(self.values[leaf]);
                    }
                }
                Plan::Reference => {
                    for (lane, row) in x.chunks_exact(features).enumerate() {
                        margins[lane * groups + group].add(self.forest.leaf_value(t, row));
                    }
                }
            }
        }
    }

    /// One row: runs of compiled trees are walked [`LANES`] at a time.
    fn accumulate_row<M: Margin>(&self, x: &[f32], keys: &mut [u32], margins: &mut [M]) {
        for (f, &v) in x.iter().enumerate() {
            keys[2 * f] = key(v);
            keys[2 * f + 1] = key(-v);
        }
        let tree_group = &self.forest.tree_group;
        let mut t = 0;
        while t < self.plans.len() {
            if self.plans[t] == Plan::Reference {
                margins[tree_group[t] as usize].add(self.forest.leaf_value(t, x));
                t += 1;
                continue;
            }
            let run_end = self.plans[t..]
                .iter()
                .position(|p| *p == Plan::Reference)
                .map_or(self.plans.len(), |p| t + p);
            while t < run_end {
                let n = (run_end - t).min(LANES);
                let mut roots = [0usize; LANES];
                let mut depth = 0;
                for (lane, plan) in self.plans[t..t + n].iter().enumerate() {
                    if let Plan::Fast { root, depth: d } = *plan {
                        roots[lane] = root as usize;
                        depth = depth.max(d);
                    }
                }
                let leaves = walk_trees(&self.nodes, keys, &mut roots, n, depth);
                for (lane, &leaf) in leaves[..n].iter().enumerate() {
                    margins[tree_group[t + lane] as usize].add(self.values[leaf]);
                }
                t += n;
            }
        }
    }
}

/// Whether every node of `root`'s tree is a plain comparison or a plain leaf, and the tree is
/// shallow enough for a fixed-depth walk.
fn compilable(forest: &Forest, root: u32) -> bool {
    let mut stack = vec![(root, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_FAST_DEPTH {
            return false;
        }
        match &forest.nodes[node as usize] {
            Node::Leaf {
                linear: Some(_), ..
            } => return false,
            Node::Leaf { linear: None, .. } => {}
            Node::Branch(b) => {
                if !matches!(b.split, Split::Less(_)) {
                    return false;
                }
                stack.push((b.left, depth + 1));
                stack.push((b.right, depth + 1));
            }
        }
    }
    true
}

/// Walks one tree for [`LANES`] rows whose keys are laid out `[feature][lane | negated lane]`.
#[inline]
fn walk_rows(nodes: &[FastNode], keys: &[u32], root: u32, depth: u32) -> [usize; LANES] {
    let mut at = [root as usize; LANES];
    for _ in 0..depth {
        for (lane, node_index) in at.iter_mut().enumerate() {
            let node = nodes[*node_index];
            let k = keys[node.slot as usize + lane];
            *node_index = node.first as usize + usize::from(k > node.key);
        }
    }
    at
}

/// Walks the first `n` of [`LANES`] trees (roots in `at`) for one row whose keys are laid out
/// `[feature][value | negated]`.
#[inline]
fn walk_trees(
    nodes: &[FastNode],
    keys: &[u32],
    at: &mut [usize; LANES],
    n: usize,
    depth: u32,
) -> [usize; LANES] {
    for _ in 0..depth {
        for node_index in at[..n].iter_mut() {
            let node = nodes[*node_index];
            let k = keys[(node.slot / NEGATED) as usize];
            *node_index = node.first as usize + usize::from(k > node.key);
        }
    }
    *at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forest::{Branch, CategorySet};

    #[test]
    fn keys_order_like_floats() {
        let values = [
            f32::NEG_INFINITY,
            -3.5,
            -1e-40,
            0.0,
            1e-40,
            2.0,
            f32::MAX,
            f32::INFINITY,
        ];
        for w in values.windows(2) {
            assert!(key(w[0]) < key(w[1]), "{} {}", w[0], w[1]);
        }
        assert_eq!(key(-0.0), key(0.0));
        assert_eq!(key(f32::NAN), 0);
        assert!(key(f32::NEG_INFINITY) > 0);
    }

    /// A small deterministic generator, so the property test needs no crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }
        fn below(&mut self, n: u32) -> u32 {
            self.next() % n
        }
        /// Values drawn from a small set so that ties with thresholds happen.
        fn value(&mut self) -> f32 {
            const V: [f32; 9] = [
                -2.0,
                -1.0,
                -0.0,
                0.0,
                0.5,
                1.0,
                3.0,
                f32::INFINITY,
                f32::NAN,
            ];
            V[self.below(V.len() as u32) as usize]
        }
    }

    /// A random forest of random trees mixing every split kind.
    fn random_forest(rng: &mut Lcg, trees: usize, features: usize, groups: usize) -> Forest {
        let mut f = Forest {
            groups,
            features,
            category_sets: vec![CategorySet::from_members([0, 3], false)],
            ..Forest::default()
        };
        for t in 0..trees {
            f.roots.push(f.nodes.len() as u32);
            f.tree_group.push((t % groups) as u32);
            let depth = rng.below(7) as usize;
            grow(rng, &mut f, depth, t % 3 == 0);
        }
        f.validate().unwrap();
        f
    }

    fn grow(rng: &mut Lcg, f: &mut Forest, depth: usize, exotic: bool) {
        let at = f.nodes.len();
        if depth == 0 || rng.below(5) == 0 {
            f.nodes.push(Node::Leaf {
                value: f64::from(rng.below(1000)) / 7.0,
                linear: None,
            });
            return;
        }
        let split = match (exotic, rng.below(4)) {
            (true, 0) => Split::Equal(rng.value().max(-1.0)),
            (true, 1) => Split::Category(0),
            (true, 2) => Split::LessZeroMissing(0.5),
            _ => {
                let t = rng.value();
                Split::Less(if t.is_nan() { 0.25 } else { t })
            }
        };
        f.nodes.push(Node::Leaf {
            value: 0.0,
            linear: None,
        });
        let left = f.nodes.len() as u32;
        grow(rng, f, depth - 1, exotic);
        let right = f.nodes.len() as u32;
        grow(rng, f, depth - 1, exotic);
        f.nodes[at] = Node::Branch(Branch {
            feature: rng.below(f.features as u32),
            split,
            left,
            right,
            default_left: rng.below(2) == 0,
        });
    }

    #[test]
    fn compiled_walk_equals_the_reference_walk_for_every_batch_size() {
        let mut rng = Lcg(7);
        for case in 0..20 {
            let features = 1 + rng.below(5) as usize;
            let groups = 1 + rng.below(3) as usize;
            let trees = 1 + rng.below(40) as usize;
            let forest = random_forest(&mut rng, trees, features, groups);
            let compiled = CompiledForest::new(forest.clone());
            for rows in [1, 3, 16, 17, 40] {
                let x: Vec<f32> = (0..rows * features).map(|_| rng.value()).collect();
                let mut want = vec![0.0f64; rows * groups];
                forest.accumulate_reference(&x, &mut want);
                let mut got = vec![0.0f64; rows * groups];
                compiled.accumulate(&x, &mut got);
                assert_eq!(got, want, "case {case}, {rows} rows");
            }
        }
    }

    #[test]
    fn only_plain_trees_are_compiled() {
        let mut rng = Lcg(3);
        let forest = random_forest(&mut rng, 30, 3, 1);
        let compiled = CompiledForest::new(forest);
        assert!(compiled.compiled_trees() > 0);
        assert!(compiled.compiled_trees() < 30);
    }
}
