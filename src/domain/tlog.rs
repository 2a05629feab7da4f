//! A tenant's append-only log of its consent records and preference
//! events (RFC 9162): what a leaf commits to, the head the sequencer extends, and when a checkpoint
//! is due.
//!
//! A leaf is SHA-256(0x00 || salt || claims): `claims` the record's
//! canonical receipt claims (see `receipt`), `salt` 32 random bytes kept in
//! the record's row. Erasure deletes the row and the salt with it; the leaf
//! hash stays in the log (a tombstone), so every checkpoint stays
//! consistent with the next, and no one can test a guessed subject against
//! it.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::{
    checkpoint::Checkpoint,
    erasure::AuditKey,
    keyring::SigningKeyring,
    merkle::{self, Hash, Node, empty_root, leaf_hash, verify_inclusion},
    receipt::Receipt,
    time::micros_since_epoch,
};

/// Bytes of a leaf's salt.
pub const SALT_BYTES: usize = 32;

/// A new random salt for a record's leaf.
pub fn new_salt() -> [u8; SALT_BYTES] {
    rand::random()
}

/// The leaf of a record: SHA-256(0x00 || salt || claims).
pub fn record_leaf(salt: &[u8; SALT_BYTES], claims_json: &[u8]) -> Hash {
    let mut data = Vec::with_capacity(SALT_BYTES + claims_json.len());
    data.extend_from_slice(salt);
    data.extend_from_slice(claims_json);
    leaf_hash(&data)
}

/// Bytes of a leaf tag: a truncated HMAC-SHA-256, as page tokens use.
pub const LEAF_TAG_BYTES: usize = 16;

/// Tags the leaf a writer makes of each record it stores, so the sequencer
/// can take the stored leaf as the writer's without rebuilding the claims
/// from the row and checking the receipt: a row inserted or copied in
/// PostgreSQL has no tag that binds its tenant, record id, record time and
/// leaf, since only the server holds the key. The time is bound because it
/// places the leaf: a row moved past the sequencer's cursor would come back
/// as a second leaf of its record. The receipt stays the authority: a row
/// whose tag does not verify is checked as before.
#[derive(Clone)]
pub struct LeafTags {
    key: [u8; 32],
}

impl LeafTags {
    /// Keyed from the audit key (a stable server secret every replica
    /// holds), domain-separated from its digests and from page tokens.
    pub fn new(secret: &AuditKey) -> Self {
        Self {
            key: secret.digest("log_leaf_tag_key", ""),
        }
    }

    fn mac(&self, leaf: &TaggedRecord) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(leaf.tenant_id.as_bytes());
        mac.update(leaf.record_id.as_bytes());
        mac.update(&micros_since_epoch(leaf.record_time).to_be_bytes());
        mac.update(&leaf.leaf);
        mac
    }

    pub fn tag(&self, leaf: &TaggedRecord) -> [u8; LEAF_TAG_BYTES] {
        let full = self.mac(leaf).finalize().into_bytes();
        full[..LEAF_TAG_BYTES]
            .try_into()
            .expect("a SHA-256 MAC is longer")
    }

    /// In constant time.
    pub fn verifies(&self, leaf: &TaggedRecord, tag: &[u8]) -> bool {
        tag.len() == LEAF_TAG_BYTES && self.mac(leaf).verify_truncated_left(tag).is_ok()
    }
}

/// What a leaf tag binds: the record's tenant, id and time, and its leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaggedRecord {
    pub tenant_id: Uuid,
    pub record_id: Uuid,
    pub record_time: SystemTime,
    pub leaf: Hash,
}

impl std::fmt::Debug for LeafTags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeafTags(<redacted>)")
    }
}

/// Which leaf a caller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafRef {
    Record(Uuid),
    PreferenceEvent(Uuid),
    Index(u64),
}

/// What a leaf stands for; its claims say so too (see
/// `preference::claims`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKind {
    ConsentRecord,
    PreferenceEvent,
}

impl LeafKind {
    pub const ALL: [Self; 2] = [Self::ConsentRecord, Self::PreferenceEvent];
}

/// GetCheckpoint: the latest checkpoint, or the one of a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetCheckpoint {
    pub size: Option<u64>,
}

/// GetInclusionProof: a leaf, in the tree of a size (or the latest
/// checkpoint's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetInclusionProof {
    pub leaf: LeafRef,
    pub size: Option<u64>,
}

/// GetConsistencyProof: from one size (at least 1) to a later one (or the
/// latest checkpoint's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetConsistencyProof {
    pub old_size: u64,
    pub new_size: Option<u64>,
}

/// A log's size and the roots of the perfect subtrees it is made of,
/// largest first (one per bit of the size): enough to append leaves and to
/// compute the root without the leaves themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    roots: Vec<Hash>,
}

impl Frontier {
    /// Reads a stored frontier back; an error when it does not fit its size.
    pub fn from_stored(size: u64, bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 32 * size.count_ones() as usize {
            return Err(format!(
                "a frontier of {} bytes for size {size}",
                bytes.len()
            ));
        }
        let roots = bytes
            .chunks_exact(32)
            .map(|hash| hash.try_into().expect("32 bytes"))
            .collect();
        Ok(Self { size, roots })
    }

    pub fn to_stored(&self) -> Vec<u8> {
        self.roots.concat()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf: equal subtrees merge, as in binary addition. Returns
    /// the blocks of `heights` the leaf completes (their roots are the
    /// merged subtrees), which the log stores for its proofs.
    pub fn push(&mut self, leaf: Hash, heights: &[u32]) -> Vec<(Node, Hash)> {
        let mut completed = Vec::new();
        let mut hash = leaf;
        let mut size = self.size;
        let mut height = 0;
        while size & 1 == 1 {
            let left = self.roots.pop().expect("one root per bit");
            hash = merkle::node_hash(&left, &hash);
            size >>= 1;
            height += 1;
            if heights.contains(&height) {
                let index = ((self.size + 1) >> height) - 1;
                completed.push((Node { height, index }, hash));
            }
        }
        self.roots.push(hash);
        self.size += 1;
        completed
    }

    /// The root: the subtrees folded from the smallest up.
    pub fn root(&self) -> Hash {
        let mut roots = self.roots.iter().rev();
        let Some(&smallest) = roots.next() else {
            return empty_root();
        };
        roots.fold(smallest, |right, left| merkle::node_hash(left, &right))
    }
}

/// When the sequencer signs a checkpoint of a tenant's log: once it has
/// `leaves` new leaves, or once `interval` has passed since the last one
/// and any leaf is new.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointPolicy {
    pub interval: Duration,
    pub leaves: u64,
}

impl CheckpointPolicy {
    pub fn due(&self, size: u64, last: Option<(u64, SystemTime)>, now: SystemTime) -> bool {
        match last {
            None => size > 0,
            Some((last_size, _)) if size <= last_size => false,
            Some((last_size, at)) => {
                size - last_size >= self.leaves
                    || now.duration_since(at).unwrap_or_default() >= self.interval
            }
        }
    }
}

/// Checks the receipts of the records the sequencer reads, so that a row
/// written behind consentd's back (no receipt, or one that does not cover
/// its fields) never enters the log. The receipts of one batch share a
/// signature, which is checked once: each further record costs the way from
/// its claims to the batch's root and a comparison.
pub struct ReceiptChecker {
    keys: HashMap<String, [u8; 32]>,
    /// A verified batch signature, and the key id, size and root it signs.
    verified: HashMap<[u8; 64], (String, u16, Hash)>,
}

impl ReceiptChecker {
    pub fn new(keyring: &SigningKeyring) -> Self {
        Self {
            keys: keyring
                .public_keys()
                .into_iter()
                .map(|key| (key.key_id, key.public_key))
                .collect(),
            verified: HashMap::new(),
        }
    }

    pub fn check(&mut self, receipt: Option<&Receipt>) -> Result<(), String> {
        let receipt = receipt.ok_or("the record has no receipt")?;
        let key = self
            .keys
            .get(&receipt.key_id)
            .ok_or_else(|| format!("no key {:?}", receipt.key_id))?;
        let Some(inclusion) = &receipt.inclusion else {
            // A receipt of its own (cr1): its signature is over its claims.
            return receipt.verify(key);
        };
        let root = inclusion
            .root_from(leaf_hash(&receipt.claims_json))
            .ok_or("the proof does not fit its tree")?;
        let signed = (receipt.key_id.as_str(), inclusion.size, root);
        if let Some((key_id, size, verified_root)) = self.verified.get(&receipt.signature)
            && (key_id.as_str(), *size, *verified_root) == signed
        {
            return Ok(());
        }
        receipt.verify(key)?;
        self.verified.insert(
            receipt.signature,
            (receipt.key_id.clone(), inclusion.size, root),
        );
        Ok(())
    }
}

/// What an auditor checks of a record's inclusion proof: that the record's
/// claims and salt make the leaf, and that the leaf is at `index` of the
/// tree a signed checkpoint names.
pub fn verify_record_inclusion(
    claims_json: &[u8],
    salt: &[u8],
    leaf: &Hash,
    index: u64,
    proof: &[Hash],
    checkpoint: &Checkpoint,
) -> Result<(), String> {
    let salt: &[u8; SALT_BYTES] = salt.try_into().map_err(|_| "the salt is not 32 bytes")?;
    if record_leaf(salt, claims_json) != *leaf {
        return Err("the record's claims and salt do not make its leaf".into());
    }
    verify_inclusion(index, checkpoint.size, leaf, proof, &checkpoint.root)
        .map_err(|error| format!("the leaf is not in the checkpoint's tree: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::merkle::root;

    #[test]
    fn a_frontier_gives_the_root_of_every_size_and_reads_back() {
        let leaves: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), empty_root());
        for (n, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf, &[]);
            assert_eq!(frontier.root(), root(&leaves[..=n]), "size {}", n + 1);
            let stored = Frontier::from_stored(frontier.size(), &frontier.to_stored());
            assert_eq!(stored.as_ref(), Ok(&frontier));
        }
        assert!(Frontier::from_stored(3, &[0; 32]).is_err());
    }

    #[test]
    fn the_salt_and_the_claims_both_make_the_leaf() {
        let salt = new_salt();
        assert_ne!(salt, new_salt());
        let leaf = record_leaf(&salt, b"{}");
        assert_eq!(leaf, leaf_hash(&[&salt[..], b"{}"].concat()));
        assert_ne!(leaf, record_leaf(&new_salt(), b"{}"));
        assert_ne!(leaf, record_leaf(&salt, b"{ }"));
    }

    #[test]
    fn a_leaf_tag_binds_its_tenant_record_time_and_leaf_and_the_key() {
        let tags = LeafTags::new(&AuditKey::new(&[3; 32]).unwrap());
        let tagged = TaggedRecord {
            tenant_id: Uuid::now_v7(),
            record_id: Uuid::now_v7(),
            record_time: SystemTime::UNIX_EPOCH + Duration::from_micros(1_790_000_000_000_001),
            leaf: record_leaf(&new_salt(), b"{}"),
        };
        let tag = tags.tag(&tagged);
        assert!(tags.verifies(&tagged, &tag));
        for other in [
            TaggedRecord {
                tenant_id: Uuid::now_v7(),
                ..tagged
            },
            TaggedRecord {
                record_id: Uuid::now_v7(),
                ..tagged
            },
            TaggedRecord {
                record_time: tagged.record_time + Duration::from_micros(1),
                ..tagged
            },
            TaggedRecord {
                leaf: leaf_hash(b"other"),
                ..tagged
            },
        ] {
            assert!(!tags.verifies(&other, &tag), "{other:?}");
        }
        assert!(!tags.verifies(&tagged, &tag[..15]));
        for i in 0..LEAF_TAG_BYTES {
            let mut flipped = tag;
            flipped[i] ^= 1;
            assert!(!tags.verifies(&tagged, &flipped), "byte {i}");
        }
        let other_key = LeafTags::new(&AuditKey::new(&[4; 32]).unwrap());
        assert!(!other_key.verifies(&tagged, &tag));
    }

    #[test]
    fn a_checkpoint_is_due_after_enough_leaves_or_time_and_only_with_new_leaves() {
        let policy = CheckpointPolicy {
            interval: Duration::from_secs(60),
            leaves: 100,
        };
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let later = |s| t + Duration::from_secs(s);
        assert!(!policy.due(0, None, t));
        assert!(policy.due(1, None, t));
        assert!(!policy.due(10, Some((10, t)), later(3600)));
        assert!(!policy.due(109, Some((10, t)), later(59)));
        assert!(policy.due(110, Some((10, t)), later(1)));
        assert!(policy.due(11, Some((10, t)), later(60)));
    }
}
