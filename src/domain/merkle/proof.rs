//! RFC 9162's proofs over a log of any size: the inclusion proof of a leaf
//! (section 2.1.3) and the consistency proof between two sizes of one log
//! (section 2.1.4), each generated from the leaf hashes and verified from
//! the proof and the roots alone, as an outside verifier does.

use std::ops::Range;

use super::{Hash, node_hash};

/// Why a proof does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not below the tree size, or the old size is above
    /// the new one.
    OutOfRange,
    /// From an empty tree nothing follows (as transparency-dev/merkle).
    EmptyTree,
    /// The proof has more or fewer hashes than its sizes call for.
    WrongLength,
    /// The proof leads to another root.
    RootMismatch,
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProofError::OutOfRange => "the index or size is outside the tree",
            ProofError::EmptyTree => "a proof from an empty tree proves nothing",
            ProofError::WrongLength => "the proof has the wrong number of hashes",
            ProofError::RootMismatch => "the proof does not lead to the root",
        })
    }
}

impl std::error::Error for ProofError {}

/// The root of an empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    use sha2::{Digest, Sha256};
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (n > 1).
pub(super) fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH over leaf hashes (RFC 9162, 2.1.1).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(index, leaves): the inclusion proof of leaf `index` in the tree of
/// all `leaves`, from the leaf's sibling up (RFC 9162, 2.1.3.1).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Result<Vec<Hash>, ProofError> {
    from_leaves(leaves, inclusion_ranges(index as u64, leaves.len() as u64)?)
}

/// PROOF(old_size, leaves): the consistency proof between the tree of the
/// first `old_size` leaves and the tree of all `leaves` (RFC 9162, 2.1.4.1).
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Result<Vec<Hash>, ProofError> {
    from_leaves(
        leaves,
        consistency_ranges(old_size as u64, leaves.len() as u64)?,
    )
}

/// A proof from the MTH of its ranges over all leaves.
fn from_leaves(leaves: &[Hash], ranges: Vec<Range<u64>>) -> Result<Vec<Hash>, ProofError> {
    Ok(ranges
        .into_iter()
        .map(|range| root(&leaves[range.start as usize..range.end as usize]))
        .collect())
}

/// PATH(index, D[0:size]) as the leaf ranges whose MTH make it up, from
/// the leaf's sibling up: the proof without the hashes, so that a caller
/// can fetch just the subtree roots it needs.
pub fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<Range<u64>>, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let mut ranges = Vec::new();
    let mut tree = 0..size;
    // Top down; the path is bottom up, so it is reversed at the end.
    while tree.end - tree.start > 1 {
        let mid = tree.start + split((tree.end - tree.start) as usize) as u64;
        if index < mid {
            ranges.push(mid..tree.end);
            tree.end = mid;
        } else {
            ranges.push(tree.start..mid);
            tree.start = mid;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// PROOF(old_size, D[0:new_size]) as leaf ranges, bottom up (see
/// [`inclusion_ranges`]).
pub fn consistency_ranges(old_size: u64, new_size: u64) -> Result<Vec<Range<u64>>, ProofError> {
    if old_size > new_size {
        return Err(ProofError::OutOfRange);
    }
    if old_size == 0 {
        return Err(ProofError::EmptyTree);
    }
    let mut ranges = Vec::new();
    let (mut tree, mut whole) = (0..new_size, true);
    // SUBPROOF(m, D[n], b), unrolled: each step adds one hash and recurses
    // into one side; hashes come out top down and the proof is bottom up.
    while old_size != tree.end {
        let mid = tree.start + split((tree.end - tree.start) as usize) as u64;
        if old_size <= mid {
            ranges.push(mid..tree.end);
            tree.end = mid;
        } else {
            ranges.push(tree.start..mid);
            tree.start = mid;
            whole = false;
        }
    }
    if !whole {
        ranges.push(tree);
    }
    ranges.reverse();
    Ok(ranges)
}

/// One step up the verification walk of RFC 9162 (2.1.3.2, 2.1.4.2): whether
/// the next proof hash is a left sibling. `f` and `s` skip the levels where
/// the node is the last of its level and has no right sibling.
fn step(f: &mut u64, s: &mut u64) -> bool {
    let left = *f & 1 == 1 || *f == *s;
    if left {
        while *f & 1 == 0 && *f != 0 {
            *f >>= 1;
            *s >>= 1;
        }
    }
    *f >>= 1;
    *s >>= 1;
    left
}

/// The root the inclusion proof of `leaf` at `index` leads to in a tree of
/// `size` (RFC 9162, 2.1.3.2), or why it cannot lead to any.
pub(in crate::domain) fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        r = match step(&mut f, &mut s) {
            true => node_hash(p, &r),
            false => node_hash(&r, p),
        };
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// Checks that `leaf` is leaf `index` of the tree of `size` whose root is
/// `root` (RFC 9162, 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    match root_from_inclusion(index, size, leaf, proof)? == *root {
        true => Ok(()),
        false => Err(ProofError::RootMismatch),
    }
}

/// Checks that the tree of `old_size` with root `old_root` is the start of
/// the tree of `new_size` with root `new_root` (RFC 9162, 2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OutOfRange);
    }
    if old_size == 0 {
        return Err(ProofError::EmptyTree);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return match old_root == new_root {
            true => Ok(()),
            false => Err(ProofError::RootMismatch),
        };
    }
    // A power of two is a whole subtree of the new tree: its root is where
    // the proof starts.
    let with_old: Vec<Hash>;
    let proof = if old_size.is_power_of_two() {
        with_old = std::iter::once(*old_root)
            .chain(proof.iter().copied())
            .collect();
        &with_old[..]
    } else {
        proof
    };
    let (first, rest) = proof.split_first().ok_or(ProofError::WrongLength)?;
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if step(&mut f, &mut s) {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
