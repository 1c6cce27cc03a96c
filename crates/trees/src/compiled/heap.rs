//! The heap layout: every plain tree padded to the forest's depth `D` (a shallow leaf becomes
//! a subtree of never-taken nodes whose leaves all carry its value) and stored as an implicit
//! binary heap: node `h`'s children are `2h` and `2h + 1`, the leaves are `2^D .. 2^(D+1)`.
//! A node is one `u64`, `(bound << 32) | slot`, and a step is four instructions: load the
//! node, take its slot, compare the row's key in memory with it ([`super::row_key`]), and
//! `h = 2h + carry`. Instructions and load latency are what bound the walk (measured: it costs
//! the same per tree at 12 trees as at 100, and the same with every row identical, so it is not
//! cache misses). Chosen when the padding costs at most [`MAX_PADDING`] times the trees' own
//! nodes; measured on the benchmark model against the linked layout: batch 1024 0.53 ms against
//! 0.63 ms, one row 0.85 µs against 0.93 µs.

use super::{LANES, Step, Walker, add_carry};
use crate::forest::{Forest, Node};

/// Deepest forest padded into the heap layout (4096 leaves a tree).
pub(super) const MAX_HEAP_DEPTH: u32 = 12;

/// How many times the trees' own nodes the padded heaps may take (small forests always fit).
const MAX_PADDING: usize = 4;

/// Trees walked in lock step in the one-row walk (measured: 16 beats 8 and 12).
const ROW_GROUP: usize = 16;

/// Plain trees as heaps of one depth.
#[derive(Clone, Debug)]
pub(super) struct HeapTrees {
    depth: u32,
    /// Tree `i`'s node `h` (`1 <= h < 2^depth`) at `i << depth | h`, as
    /// `(bound << 32) | key slot`; index `i << depth` is unused.
    nodes: Vec<u64>,
    /// Tree `i`'s leaf `l` (`0 <= l < 2^depth`) at `i << depth | l`.
    values: Vec<f64>,
    /// The largest key slot any node reads.
    max_slot: usize,
}

impl HeapTrees {
    /// Lays out the trees at `roots` (plain), or `None` when padding them would cost too much.
    pub(super) fn build(forest: &Forest, roots: &[u32]) -> Option<HeapTrees> {
        let mut depth = 0;
        let mut own_nodes = 0;
        for &root in roots {
            let (d, n) = shape(forest, root);
            depth = depth.max(d);
            own_nodes += n;
        }
        let padded = roots.len().checked_shl(depth + 1)?;
        if roots.is_empty()
            || depth > MAX_HEAP_DEPTH
            || padded > MAX_PADDING * own_nodes.max(1024)
            || forest.features.checked_mul(2 * LANES)? >= u32::MAX as usize
        {
            return None;
        }
        let size = 1usize << depth;
        let mut trees = HeapTrees {
            depth,
            nodes: vec![0; roots.len() << depth],
            values: vec![0.0; roots.len() << depth],
            max_slot: 0,
        };
        for (i, &root) in roots.iter().enumerate() {
            let base = i << depth;
            let mut stack = vec![(root, 1usize, 0u32)];
            while let Some((old, h, level)) = stack.pop() {
                match &forest.nodes[old as usize] {
                    Node::Leaf { value, .. } if level == depth => {
                        trees.values[base + h - size] = *value;
                    }
                    Node::Leaf { .. } => {
                        // Bound 0 is never taken: the row goes on to `2h`, the same leaf.
                        trees.nodes[base + h] = 0;
                        stack.push((old, 2 * h, level + 1));
                        stack.push((old, 2 * h + 1, level + 1));
                    }
                    Node::Branch(b) => {
                        let step = Step::of(b);
                        let slot = step.slot as usize * LANES;
                        trees.max_slot = trees.max_slot.max(slot);
                        trees.nodes[base + h] = (u64::from(step.bound) << 32) | slot as u64;
                        stack.push((step.first, 2 * h, level + 1));
                        stack.push((step.second, 2 * h + 1, level + 1));
                    }
                }
            }
        }
        Some(trees)
    }

    fn walk_row_at<const D: u32>(&self, keys: &[u64], leaves: &mut [usize]) {
        let size = 1usize << D;
        let mut groups = leaves.chunks_exact_mut(ROW_GROUP);
        let mut tree = 0;
        for group in &mut groups {
            let nodes = &self.nodes[tree << D..(tree + ROW_GROUP) << D];
            let ends = walk_group::<D, ROW_GROUP>(nodes, keys, self.max_slot);
            for (j, (leaf, h)) in group.iter_mut().zip(ends).enumerate() {
                *leaf = ((tree + j) << D) + h - size;
            }
            tree += ROW_GROUP;
        }
        for leaf in groups.into_remainder() {
            let nodes = &self.nodes[tree << D..(tree + 1) << D];
            *leaf = (tree << D) + walk_group::<D, 1>(nodes, keys, self.max_slot)[0] - size;
            tree += 1;
        }
    }
}

impl Walker for HeapTrees {
    /// Leaf values, indexed by the leaves walks end at.
    #[inline]
    fn values(&self) -> &[f64] {
        &self.values
    }

    /// Walks tree `tree` for a block of [`LANES`] rows' keys; the leaf each lane ends at.
    ///
    /// A hot loop, so it indexes without bounds checks; sound because after `s < depth` steps
    /// `h < 2^(s+1) <= 2^depth`, the length of the tree's slice, and every slot plus a lane is
    /// inside `keys` (asserted here).
    #[inline]
    fn walk_block(&self, tree: usize, keys: &[u64]) -> [usize; LANES] {
        let size = 1usize << self.depth;
        let nodes = &self.nodes[tree * size..(tree + 1) * size];
        assert!(self.max_slot + LANES <= keys.len());
        let mut h = [1usize; LANES];
        for _ in 0..self.depth {
            for (lane, h) in h.iter_mut().enumerate() {
                // SAFETY: see the function's doc.
                #[allow(unsafe_code)]
                let (node, row) = unsafe {
                    let node = *nodes.get_unchecked(*h);
                    (node, *keys.get_unchecked(node as u32 as usize + lane))
                };
                *h = add_carry(*h, *h, row < node);
            }
        }
        h.map(|h| tree * size + h - size)
    }

    /// Walks every tree for one row whose keys are laid out `[feature * 2 + negated]`;
    /// `leaves[i]` gets tree `i`'s leaf. [`ROW_GROUP`] trees at a time walk in lock step in registers, the depth
    /// a constant so that each tree's offset is one too.
    fn walk_row(&self, keys: &[u64], leaves: &mut [usize]) {
        assert!(leaves.len() << self.depth == self.nodes.len());
        macro_rules! by_depth {
            ($($d:literal)*) => {
                match self.depth {
                    $($d => self.walk_row_at::<$d>(keys, leaves),)*
                    _ => unreachable!("deeper than MAX_HEAP_DEPTH"),
                }
            };
        }
        by_depth!(0 1 2 3 4 5 6 7 8 9 10 11 12);
    }
}

/// Walks the `N` trees of `nodes` (`N` heaps of depth `D`, one after the other) for one row;
/// each tree's end `h` (its leaf plus `2^D`). Unchecked indexing as in
/// [`HeapTrees::walk_block`]: tree `j`'s `h` stays below `2^D`, so `(j << D) + h` is inside
/// `nodes`, and every row slot is at most `max_slot / LANES`, inside `keys` (both asserted
/// here).
#[inline(always)]
fn walk_group<const D: u32, const N: usize>(
    nodes: &[u64],
    keys: &[u64],
    max_slot: usize,
) -> [usize; N] {
    assert!(nodes.len() == N << D && max_slot / LANES < keys.len());
    let mut h = [1usize; N];
    for _ in 0..D {
        for (j, h) in h.iter_mut().enumerate() {
            // SAFETY: see the function's doc.
            #[allow(unsafe_code)]
            let (node, row) = unsafe {
                let node = *nodes.get_unchecked((j << D) + *h);
                (node, *keys.get_unchecked(node as u32 as usize / LANES))
            };
            *h = add_carry(*h, *h, row < node);
        }
    }
    h
}

/// A plain tree's depth and node count.
fn shape(forest: &Forest, root: u32) -> (u32, usize) {
    let (mut depth, mut nodes) = (0, 0);
    let mut stack = vec![(root, 0u32)];
    while let Some((node, level)) = stack.pop() {
        nodes += 1;
        depth = depth.max(level);
        if let Node::Branch(b) = &forest.nodes[node as usize] {
            stack.push((b.left, level + 1));
            stack.push((b.right, level + 1));
        }
    }
    (depth, nodes)
}
