//! Proofs of a large log from a few stored hashes: the log keeps the root
//! of every complete aligned block of 2^h leaves for a few heights h, so
//! the MTH of any range a proof names is made of at most a couple of
//! hundred stored hashes (blocks and single leaves) instead of every leaf.
//!
//! [`Blocks::inclusion`] and [`Blocks::consistency`] say what to fetch
//! (a [`Wanted`]); [`Wanted::proof`] computes the proof from what came
//! back, byte for byte the proof from all leaves.

use std::ops::Range;

use super::{
    Hash, node_hash,
    proof::{ProofError, consistency_ranges, inclusion_ranges, split},
};

/// The block heights consentd's log stores (migration 0011 backfills the
/// same). Every fourth level makes the MTH of any range at most 15 stored
/// nodes per level band, about 100 per proof of a log of 2^20 leaves; with
/// heights 8 and 16 alone it is about 650 (docs/performance.md). The
/// blocks add 1/15 to the log's rows.
pub const LOG_BLOCK_HEIGHTS: &[u32] = &[4, 8, 12, 16, 20];

/// A stored node: a leaf (height 0) or the root of the `index`th block of
/// 2^height leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub height: u32,
    pub index: u64,
}

/// The heights a log stores blocks of, lowest first.
#[derive(Clone, Copy, Debug)]
pub struct Blocks<'a> {
    heights: &'a [u32],
}

impl<'a> Blocks<'a> {
    /// `heights` ascending, each above 0.
    pub fn new(heights: &'a [u32]) -> Self {
        debug_assert!(heights.windows(2).all(|pair| pair[0] < pair[1]));
        debug_assert!(heights.first().is_none_or(|&h| h > 0));
        Self { heights }
    }

    /// What the inclusion proof of leaf `index` in the tree of `size` needs.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Wanted<'a>, ProofError> {
        Ok(self.wanted(inclusion_ranges(index, size)?))
    }

    /// What the consistency proof from `old_size` to `new_size` needs.
    pub fn consistency(&self, old_size: u64, new_size: u64) -> Result<Wanted<'a>, ProofError> {
        Ok(self.wanted(consistency_ranges(old_size, new_size)?))
    }

    fn wanted(&self, ranges: Vec<Range<u64>>) -> Wanted<'a> {
        let mut nodes = Vec::new();
        for range in &ranges {
            self.cover(range.clone(), &mut |node| nodes.push(node));
        }
        nodes.sort_unstable();
        nodes.dedup();
        Wanted {
            blocks: *self,
            ranges,
            nodes,
        }
    }

    /// The stored node that is exactly `range`, if any.
    fn stored(&self, range: &Range<u64>) -> Option<Node> {
        let len = range.end - range.start;
        let height = len.trailing_zeros();
        let aligned = len.is_power_of_two() && range.start.is_multiple_of(len);
        (aligned && (height == 0 || self.heights.contains(&height))).then_some(Node {
            height,
            index: range.start >> height,
        })
    }

    /// The stored nodes that make up a range of the tree, largest first,
    /// split as RFC 9162 splits it (every range a proof names starts at a
    /// multiple of the power of two above its length, so its parts do too).
    fn cover(&self, range: Range<u64>, found: &mut impl FnMut(Node)) {
        if let Some(node) = self.stored(&range) {
            return found(node);
        }
        let mid = range.start + split((range.end - range.start) as usize) as u64;
        self.cover(range.start..mid, found);
        self.cover(mid..range.end, found);
    }

    fn mth(
        &self,
        range: Range<u64>,
        fetched: &impl Fn(Node) -> Option<Hash>,
    ) -> Result<Hash, Node> {
        if let Some(node) = self.stored(&range) {
            return fetched(node).ok_or(node);
        }
        let mid = range.start + split((range.end - range.start) as usize) as u64;
        Ok(node_hash(
            &self.mth(range.start..mid, fetched)?,
            &self.mth(mid..range.end, fetched)?,
        ))
    }
}

/// The stored nodes one proof is made of.
#[derive(Clone, Debug)]
pub struct Wanted<'a> {
    blocks: Blocks<'a>,
    ranges: Vec<Range<u64>>,
    nodes: Vec<Node>,
}

impl Wanted<'_> {
    /// Every node to fetch, once each, in (height, index) order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The proof from the fetched nodes; the first node missing, if any
    /// is (a log whose blocks were never stored or were deleted).
    pub fn proof(&self, fetched: impl Fn(Node) -> Option<Hash>) -> Result<Vec<Hash>, Node> {
        self.ranges
            .iter()
            .map(|range| self.blocks.mth(range.clone(), &fetched))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::{RngExt, SeedableRng, rngs::StdRng};

    use super::*;
    use crate::domain::{
        merkle::{consistency_proof, inclusion_proof, leaf_hash, root},
        tlog::Frontier,
    };

    /// A log as the store keeps it: its leaves (height 0) and every block
    /// root a frontier reports while they are pushed, by height and index.
    struct StoredLog(HashMap<u32, Vec<Hash>>);

    fn stored_log(size: u64, heights: &[u32]) -> (Vec<Hash>, StoredLog) {
        let mut frontier = Frontier::default();
        let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut stored = HashMap::from([(0, leaves.clone())]);
        for &leaf in &leaves {
            for (node, hash) in frontier.push(leaf, heights) {
                let level = stored.entry(node.height).or_insert_with(Vec::new);
                assert_eq!(level.len() as u64, node.index, "{node:?} in order, once");
                level.push(hash);
            }
        }
        (leaves, StoredLog(stored))
    }

    impl StoredLog {
        /// Only the wanted nodes, so a proof cannot use anything else.
        fn proof(&self, wanted: &Wanted) -> Result<Vec<Hash>, Node> {
            wanted.proof(|node| {
                assert!(wanted.nodes().binary_search(&node).is_ok(), "{node:?}");
                self.0.get(&node.height)?.get(node.index as usize).copied()
            })
        }
    }

    /// MTH of the leaf ranges RFC 9162 names, each computed from the
    /// leaves once: what `inclusion_proof` and `consistency_proof` return,
    /// fast enough to check every index of every size.
    #[derive(Default)]
    struct FromLeaves(HashMap<Range<u64>, Hash>);

    impl FromLeaves {
        fn proof(&mut self, leaves: &[Hash], ranges: Vec<Range<u64>>) -> Vec<Hash> {
            let slice = |r: &Range<u64>| r.start as usize..r.end as usize;
            ranges
                .into_iter()
                .map(|r| {
                    *self
                        .0
                        .entry(r.clone())
                        .or_insert_with(|| root(&leaves[slice(&r)]))
                })
                .collect()
        }
    }

    fn assert_same_proofs(
        leaves: &[Hash],
        stored: &StoredLog,
        heights: &[u32],
        reference: &mut FromLeaves,
    ) {
        let blocks = Blocks::new(heights);
        let size = leaves.len() as u64;
        for index in 0..size {
            let wanted = blocks.inclusion(index, size).unwrap();
            let ours = stored.proof(&wanted);
            let from_leaves = reference.proof(leaves, inclusion_ranges(index, size).unwrap());
            assert_eq!(ours, Ok(from_leaves), "leaf {index} of {size}");
        }
        for old in 1..=size {
            let wanted = blocks.consistency(old, size).unwrap();
            let ours = stored.proof(&wanted);
            let from_leaves = reference.proof(leaves, consistency_ranges(old, size).unwrap());
            assert_eq!(ours, Ok(from_leaves), "{old} to {size}");
        }
        // The reference is the proofs from all leaves.
        let (index, old) = (size / 3, size.div_ceil(2));
        let proof = reference.proof(leaves, inclusion_ranges(index, size).unwrap());
        assert_eq!(inclusion_proof(leaves, index as usize), Ok(proof));
        let proof = reference.proof(leaves, consistency_ranges(old, size).unwrap());
        assert_eq!(consistency_proof(leaves, old as usize), Ok(proof));
    }

    #[test]
    fn proofs_from_blocks_are_the_proofs_from_all_leaves_at_every_size_to_600() {
        let heights = [2, 4, 6, 8];
        let (leaves, stored) = stored_log(600, &heights);
        let mut reference = FromLeaves::default();
        for size in 1..=600 {
            assert_same_proofs(&leaves[..size], &stored, &heights, &mut reference);
        }
    }

    #[test]
    fn proofs_from_blocks_are_the_proofs_from_all_leaves_at_random_sizes_to_2000() {
        let mut rng = StdRng::seed_from_u64(16);
        for heights in [&[2, 4][..], &[3, 6, 9], &[1, 5, 8]] {
            let (leaves, stored) = stored_log(2000, heights);
            let mut reference = FromLeaves::default();
            for size in (0..8).map(|_| rng.random_range(601..=2000)).chain([2000]) {
                assert_same_proofs(&leaves[..size], &stored, heights, &mut reference);
            }
        }
    }

    #[test]
    fn a_proof_reads_few_nodes_of_a_large_log() {
        let blocks = Blocks::new(LOG_BLOCK_HEIGHTS);
        let size = 1_000_000;
        for index in [0, 65_535, 500_000, 999_999] {
            let wanted = blocks.inclusion(index, size).unwrap();
            assert!(wanted.nodes().len() <= 120, "{}", wanted.nodes().len());
        }
        let wanted = blocks.consistency(777_777, size).unwrap();
        assert!(wanted.nodes().len() <= 240, "{}", wanted.nodes().len());
    }

    #[test]
    fn a_missing_node_is_named_not_a_panic() {
        let heights = [2];
        let (_, mut stored) = stored_log(16, &heights);
        let wanted = Blocks::new(&heights).inclusion(0, 16).unwrap();
        let block = Node {
            height: 2,
            index: 3,
        };
        assert!(wanted.nodes().contains(&block));
        stored.0.get_mut(&2).unwrap().truncate(3);
        assert_eq!(stored.proof(&wanted), Err(block));
    }
}
