use base64::{Engine, engine::general_purpose::STANDARD};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde_json::Value;

use super::*;
use crate::domain::merkle::{MerkleTree, leaf_hash};

fn bytes(value: &Value) -> Vec<u8> {
    STANDARD.decode(value.as_str().unwrap()).unwrap()
}

/// A vector's root as a hash: those that are not 32 bytes ("don't
/// care") become a hash of their bytes, which keeps equal values equal
/// and different ones different.
fn hash(value: &Value) -> Hash {
    let bytes = bytes(value);
    bytes
        .clone()
        .try_into()
        .unwrap_or_else(|_| leaf_hash(&bytes))
}

/// A proof whose entries are not all 32 bytes is no proof.
fn proof(value: &Value) -> Option<Vec<Hash>> {
    let entries = value.as_array().map(Vec::as_slice).unwrap_or_default();
    entries.iter().map(|e| bytes(e).try_into().ok()).collect()
}

fn vectors(file: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/merkle/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A case fails (no proof, or one that does not verify) exactly when
/// its vector says it must.
fn assert_as_published(case: &Value, verdict: Option<Result<(), ProofError>>) {
    let failed = !matches!(verdict, Some(Ok(())));
    let want_err = case["wantErr"].as_bool().unwrap();
    assert_eq!(failed, want_err, "{}", case["file"]);
}

#[test]
fn the_published_inclusion_vectors_verify_or_fail_as_published() {
    let cases = vectors("inclusion.json");
    assert_eq!(cases.len(), 98);
    for case in cases {
        // A leaf hash is 32 bytes or no leaf hash.
        let leaf: Option<Hash> = bytes(&case["leafHash"]).try_into().ok();
        let verdict = proof(&case["proof"]).zip(leaf).map(|(proof, leaf)| {
            verify_inclusion(
                case["leafIdx"].as_u64().unwrap(),
                case["treeSize"].as_u64().unwrap(),
                &leaf,
                &proof,
                &hash(&case["root"]),
            )
        });
        assert_as_published(&case, verdict);
    }
}

#[test]
fn the_published_consistency_vectors_verify_or_fail_as_published() {
    let cases = vectors("consistency.json");
    assert_eq!(cases.len(), 98);
    for case in cases {
        let verdict = proof(&case["proof"]).map(|proof| {
            verify_consistency(
                case["size1"].as_u64().unwrap(),
                case["size2"].as_u64().unwrap(),
                &hash(&case["root1"]),
                &hash(&case["root2"]),
                &proof,
            )
        });
        assert_as_published(&case, verdict);
    }
}

/// The leaves of the published vectors: their proofs come out of our
/// generation byte for byte.
#[test]
fn our_proofs_of_the_published_tree_are_the_published_proofs() {
    let leaves: Vec<Hash> = ["", "00", "10", "2021", "3031", "40414243"]
        .iter()
        .chain(&["5051525354555657", "606162636465666768696a6b6c6d6e6f"])
        .map(|h| leaf_hash(&hex::decode(h).unwrap()))
        .collect();
    let mut checked = 0;
    for case in vectors("inclusion.json") {
        if case["desc"] == "happy path" {
            let size = case["treeSize"].as_u64().unwrap() as usize;
            let index = case["leafIdx"].as_u64().unwrap() as usize;
            let tree = &leaves[..size];
            assert_eq!(root(tree), hash(&case["root"]));
            let ours = inclusion_proof(tree, index).unwrap();
            assert_eq!(Some(ours), proof(&case["proof"]), "{}", case["file"]);
            checked += 1;
        }
    }
    for case in vectors("consistency.json") {
        if case["desc"] == "happy path" {
            let (old, new) = (
                case["size1"].as_u64().unwrap(),
                case["size2"].as_u64().unwrap(),
            );
            let ours = consistency_proof(&leaves[..new as usize], old as usize).unwrap();
            assert_eq!(Some(ours), proof(&case["proof"]), "{}", case["file"]);
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} happy paths");
}

fn random_leaves(rng: &mut StdRng, n: usize) -> Vec<Hash> {
    (0..n).map(|_| rng.random()).collect()
}

fn flipped(hash: &Hash, byte: usize) -> Hash {
    let mut hash = *hash;
    hash[byte] ^= 1 << (byte % 8);
    hash
}

#[test]
fn every_proof_of_random_trees_up_to_2000_leaves_verifies() {
    let mut rng = StdRng::seed_from_u64(9162);
    // Every size up to 130 (every shape of the first levels), then
    // random sizes up to 2000.
    let random_sizes: Vec<usize> = (0..100).map(|_| rng.random_range(131..=2000)).collect();
    for size in (1..=130).chain(random_sizes).chain([2000]) {
        let leaves = random_leaves(&mut rng, size);
        let top = root(&leaves);
        assert_eq!(top, MerkleTree::new(leaves.clone()).root(), "size {size}");
        for _ in 0..2 {
            let index = rng.random_range(0..size);
            let proof = inclusion_proof(&leaves, index).unwrap();
            let (i, n) = (index as u64, size as u64);
            assert_eq!(verify_inclusion(i, n, &leaves[index], &proof, &top), Ok(()));
            let old = rng.random_range(1..=size);
            let proof = consistency_proof(&leaves, old).unwrap();
            let old_root = root(&leaves[..old]);
            let verdict = verify_consistency(old as u64, n, &old_root, &top, &proof);
            assert_eq!(verdict, Ok(()), "{old} to {size}");
        }
    }
}

#[test]
fn flipping_any_byte_of_a_proof_or_a_root_fails_it() {
    let mut rng = StdRng::seed_from_u64(6962);
    for size in (2..=2000usize)
        .step_by(97)
        .chain([2, 3, 4, 5, 8, 1024, 1025])
    {
        let leaves = random_leaves(&mut rng, size);
        let top = root(&leaves);
        let n = size as u64;
        let index = rng.random_range(0..size);
        let proof = inclusion_proof(&leaves, index).unwrap();
        let i = index as u64;
        for byte in 0..32 {
            let bad_root = flipped(&top, byte);
            assert!(verify_inclusion(i, n, &leaves[index], &proof, &bad_root).is_err());
            let bad_leaf = flipped(&leaves[index], byte);
            assert!(verify_inclusion(i, n, &bad_leaf, &proof, &top).is_err());
            for at in 0..proof.len() {
                let mut bad = proof.clone();
                bad[at] = flipped(&bad[at], byte);
                assert!(verify_inclusion(i, n, &leaves[index], &bad, &top).is_err());
            }
        }
        let old = rng.random_range(1..size);
        let proof = consistency_proof(&leaves, old).unwrap();
        let old_root = root(&leaves[..old]);
        let o = old as u64;
        for byte in 0..32 {
            let (bad_old, bad_new) = (flipped(&old_root, byte), flipped(&top, byte));
            assert!(verify_consistency(o, n, &bad_old, &top, &proof).is_err());
            assert!(verify_consistency(o, n, &old_root, &bad_new, &proof).is_err());
            for at in 0..proof.len() {
                let mut bad = proof.clone();
                bad[at] = flipped(&bad[at], byte);
                assert!(verify_consistency(o, n, &old_root, &top, &bad).is_err());
            }
        }
        // A proof of other sizes, or cut short, proves nothing here.
        assert!(verify_consistency(o, n, &old_root, &top, &proof[1..]).is_err());
        assert!(verify_inclusion(i, n + 1, &leaves[index], &[], &top).is_err());
    }
}

#[test]
fn proofs_out_of_range_are_errors_not_panics() {
    let leaves = [leaf_hash(b"a"), leaf_hash(b"b")];
    assert_eq!(inclusion_proof(&leaves, 2), Err(ProofError::OutOfRange));
    assert_eq!(consistency_proof(&leaves, 3), Err(ProofError::OutOfRange));
    assert_eq!(consistency_proof(&leaves, 0), Err(ProofError::EmptyTree));
    assert_eq!(consistency_proof(&leaves, 2), Ok(vec![]));
    assert_eq!(root(&[]), empty_root());
}
