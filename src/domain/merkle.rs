//! RFC 9162's Merkle tree (section 2.1): over the claims of one batch, with
//! the audit path that proves one leaf's place in it, and (in [`proof`])
//! over a tenant's whole log, with inclusion and consistency proofs,
//! computed from all leaves or (in [`blocks`]) from stored subtree roots.

mod blocks;
mod proof;

use sha2::{Digest, Sha256};

pub use blocks::{Blocks, LOG_BLOCK_HEIGHTS, Node, Wanted};
pub use proof::{
    ProofError, consistency_proof, consistency_ranges, empty_root, inclusion_proof,
    inclusion_ranges, root, verify_consistency, verify_inclusion,
};

/// A SHA-256 hash: a leaf's, a node's or a root.
pub type Hash = [u8; 32];

/// SHA-256(0x00 || data): the hash of a leaf.
pub fn leaf_hash(claims_json: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0])
        .chain_update(claims_json)
        .finalize()
        .into()
}

pub(super) fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([1])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// RFC 9162's tree, built level by level: neighbours pair up and a lone
/// last node moves up unchanged, which gives the same root as splitting at
/// the largest power of two below the size.
pub(super) struct MerkleTree {
    levels: Vec<Vec<[u8; 32]>>,
}

impl MerkleTree {
    pub(super) fn new(leaves: Vec<[u8; 32]>) -> Self {
        let mut levels = vec![leaves];
        while let Some(level) = levels.last().filter(|level| level.len() > 1) {
            let next = level
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [lone] => *lone,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
            levels.push(next);
        }
        Self { levels }
    }

    pub(super) fn root(&self) -> [u8; 32] {
        self.levels
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or_default()
    }

    /// The audit path of a leaf, bottom up.
    pub(super) fn path(&self, mut index: usize) -> Vec<[u8; 32]> {
        let mut path = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sibling) = level.get(index ^ 1) {
                path.push(*sibling);
            }
            index >>= 1;
        }
        path
    }
}

/// Where a receipt's claims sit in the batch its signature covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inclusion {
    pub index: u16,
    pub size: u16,
    pub path: Vec<[u8; 32]>,
}

impl Inclusion {
    /// Index and size big-endian, then the path.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(4 + 32 * self.path.len());
        bytes.extend_from_slice(&self.index.to_be_bytes());
        bytes.extend_from_slice(&self.size.to_be_bytes());
        for hash in &self.path {
            bytes.extend_from_slice(hash);
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let malformed = || "the proof is not an index, a size and 32-byte hashes".to_string();
        let (head, hashes) = bytes.split_at_checked(4).ok_or_else(malformed)?;
        if hashes.len() % 32 != 0 || hashes.len() / 32 > 16 {
            return Err(malformed());
        }
        let inclusion = Self {
            index: u16::from_be_bytes([head[0], head[1]]),
            size: u16::from_be_bytes([head[2], head[3]]),
            path: hashes
                .chunks_exact(32)
                .map(|hash| hash.try_into().expect("32 bytes"))
                .collect(),
        };
        if inclusion.index >= inclusion.size {
            return Err("the leaf index is outside the tree".into());
        }
        Ok(inclusion)
    }

    /// The root the path leads to from `leaf` (RFC 9162, 2.1.3.2), or none
    /// when the path does not fit the index and size.
    pub(super) fn root_from(&self, leaf: [u8; 32]) -> Option<[u8; 32]> {
        let (index, size) = (u64::from(self.index), u64::from(self.size));
        proof::root_from_inclusion(index, size, &leaf, &self.path).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9162's definition: split at the largest power of two below n.
    fn reference_root(leaves: &[[u8; 32]]) -> [u8; 32] {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let split = leaves.len().next_power_of_two() / 2;
        node_hash(
            &reference_root(&leaves[..split]),
            &reference_root(&leaves[split..]),
        )
    }

    #[test]
    fn roots_match_rfc_9162() {
        for size in 1..=20 {
            let leaves: Vec<[u8; 32]> = (0..size)
                .map(|i| leaf_hash(format!(r#"{{"record":{i}}}"#).as_bytes()))
                .collect();
            assert_eq!(
                MerkleTree::new(leaves.clone()).root(),
                reference_root(&leaves),
                "size {size}"
            );
        }
    }
}
