//! The tree-building core both attribute layouts share: a comparison mode as a [`Split`],
//! where a missing value goes, and a tree walked from its root into forest nodes in
//! pre-order, one forest tree per output group. A layout says what a node is ([`Layout`]);
//! this module owns how it becomes a [`Node`].

use crate::forest::{Branch, Forest, Node, Split, round_down, round_up};

/// A branch node's comparison, whatever the layout spells it as.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Mode {
    /// `BRANCH_LEQ`: true when `x <= t`.
    Leq,
    /// `BRANCH_LT`: true when `x < t`.
    Lt,
    /// `BRANCH_GTE`: true when `x >= t`.
    Gte,
    /// `BRANCH_GT`: true when `x > t`.
    Gt,
    /// `BRANCH_EQ`: true when `x == t`.
    Eq,
    /// `BRANCH_NEQ`: true when `x != t`.
    Neq,
    /// `BRANCH_MEMBER` (opset 5): true when `x` is in the forest's member set of this index.
    Member(u32),
}

impl Mode {
    /// The split a node of this mode with threshold `t` becomes, and whether its true branch
    /// goes left.
    fn split(self, t: f64) -> (Split, bool) {
        match self {
            Mode::Leq => (Split::Less(round_down(t).next_up()), true),
            Mode::Lt => (Split::Less(round_up(t)), true),
            Mode::Gte => (Split::Less(round_up(t)), false),
            Mode::Gt => (Split::Less(round_down(t).next_up()), false),
            Mode::Eq => (Split::Equal(t as f32), true),
            Mode::Neq => (Split::Equal(t as f32), false),
            Mode::Member(set) => (Split::Member(set), true),
        }
    }
}

/// One node as a layout describes it, `R` being how the layout refers to a node.
pub(super) enum Visit<R> {
    /// A leaf, with its weight for the output group being built.
    Leaf(f64),
    /// A branch.
    Branch(Fork<R>),
}

/// A branch node as a layout describes it.
pub(super) struct Fork<R> {
    /// The feature compared, or why it is not one; reported after the children are built.
    pub(super) feature: Result<u32, String>,
    /// The comparison.
    pub(super) mode: Mode,
    /// What the feature is compared with.
    pub(super) threshold: f64,
    /// `nodes_missing_value_tracks_true`: a missing value takes the true branch.
    pub(super) missing_true: bool,
    /// The child taken when the comparison holds.
    pub(super) true_child: R,
    /// The other child.
    pub(super) false_child: R,
}

/// One attribute layout's nodes, as the shared builder reads them.
pub(super) trait Layout {
    /// How the layout refers to a node.
    type Ref: Copy;

    /// The node `r`, a leaf's weight being its weight for output `group`.
    fn visit(&self, r: Self::Ref, group: usize) -> Result<Visit<Self::Ref>, String>;

    /// The error when the node references met at `r` form a loop.
    fn looped(&self, r: Self::Ref) -> String;
}

/// Appends the subtree at `r` for output `group` in pre-order and returns its index.
/// `budget` bounds the nodes visited, so a file whose node references loop fails instead.
pub(super) fn emit<L: Layout>(
    forest: &mut Forest,
    layout: &L,
    r: L::Ref,
    group: usize,
    budget: &mut usize,
) -> Result<u32, String> {
    *budget = budget.checked_sub(1).ok_or_else(|| layout.looped(r))?;
    let visit = layout.visit(r, group)?;
    let at = forest.nodes.len();
    // A leaf, or the branch's place until its children are built.
    let value = match &visit {
        Visit::Leaf(value) => *value,
        Visit::Branch(_) => 0.0,
    };
    forest.nodes.push(Node::Leaf {
        value,
        linear: None,
    });
    let Visit::Branch(fork) = visit else {
        return Ok(at as u32);
    };
    let (split, true_left) = fork.mode.split(fork.threshold);
    // A comparison with NaN is false, except `BRANCH_NEQ`'s.
    let missing_to_true = fork.missing_true || fork.mode == Mode::Neq;
    let (l, r) = if true_left {
        (fork.true_child, fork.false_child)
    } else {
        (fork.false_child, fork.true_child)
    };
    let left = emit(forest, layout, l, group, budget)?;
    let right = emit(forest, layout, r, group, budget)?;
    forest.nodes[at] = Node::Branch(Branch {
        feature: fork.feature?,
        split,
        left,
        right,
        default_left: missing_to_true == true_left,
    });
    Ok(at as u32)
}

/// The per-node attribute lists of a layout, gathered as they are read so that their lengths
/// are checked together, in the order they were read.
pub(super) struct PerNode {
    /// The list the others are measured against, and its length.
    base: (&'static str, usize),
    /// The other lists' names and lengths.
    lists: Vec<(&'static str, usize)>,
}

impl PerNode {
    /// Lists to be as long as `base`'s `n` entries.
    pub(super) fn new(base: &'static str, n: usize) -> PerNode {
        PerNode {
            base: (base, n),
            lists: Vec::new(),
        }
    }

    /// Notes the length of the list `name` and hands it back.
    pub(super) fn add<T>(&mut self, name: &'static str, list: Vec<T>) -> Vec<T> {
        self.lists.push((name, list.len()));
        list
    }

    /// Checks that every list noted has as many entries as the base.
    pub(super) fn check(&self) -> Result<(), String> {
        let (base, n) = self.base;
        match self.lists.iter().find(|(_, len)| *len != n) {
            Some((name, len)) => Err(format!("{name} has {len} entries, {base} {n}")),
            None => Ok(()),
        }
    }
}
