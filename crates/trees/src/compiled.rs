//! [`CompiledForest`]: the batch evaluator. A [`Forest`] is compiled once, at load, into a
//! layout made for walking many trees and rows at once without branches.
//!
//! # Layout
//! Every tree whose splits are all plain numeric comparisons (`Split::Less`) is renumbered
//! breadth-first into one shared array of 8-byte nodes, each node's two children adjacent
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
//! (the tree's depth) with no data-dependent branch. `FastNode` packs a node in 8 bytes.
//!
//! # Evaluation
//! - Blocks of [`LANES`] rows: the rows' keys are laid out feature-major (`[feature][lane]`,
//!   then the negations) once per block, and each tree is walked by all lanes in lock step —
//!   sixteen independent load chains the CPU overlaps.
//! - Fewer rows than a block (a single request row, a block's remainder): each row walks all
//!   its compiled trees level by level, a hundred independent walks for the CPU to overlap.
//! - Blocks are taken `BLOCKS_PER_PASS` at a time, tree by tree, so a tree's nodes are
//!   reused from L1 by every block of the pass.
//! - Trees with categorical, zero-as-missing or equality splits, linear leaves, or more than
//!   [`MAX_FAST_DEPTH`] levels keep the reference walk ([`Forest::leaf_value`]).
//!
//! Every row's tree values are added in tree order, so a row's result does not depend on the
//! batch it came in (and in `f32` matches XGBoost's own summation). Written by hand: no crate
//! evaluates XGBoost, LightGBM and ONNX-ML trees in one layout without threads of its own.

use crate::forest::{Forest, Margin, Node, Split};

/// Rows walked in lock step. Measured on the benchmark model: 16 beats 8, 12 and 24.
pub const LANES: usize = 16;

/// Blocks of rows that walk each tree in turn before the next tree (128 rows: their keys,
/// 20 KiB at 20 features, and the tree's nodes stay in L1). Measured: 8 beats 4, 16 and 32.
const BLOCKS_PER_PASS: usize = 8;

/// Trees deeper than this keep the reference walk: a fixed-depth walk would waste steps.
pub const MAX_FAST_DEPTH: usize = 24;

/// Offset of the negated keys within a feature's slots.
const NEGATED: u32 = LANES as u32;

/// Slots per feature: the keys of the lanes' values, then of their negations.
const SLOTS: usize = 2 * LANES;

/// One node of the compiled layout, in 8 bytes read with one load (the walk is bound by
/// loads and by L1 capacity): the key in bits 0–31, the slot (`feature * 2`, plus 1 when the
/// node tests the negated value) in bits 32–47, and in bits 48–63 the distance from the node to
/// its first child (the child taken when the key is not greater, and the missing side; a leaf's
/// is 0, itself). Trees with more than 32767 features or wider than the offset allows keep the
/// reference walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FastNode(u64);

impl FastNode {
    /// A node at index `at` with first child `first`, or `None` when it does not fit.
    fn new(slot: u32, key: u32, first: u32, at: u32) -> Option<FastNode> {
        let slot = u16::try_from(slot / NEGATED).ok()?;
        let offset = u16::try_from(first.checked_sub(at)?).ok()?;
        Some(FastNode(
            (u64::from(offset) << 48) | (u64::from(slot) << 32) | u64::from(key),
        ))
    }

    /// The slot in the block key layout (`feature * SLOTS`, plus [`NEGATED`]).
    #[inline(always)]
    fn slot(self) -> u32 {
        (((self.0 >> 32) & 0xffff) as u32) * NEGATED
    }

    /// The slot in the row key layout (`feature * 2`, plus 1).
    #[inline(always)]
    fn row_slot(self) -> usize {
        ((self.0 >> 32) & 0xffff) as usize
    }

    #[inline(always)]
    fn key(self) -> u32 {
        self.0 as u32
    }

    /// The first child of this node at `at`.
    #[inline(always)]
    fn first(self, at: usize) -> usize {
        at + (self.0 >> 48) as usize
    }
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
    /// The largest slot any fast node reads.
    max_slot: u32,
    /// The roots of the compiled trees, in tree order.
    fast_roots: Vec<usize>,
    /// The depth of the deepest compiled tree.
    max_depth: u32,
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
            max_slot: 0,
            fast_roots: Vec::new(),
            max_depth: 0,
        };
        for &root in &forest.roots {
            let plan = if forest.features > 0 && compilable(&forest, root) {
                compiled.compile_tree(&forest, root)
            } else {
                Plan::Reference
            };
            compiled.plans.push(plan);
        }
        compiled.max_slot = compiled.nodes.iter().map(|n| n.slot()).max().unwrap_or(0);
        for plan in &compiled.plans {
            if let Plan::Fast { root, depth } = *plan {
                compiled.fast_roots.push(root as usize);
                compiled.max_depth = compiled.max_depth.max(depth);
            }
        }
        compiled.check_layout();
        compiled.forest = forest;
        compiled
    }

    /// Asserts what the unchecked walks rely on: both children of every node are nodes.
    /// Holds by construction; a failure is a bug in `compile_tree`, never a bad model file.
    fn check_layout(&self) {
        let n = self.nodes.len();
        assert!(
            self.nodes
                .iter()
                .enumerate()
                .all(|(at, node)| node.first(at) < n
                    && (node.key() == u32::MAX || node.first(at) + 1 < n)),
            "compiled forest layout is inconsistent"
        );
        assert_eq!(self.values.len(), n);
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

    /// Lays `root`'s tree out breadth-first in the fast layout, or leaves it to the reference
    /// walk when a node does not fit.
    fn compile_tree(&mut self, forest: &Forest, root: u32) -> Plan {
        let start = self.nodes.len();
        let new_root = self.push_placeholders(1);
        let mut queue = std::collections::VecDeque::from([(root, new_root, 0u32)]);
        let mut depth = 0;
        while let Some((old, new, level)) = queue.pop_front() {
            depth = depth.max(level);
            match &forest.nodes[old as usize] {
                Node::Leaf { value, .. } => {
                    self.nodes[new as usize] =
                        FastNode::new(0, u32::MAX, new, new).expect("a leaf always fits");
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
                    let Some(node) = FastNode::new(slot, key, first, new) else {
                        self.nodes.truncate(start);
                        self.values.truncate(start);
                        return Plan::Reference;
                    };
                    self.nodes[new as usize] = node;
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
        let span = features * SLOTS;
        let mut keys = vec![0u32; full_blocks.min(BLOCKS_PER_PASS) * span];
        for first in (0..full_blocks).step_by(BLOCKS_PER_PASS) {
            let blocks = (full_blocks - first).min(BLOCKS_PER_PASS);
            let (start, end) = (first * LANES, (first + blocks) * LANES);
            self.accumulate_blocks(
                &x[start * features..end * features],
                &mut keys[..blocks * span],
                &mut margins[start * groups..end * groups],
            );
        }
        let mut row_keys = vec![0u32; features * 2];
        let mut at = Vec::with_capacity(self.fast_roots.len());
        for row in full_blocks * LANES..rows {
            self.accumulate_row(
                &x[row * features..(row + 1) * features],
                &mut row_keys,
                &mut at,
                &mut margins[row * groups..(row + 1) * groups],
            );
        }
    }

    /// Up to `BLOCKS_PER_PASS` blocks of [`LANES`] rows: tree by tree, each tree walked by
    /// every block in turn while its nodes are in L1.
    fn accumulate_blocks<M: Margin>(&self, x: &[f32], keys: &mut [u32], margins: &mut [M]) {
        let features = self.forest.features;
        let groups = self.forest.groups;
        let span = features * SLOTS;
        for (block_x, block_keys) in x
            .chunks_exact(LANES * features)
            .zip(keys.chunks_exact_mut(span))
        {
            for (f, slots) in block_keys.chunks_exact_mut(SLOTS).enumerate() {
                for lane in 0..LANES {
                    let v = block_x[lane * features + f];
                    slots[lane] = key(v);
                    slots[LANES + lane] = key(-v);
                }
            }
        }
        for (t, plan) in self.plans.iter().enumerate() {
            let group = self.forest.tree_group[t] as usize;
            for (b, block_keys) in keys.chunks_exact(span).enumerate() {
                let block_margins = &mut margins[b * LANES * groups..(b + 1) * LANES * groups];
                match *plan {
                    Plan::Fast { root, depth } => {
                        let leaves = walk_rows(self, block_keys, root, depth);
                        for (lane, &leaf) in leaves.iter().enumerate() {
                            block_margins[lane * groups + group].add(self.values[leaf]);
                        }
                    }
                    Plan::Reference => {
                        let block_x = &x[b * LANES * features..(b + 1) * LANES * features];
                        for (lane, row) in block_x.chunks_exact(features).enumerate() {
                            block_margins[lane * groups + group]
                                .add(self.forest.leaf_value(t, row));
                        }
                    }
                }
            }
        }
    }

    /// One row: every compiled tree walked level by level, all at once (a hundred independent
    /// walks for the CPU to overlap), then every tree's value added in tree order.
    fn accumulate_row<M: Margin>(
        &self,
        x: &[f32],
        keys: &mut [u32],
        at: &mut Vec<usize>,
        margins: &mut [M],
    ) {
        for (f, &v) in x.iter().enumerate() {
            keys[2 * f] = key(v);
            keys[2 * f + 1] = key(-v);
        }
        at.clear();
        at.extend_from_slice(&self.fast_roots);
        walk_trees(self, keys, at, self.max_depth);
        let tree_group = &self.forest.tree_group;
        let mut leaves = at.iter();
        for (t, plan) in self.plans.iter().enumerate() {
            let value = match plan {
                Plan::Fast { .. } => leaves.next().map_or(0.0, |&leaf| self.values[leaf]),
                Plan::Reference => self.forest.leaf_value(t, x),
            };
            margins[tree_group[t] as usize].add(value);
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
///
/// The hot loop of every tree model, so it indexes without bounds checks; what makes that
/// sound is checked once per call here and once per forest in [`CompiledForest::new`]:
/// every node's `first + 1` is a node (`check_layout`), `root` is a node, and every slot plus
/// a lane is inside `keys` (`max_slot + LANES <= keys.len()`).
#[inline]
fn walk_rows(layout: &CompiledForest, keys: &[u32], root: u32, depth: u32) -> [usize; LANES] {
    let nodes = layout.nodes.as_slice();
    assert!((root as usize) < nodes.len() && layout.max_slot as usize + LANES <= keys.len());
    let mut at = [root as usize; LANES];
    for _ in 0..depth {
        for (lane, node_index) in at.iter_mut().enumerate() {
            // SAFETY: `*node_index` is `root` or some node's `first` or `first + 1`, all nodes
            // (asserted above and in `check_layout`); `node.slot() + lane` is at most
            // `max_slot + LANES - 1`, inside `keys` (asserted above).
            #[allow(unsafe_code)]
            let (node, k) = unsafe {
                let node = *nodes.get_unchecked(*node_index);
                (node, *keys.get_unchecked(node.slot() as usize + lane))
            };
            *node_index = node.first(*node_index) + usize::from(k > node.key());
        }
    }
    at
}

/// Walks every tree whose current node is in `at` (roots of compiled trees, each checked at
/// compile time) `depth` steps for one row whose keys are laid out `[feature][value | negated]`.
/// Unchecked indexing as [`walk_rows`], on the same grounds.
#[inline]
fn walk_trees(layout: &CompiledForest, keys: &[u32], at: &mut [usize], depth: u32) {
    let nodes = layout.nodes.as_slice();
    assert!(
        at.iter().all(|&r| r < nodes.len()) && ((layout.max_slot / NEGATED) as usize) < keys.len()
    );
    for _ in 0..depth {
        for node_index in at.iter_mut() {
            // SAFETY: as in `walk_rows`; `slot / NEGATED` is at most `max_slot / NEGATED`,
            // inside `keys` (asserted above).
            #[allow(unsafe_code)]
            let (node, k) = unsafe {
                let node = *nodes.get_unchecked(*node_index);
                (node, *keys.get_unchecked(node.row_slot()))
            };
            *node_index = node.first(*node_index) + usize::from(k > node.key());
        }
    }
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
