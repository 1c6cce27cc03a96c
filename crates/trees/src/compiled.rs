//! [`CompiledForest`]: the batch evaluator. A [`Forest`] is compiled once, at load, into a
//! layout made for walking many trees and rows at once without branches.
//!
//! # Keys and steps
//! Values are compared as *keys*: an `f32` mapped to a `u32` whose unsigned order is the
//! reverse of the float order (the bits made order-preserving, then inverted), with NaN the
//! largest key. Rows hold keys widened to `u64` ([`row_key`]) so that a node's bound is
//! compared without unpacking it. A plain split (`Split::Less`) becomes a [`Step`]: which slot to read (the
//! feature or its negation), a *bound*, and which child is first. A step is one comparison:
//!
//! ```text
//! child = first + (key(slot) < bound)
//! ```
//!
//! The missing-value direction is folded in: a split whose missing values go left tests
//! `x >= t` as `key(x) < key(prev(t))`; one whose missing values go right swaps its children and
//! tests `x < t` as `key(-x) < key(-t)`. NaN's key is never below a bound, so it takes `first`,
//! the default side. Bound 0 is never taken: leaves and padding use it to stay put, so every
//! walk runs a fixed number of steps with no data-dependent branch.
//!
//! # Layouts
//! - [`heap`]: trees padded to one depth, stored as implicit heaps (`h -> 2h + taken`); the
//!   fewest instructions a step can take. Chosen when padding is cheap (XGBoost's and
//!   scikit-learn's depth-limited trees).
//! - [`linked`]: trees of any shape, breadth-first with explicit child offsets (LightGBM's
//!   deep, lopsided trees).
//!
//! # Evaluation
//! - Blocks of [`LANES`] rows: the rows' keys are laid out slot-major (`[slot][lane]`) once per
//!   block, and each tree is walked by all lanes in lock step: sixteen independent load chains
//!   the CPU overlaps.
//! - Fewer rows than a block (a single request row, a block's remainder): the row walks all its
//!   trees at once, level by level (many independent walks for the CPU to overlap), its scratch
//!   on the stack and its sum in a register (a single row is the latency case).
//! - Blocks are taken [`BLOCKS_PER_PASS`] at a time, tree by tree, so a tree's nodes are
//!   reused from L1 by every block of the pass.
//! - Leaf values are kept in both margin types, so a lane adds its leaf as it is: no rounding
//!   from `f64` to `f32` per leaf in the loop for XGBoost's `f32` sums (measured: 4 % of a
//!   1,024-row batch).
//! - Trees with categorical, zero-as-missing or equality splits, linear leaves, or more than
//!   [`MAX_DEPTH`] levels keep the reference walk ([`Forest::leaf_value`]).
//!
//! Designs measured slower than this one are listed in `bench/README.md` (tree evaluator).
//!
//! Every row's tree values are added in tree order, so a row's result does not depend on the
//! batch it came in (and in `f32` matches XGBoost's own summation). Written by hand: no crate
//! evaluates XGBoost, LightGBM and ONNX-ML trees in one layout without threads of its own.

mod heap;
mod linked;

use crate::forest::{Branch, Forest, Margin, Node, Split};
use heap::HeapTrees;
use linked::LinkedTrees;

/// Rows walked in lock step. Measured on the benchmark model: 16 beats 8, 20, 24 and 32 (fewer
/// chains leave the CPU waiting on loads; more no longer fit its registers).
pub const LANES: usize = 16;

/// Blocks of rows that walk each tree in turn before the next tree (128 rows: their keys and
/// the tree's nodes stay in L1 or close). Measured: 8 beats 16 and 32, ties with 4.
const BLOCKS_PER_PASS: usize = 4;

/// Trees deeper than this keep the reference walk: a fixed-depth walk would waste steps.
pub const MAX_DEPTH: usize = 24;

/// Key slots per feature in a block: the lanes' values, then their negations.
const SLOTS: usize = 2 * LANES;

/// The key of `v`: unsigned order is the reverse of float order; NaN is `u32::MAX`, above every
/// number; -0 and +0 are the same.
#[inline]
fn key(v: f32) -> u32 {
    !ordered(v)
}

/// The key of `v` as rows hold it: `(key(v) << 32) | 0xffff_ffff`. A node packs its bound in
/// the high half of a `u64` and its slot (and offset) in the low half, so `row < node` is
/// exactly `key < bound` (the low bits never decide it): one compare with the row's key in
/// memory, no unpacking of the bound.
#[inline(always)]
fn row_key(v: f32) -> u64 {
    (u64::from(key(v)) << 32) | 0xffff_ffff
}

/// `a + b + carry`: on x86-64 the one `adc` it is (LLVM left to itself computes every lane's
/// comparison with `setb` first and spills them; measured 25 % slower).
#[inline(always)]
fn add_carry(a: usize, b: usize, carry: bool) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let mut sum = 0u64;
        let _ = std::arch::x86_64::_addcarry_u64(u8::from(carry), a as u64, b as u64, &mut sum);
        sum as usize
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        a + b + usize::from(carry)
    }
}

/// `v`'s bits made order-preserving as an unsigned integer, NaN 0 (below every number).
#[inline]
fn ordered(v: f32) -> u32 {
    if v.is_nan() {
        return 0;
    }
    let bits = (v + 0.0).to_bits();
    let mask = (((bits as i32) >> 31) as u32) | 0x8000_0000;
    bits ^ mask
}

/// A plain split as one comparison: `second` is taken when the key in `slot` is below `bound`.
struct Step {
    /// The child taken otherwise, and by missing values.
    first: u32,
    second: u32,
    /// `feature * 2`, plus 1 when the negated value is read.
    slot: u32,
    bound: u32,
}

impl Step {
    fn of(b: &Branch) -> Step {
        let Split::Less(t) = b.split else {
            unreachable!("only Less splits are compiled")
        };
        let t = t + 0.0;
        if b.default_left {
            // second iff x >= t, i.e. x > prev(t); nothing is below -inf
            let bound = if t == f32::NEG_INFINITY {
                u32::MAX
            } else {
                key(t.next_down())
            };
            Step {
                first: b.left,
                second: b.right,
                slot: b.feature * 2,
                bound,
            }
        } else {
            // second iff x < t, i.e. -x > -t
            Step {
                first: b.right,
                second: b.left,
                slot: b.feature * 2 + 1,
                bound: key(-t),
            }
        }
    }
}

/// Where the compiled trees live.
#[derive(Clone, Debug)]
enum Layout {
    Heap(HeapTrees),
    Linked(LinkedTrees),
}

/// What the evaluation loops need of a layout (the loops are compiled once per layout).
trait Walker {
    /// Walks compiled tree `tree` for a block of [`LANES`] rows' keys (`[slot][lane]`); the
    /// leaf each lane ends at.
    fn walk_block(&self, tree: usize, keys: &[u64]) -> [usize; LANES];

    /// Walks every compiled tree for one row's keys (`[slot]`); `leaves[i]` gets tree `i`'s
    /// leaf.
    fn walk_row(&self, keys: &[u64], leaves: &mut [usize]);

    /// Leaf values, indexed by the leaves walks end at.
    fn values(&self) -> &[f64];
}

/// How one tree is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Compiled: its index in the layout.
    Fast(usize),
    /// The reference walk over the forest's nodes.
    Reference,
}

/// A forest compiled for batch evaluation.
#[derive(Clone, Debug)]
pub struct CompiledForest {
    forest: Forest,
    layout: Layout,
    plans: Vec<Plan>,
    /// How many trees are compiled.
    compiled: usize,
    /// The layout's leaf values rounded to `f32`, for `f32` margins ([`Margin::leaf_table`]).
    values_f32: Vec<f32>,
}

/// Which layouts [`CompiledForest::with_layouts`] may choose from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutChoice {
    /// The heap layout when padding is cheap, else the linked one.
    Best,
    /// The linked layout only.
    LinkedOnly,
}

impl CompiledForest {
    /// Compiles `forest`, which must be valid ([`Forest::validate`]).
    pub fn new(forest: Forest) -> CompiledForest {
        CompiledForest::with_layouts(forest, LayoutChoice::Best)
    }

    /// Compiles `forest` choosing among `choice`'s layouts (tests pin one).
    pub fn with_layouts(forest: Forest, choice: LayoutChoice) -> CompiledForest {
        let plain: Vec<u32> = if forest.features > 0 {
            forest
                .roots
                .iter()
                .copied()
                .filter(|&r| compilable(&forest, r))
                .collect()
        } else {
            Vec::new()
        };
        let heap = match choice {
            LayoutChoice::Best => HeapTrees::build(&forest, &plain),
            LayoutChoice::LinkedOnly => None,
        };
        let (layout, placed) = match heap {
            Some(heap) => (Layout::Heap(heap), (0..plain.len()).map(Some).collect()),
            None => {
                let (linked, placed) = LinkedTrees::build(&forest, &plain);
                (Layout::Linked(linked), placed)
            }
        };
        let mut placed = plain.iter().zip(placed).peekable();
        let plans: Vec<Plan> = forest
            .roots
            .iter()
            .map(|root| match placed.peek() {
                Some((r, index)) if *r == root => {
                    let plan = index.map_or(Plan::Reference, Plan::Fast);
                    placed.next();
                    plan
                }
                _ => Plan::Reference,
            })
            .collect();
        let compiled = plans.iter().filter(|p| matches!(p, Plan::Fast(_))).count();
        let values = match &layout {
            Layout::Heap(heap) => heap.values(),
            Layout::Linked(linked) => linked.values(),
        };
        let values_f32 = values.iter().map(|&v| v as f32).collect();
        CompiledForest {
            forest,
            layout,
            plans,
            compiled,
            values_f32,
        }
    }

    /// The forest this was compiled from.
    pub fn forest(&self) -> &Forest {
        &self.forest
    }

    /// How many trees take the compiled walk (the rest take the reference walk).
    pub fn compiled_trees(&self) -> usize {
        self.compiled
    }

    /// The name of the layout the compiled trees are in (`heap` or `linked`).
    pub fn layout_name(&self) -> &'static str {
        match self.layout {
            Layout::Heap(_) => "heap",
            Layout::Linked(_) => "linked",
        }
    }

    /// Adds every tree's value to `margins` (`rows × groups`, row-major) for `x`
    /// (`rows × features`, row-major).
    pub fn accumulate<M: Margin>(&self, x: &[f32], margins: &mut [M]) {
        if self.forest.features == 0 {
            self.forest.accumulate_reference(x, margins);
            return;
        }
        match &self.layout {
            Layout::Heap(heap) => self.accumulate_in(heap, x, margins),
            Layout::Linked(linked) => self.accumulate_in(linked, x, margins),
        }
    }

    fn accumulate_in<W: Walker, M: Margin>(&self, walker: &W, x: &[f32], margins: &mut [M]) {
        let features = self.forest.features;
        let groups = self.forest.groups;
        let rows = x.len() / features;
        debug_assert_eq!(margins.len(), rows * groups);
        let full_blocks = rows / LANES;
        let span = features * SLOTS;
        let mut keys = vec![0u64; full_blocks.min(BLOCKS_PER_PASS) * span];
        for first in (0..full_blocks).step_by(BLOCKS_PER_PASS) {
            let blocks = (full_blocks - first).min(BLOCKS_PER_PASS);
            let (start, end) = (first * LANES, (first + blocks) * LANES);
            self.accumulate_blocks(
                walker,
                &x[start * features..end * features],
                &mut keys[..blocks * span],
                &mut margins[start * groups..end * groups],
            );
        }
        if full_blocks * LANES == rows {
            return;
        }
        // A single row is the latency case: its scratch lives on the stack when small.
        let (mut keys_on_stack, mut leaves_on_stack) = ([0u64; 256], [0usize; 256]);
        let (mut keys_on_heap, mut leaves_on_heap) = (Vec::new(), Vec::new());
        let row_keys = scratch(&mut keys_on_stack, &mut keys_on_heap, 2 * features);
        let leaves = scratch(&mut leaves_on_stack, &mut leaves_on_heap, self.compiled);
        for row in full_blocks * LANES..rows {
            self.accumulate_row(
                walker,
                &x[row * features..(row + 1) * features],
                row_keys,
                leaves,
                &mut margins[row * groups..(row + 1) * groups],
            );
        }
    }

    /// Up to `BLOCKS_PER_PASS` blocks of [`LANES`] rows: tree by tree, each tree walked by
    /// every block in turn while its nodes are in L1.
    fn accumulate_blocks<W: Walker, M: Margin>(
        &self,
        walker: &W,
        x: &[f32],
        keys: &mut [u64],
        margins: &mut [M],
    ) {
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
                    slots[lane] = row_key(v);
                    slots[LANES + lane] = row_key(-v);
                }
            }
        }
        let table = M::leaf_table(walker.values(), &self.values_f32);
        for (t, plan) in self.plans.iter().enumerate() {
            let group = self.forest.tree_group[t] as usize;
            for (b, block_keys) in keys.chunks_exact(span).enumerate() {
                let block_margins = &mut margins[b * LANES * groups..(b + 1) * LANES * groups];
                match *plan {
                    Plan::Fast(tree) => {
                        let leaves = walker.walk_block(tree, block_keys);
                        if let Ok(block) = <&mut [M; LANES]>::try_from(&mut *block_margins) {
                            // One output (the common case): no index arithmetic per lane.
                            for (margin, &leaf) in block.iter_mut().zip(&leaves) {
                                *margin += table[leaf];
                            }
                        } else {
                            for (lane, &leaf) in leaves.iter().enumerate() {
                                block_margins[lane * groups + group] += table[leaf];
                            }
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

    /// One row: its keys laid out `[feature * 2 + negated]`, every compiled tree walked at
    /// once, then every tree's value added in tree order.
    fn accumulate_row<W: Walker, M: Margin>(
        &self,
        walker: &W,
        x: &[f32],
        keys: &mut [u64],
        leaves: &mut [usize],
        margins: &mut [M],
    ) {
        for (&v, keys) in x.iter().zip(keys.chunks_exact_mut(2)) {
            keys[0] = row_key(v);
            keys[1] = row_key(-v);
        }
        walker.walk_row(keys, leaves);
        let table = M::leaf_table(walker.values(), &self.values_f32);
        let tree_group = &self.forest.tree_group;
        if self.compiled == self.plans.len() {
            if let [margin] = margins {
                // One output: summed in a register, not through memory (a third of the time of
                // a single row went to store-to-load latency).
                let mut sum = *margin;
                for &leaf in leaves.iter() {
                    sum += table[leaf];
                }
                *margin = sum;
            } else {
                for (&leaf, &group) in leaves.iter().zip(tree_group) {
                    margins[group as usize] += table[leaf];
                }
            }
            return;
        }
        let mut leaves = leaves.iter();
        for (t, plan) in self.plans.iter().enumerate() {
            let value = match plan {
                Plan::Fast(_) => leaves.next().map_or(M::default(), |&leaf| table[leaf]),
                Plan::Reference => M::from_f64(self.forest.leaf_value(t, x)),
            };
            margins[tree_group[t] as usize] += value;
        }
    }
}

/// `len` zeroed elements: a prefix of `stack` when it is long enough, else of `heap`, grown.
fn scratch<'a, T: Copy + Default>(
    stack: &'a mut [T],
    heap: &'a mut Vec<T>,
    len: usize,
) -> &'a mut [T] {
    if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, T::default());
        heap
    }
}

/// Whether every node of `root`'s tree is a plain comparison or a plain leaf, and the tree is
/// shallow enough for a fixed-depth walk.
fn compilable(forest: &Forest, root: u32) -> bool {
    let mut stack = vec![(root, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
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
            assert!(key(w[0]) > key(w[1]), "{} {}", w[0], w[1]);
            assert!(row_key(w[0]) > row_key(w[1]));
        }
        assert_eq!(key(-0.0), key(0.0));
        assert_eq!(key(f32::NAN), u32::MAX);
        assert!(key(f32::NEG_INFINITY) < u32::MAX);
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
                // `Forest::validate` rejects NaN thresholds.
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
        let mut layouts = std::collections::BTreeSet::new();
        for case in 0..24 {
            // The last cases are wide: more trees and features than the row walk's stack scratch.
            let (features, trees) = if case >= 20 {
                (130 + rng.below(20) as usize, 260 + rng.below(40) as usize)
            } else {
                (1 + rng.below(5) as usize, 1 + rng.below(40) as usize)
            };
            let groups = 1 + rng.below(3) as usize;
            let forest = random_forest(&mut rng, trees, features, groups);
            for choice in [LayoutChoice::Best, LayoutChoice::LinkedOnly] {
                let compiled = CompiledForest::with_layouts(forest.clone(), choice);
                layouts.insert(compiled.layout_name());
                for rows in [1, 3, 16, 17, 40, 200] {
                    let x: Vec<f32> = (0..rows * features).map(|_| rng.value()).collect();
                    let mut want = vec![0.0f64; rows * groups];
                    forest.accumulate_reference(&x, &mut want);
                    let mut got = vec![0.0f64; rows * groups];
                    compiled.accumulate(&x, &mut got);
                    assert_eq!(got, want, "case {case}, {choice:?}, {rows} rows");
                }
            }
        }
        assert_eq!(layouts.len(), 2, "both layouts exercised: {layouts:?}");
    }

    /// A chain: every right child a branch, `depth` levels.
    fn lopsided_forest(depth: usize) -> Forest {
        let mut f = Forest {
            groups: 1,
            features: 1,
            roots: vec![0],
            tree_group: vec![0],
            ..Forest::default()
        };
        for level in 0..depth {
            let at = f.nodes.len() as u32;
            f.nodes.push(Node::Branch(Branch {
                feature: 0,
                split: Split::Less(level as f32),
                left: at + 1,
                right: at + 2,
                default_left: level % 2 == 0,
            }));
            f.nodes.push(Node::Leaf {
                value: level as f64,
                linear: None,
            });
        }
        f.nodes.push(Node::Leaf {
            value: -1.0,
            linear: None,
        });
        f.validate().unwrap();
        f
    }

    #[test]
    fn shallow_trees_take_the_heap_and_lopsided_ones_the_linked_layout() {
        assert_eq!(
            CompiledForest::new(lopsided_forest(4)).layout_name(),
            "heap"
        );
        for depth in [12, 20] {
            let forest = lopsided_forest(depth);
            let compiled = CompiledForest::new(forest.clone());
            assert_eq!(compiled.layout_name(), "linked");
            assert_eq!(compiled.compiled_trees(), 1);
            let x: Vec<f32> = (0..40).map(|i| i as f32 / 2.0 - 1.0).collect();
            let (mut want, mut got) = (vec![0.0f64; 40], vec![0.0f64; 40]);
            forest.accumulate_reference(&x, &mut want);
            compiled.accumulate(&x, &mut got);
            assert_eq!(got, want);
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
