//! The linked layout: plain trees of any shape, renumbered breadth-first into one array of
//! 8-byte nodes that each hold the distance to their first child. Leaves point to themselves,
//! so a walk of the tree's depth may stay put at a shallow leaf. Used when padding the forest
//! into the [heap layout](super::heap) would waste too much memory (deep, lopsided trees as
//! LightGBM grows them).

use std::collections::VecDeque;

use super::{LANES, Step, Walker, add_carry};
use crate::forest::{Forest, Node};

/// One node in one `u64`, read with one load: the bound in bits 32–63 (compared whole with a
/// row's key, [`super::row_key`]), the row slot (`feature * 2`, plus 1 for the negated value) in
/// bits 16–31, and in bits 0–15 the distance from the node to its first child (a leaf's is 0,
/// itself; its bound 0 is never taken).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LinkedNode(u64);

impl LinkedNode {
    /// A node at index `at`, or `None` when the slot or the offset does not fit.
    fn new(slot: u32, bound: u32, first: u32, at: u32) -> Option<LinkedNode> {
        let slot = u16::try_from(slot).ok()?;
        let offset = u16::try_from(first.checked_sub(at)?).ok()?;
        Some(LinkedNode(
            (u64::from(bound) << 32) | (u64::from(slot) << 16) | u64::from(offset),
        ))
    }

    /// The index of this node's value in a row's keys (`feature * 2`, plus 1).
    #[inline(always)]
    fn row_slot(self) -> usize {
        (self.0 as u32 >> 16) as usize
    }

    /// The index of the first key slot of this node's value in a key block.
    #[inline(always)]
    fn slot(self) -> usize {
        self.row_slot() * LANES
    }

    fn bound(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The distance to the first child.
    #[inline(always)]
    fn offset(self) -> usize {
        usize::from(self.0 as u16)
    }

    /// The first child of this node at `at`.
    fn first(self, at: usize) -> usize {
        at + self.offset()
    }

    /// The child a row whose key for this node's slot is `row` goes to from `at`.
    #[inline(always)]
    fn next(self, at: usize, row: u64) -> usize {
        add_carry(at, self.offset(), row < self.0)
    }
}

/// The plain trees that fit the linked layout.
#[derive(Clone, Debug)]
pub(super) struct LinkedTrees {
    nodes: Vec<LinkedNode>,
    /// Leaf value per node (0 for branches).
    values: Vec<f64>,
    /// Each compiled tree's root and depth.
    roots: Vec<(usize, u32)>,
    /// The largest key slot any node reads.
    max_slot: usize,
    /// Compiled trees, deepest first, and per level how many of them are deeper than it: the
    /// one-row walk steps only the trees still descending (LightGBM's depths range from 9 to
    /// 23 in one model).
    by_depth: Vec<u32>,
    deeper_than: Vec<usize>,
}

impl LinkedTrees {
    /// Lays out the trees at `roots` (plain, [`super::MAX_DEPTH`] deep at most); returns the
    /// layout and, per root, its index in it, or `None` for a tree whose nodes do not fit.
    pub(super) fn build(forest: &Forest, roots: &[u32]) -> (LinkedTrees, Vec<Option<usize>>) {
        let mut trees = LinkedTrees {
            nodes: Vec::new(),
            values: Vec::new(),
            roots: Vec::new(),
            max_slot: 0,
            by_depth: Vec::new(),
            deeper_than: Vec::new(),
        };
        let placed = roots
            .iter()
            .map(|&root| {
                let (root, depth) = trees.push_tree(forest, root)?;
                trees.roots.push((root, depth));
                Some(trees.roots.len() - 1)
            })
            .collect();
        trees.max_slot = trees.nodes.iter().map(|n| n.slot()).max().unwrap_or(0);
        let depth = |i: u32| trees.roots[i as usize].1;
        trees.by_depth = (0..trees.roots.len() as u32).collect();
        trees.by_depth.sort_by_key(|&i| std::cmp::Reverse(depth(i)));
        let max_depth = trees.by_depth.first().map_or(0, |&i| depth(i));
        trees.deeper_than = (0..max_depth)
            .map(|level| trees.by_depth.partition_point(|&i| depth(i) > level))
            .collect();
        trees.check();
        (trees, placed)
    }

    /// Asserts what the unchecked walks rely on: both children of every branch and the only
    /// child of every leaf are nodes. Holds by construction; a failure is a bug here, never a bad
    /// model file.
    fn check(&self) {
        let n = self.nodes.len();
        assert!(
            self.nodes
                .iter()
                .enumerate()
                .all(|(at, node)| node.first(at) < n
                    && (node.bound() == 0 || node.first(at) + 1 < n)),
            "linked tree layout is inconsistent"
        );
        assert!(self.roots.iter().all(|&(r, _)| r < n));
        assert_eq!(self.values.len(), n);
    }

    /// Lays one tree out breadth-first; its root and depth, or `None` (and nothing added) when
    /// a node does not fit.
    fn push_tree(&mut self, forest: &Forest, root: u32) -> Option<(usize, u32)> {
        let start = self.nodes.len();
        let new_root = self.push_placeholders(1);
        let mut queue = VecDeque::from([(root, new_root, 0u32)]);
        let mut depth = 0;
        while let Some((old, new, level)) = queue.pop_front() {
            depth = depth.max(level);
            let node = match &forest.nodes[old as usize] {
                Node::Leaf { value, .. } => {
                    self.values[new as usize] = *value;
                    LinkedNode::new(0, 0, new, new)
                }
                Node::Branch(b) => {
                    let step = Step::of(b);
                    let first = self.push_placeholders(2);
                    queue.push_back((step.first, first, level + 1));
                    queue.push_back((step.second, first + 1, level + 1));
                    LinkedNode::new(step.slot, step.bound, first, new)
                }
            };
            let Some(node) = node else {
                self.nodes.truncate(start);
                self.values.truncate(start);
                return None;
            };
            self.nodes[new as usize] = node;
        }
        Some((new_root as usize, depth))
    }

    fn push_placeholders(&mut self, n: usize) -> u32 {
        let at = self.nodes.len() as u32;
        self.nodes
            .resize(self.nodes.len() + n, LinkedNode::default());
        self.values.resize(self.values.len() + n, 0.0);
        at
    }
}

impl Walker for LinkedTrees {
    /// Leaf values, indexed by the leaves walks end at.
    #[inline]
    fn values(&self) -> &[f64] {
        &self.values
    }

    /// Walks tree `tree` for a block of [`LANES`] rows' keys; the leaf each lane ends at.
    ///
    /// A hot loop, so it indexes without bounds checks; sound because every node index is a
    /// root or some node's `first` or `first + 1` (all nodes: `check`) and every slot plus a
    /// lane is inside `keys` (asserted here).
    #[inline]
    fn walk_block(&self, tree: usize, keys: &[u64]) -> [usize; LANES] {
        let nodes = self.nodes.as_slice();
        let (root, depth) = self.roots[tree];
        assert!(self.max_slot + LANES <= keys.len());
        let mut at = [root; LANES];
        for _ in 0..depth {
            for (lane, node_index) in at.iter_mut().enumerate() {
                // SAFETY: see the function's doc.
                #[allow(unsafe_code)]
                let (node, row) = unsafe {
                    let node = *nodes.get_unchecked(*node_index);
                    (node, *keys.get_unchecked(node.slot() + lane))
                };
                *node_index = node.next(*node_index, row);
            }
        }
        at
    }

    /// Walks every tree for one row whose keys are laid out `[feature * 2 + negated]`, level by
    /// level (a hundred independent walks for the CPU to overlap); `leaves[i]` gets tree `i`'s
    /// leaf.
    /// Unchecked indexing as [`LinkedTrees::walk_block`], on the same grounds.
    #[inline]
    fn walk_row(&self, keys: &[u64], leaves: &mut [usize]) {
        let nodes = self.nodes.as_slice();
        assert!(leaves.len() == self.roots.len() && self.max_slot / LANES < keys.len());
        for (leaf, &(root, _)) in leaves.iter_mut().zip(&self.roots) {
            *leaf = root;
        }
        for &deeper in &self.deeper_than {
            for &tree in &self.by_depth[..deeper] {
                let node_index = &mut leaves[tree as usize];
                // SAFETY: see `walk_block`.
                #[allow(unsafe_code)]
                let (node, row) = unsafe {
                    let node = *nodes.get_unchecked(*node_index);
                    (node, *keys.get_unchecked(node.row_slot()))
                };
                *node_index = node.next(*node_index, row);
            }
        }
    }
}
