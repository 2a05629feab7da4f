//! `consentd verify`: a receipt, an inclusion proof against a signed
//! checkpoint, or the consistency of two checkpoints, checked offline with
//! the public keys ListSigningKeys serves. Nothing here talks to consentd:
//! the proofs are read as grpcurl prints the responses (the protobuf JSON
//! mapping), and every check is `domain`'s, which the server uses too.
//!
//! The verdict goes to stdout; a failed check is the error, which names
//! it, and exits 1.

use std::path::{Path, PathBuf};

use base64::{Engine, engine::general_purpose::STANDARD};
use clap::Args;
use consentd::api::proto::GetConsistencyProofResponse;
use consentd::domain::{
    checkpoint::{Checkpoint, parse_verifier_key},
    merkle::{Hash, verify_consistency, verify_inclusion},
    receipt::Receipt,
    tlog::verify_record_inclusion,
};
use serde_json::Value;

use json::{LeafState, base64, bytes, field, hash, hashes, note, number, text};

mod json;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    consentd verify receipt.txt --public-key key.pub\n  \
    consentd verify --inclusion proof.json --checkpoint checkpoint.txt --public-key key.pub [receipt.txt]\n  \
    consentd verify --consistency proof.json --old old.txt --new new.txt --public-key key.pub")]
pub struct Verify {
    /// A file holding a receipt token (`-` for standard input). With
    /// --inclusion, the receipt is checked too and its claims must be the
    /// proof's.
    #[arg(required_unless_present_any = ["inclusion", "consistency"])]
    receipt: Option<PathBuf>,
    /// A GetInclusionProofResponse as JSON (what grpcurl prints): the
    /// leaf must be at its index of the checkpoint's tree and, for a
    /// present record, SHA-256(0x00 || salt || claims) must be its leaf.
    #[arg(long, value_name = "PROOF.json", conflicts_with = "consistency")]
    inclusion: Option<PathBuf>,
    /// A file holding the signed checkpoint note (LogCheckpoint.note) to
    /// check --inclusion against; without it, the response's own.
    #[arg(long, value_name = "NOTE", requires = "inclusion")]
    checkpoint: Option<PathBuf>,
    /// A GetConsistencyProofResponse as JSON (what grpcurl prints): the
    /// old checkpoint's tree must be the start of the new one's.
    #[arg(long, value_name = "PROOF.json", conflicts_with = "receipt")]
    consistency: Option<PathBuf>,
    /// The older signed checkpoint note, e.g. one kept from before; without
    /// it, the response's old_checkpoint.
    #[arg(long, value_name = "NOTE", requires = "consistency")]
    old: Option<PathBuf>,
    /// The newer signed checkpoint note; without it, the response's
    /// new_checkpoint.
    #[arg(long, value_name = "NOTE", requires = "consistency")]
    new: Option<PathBuf>,
    /// A file holding Ed25519 public keys: the JSON ListSigningKeys
    /// answers with (every key in it), or one key in base64 (as
    /// ListSigningKeys serves it), in 64 hex characters or as a signed-note
    /// verifier key NAME+HASH+KEY. Repeat for more files; whatever is
    /// signed must be signed by one of them.
    #[arg(long, value_name = "KEY_FILE", required = true)]
    public_key: Vec<PathBuf>,
}

pub fn run(verify: Verify) -> Result<(), String> {
    let keys = read_key_files(&verify.public_key)?;
    let receipt = match &verify.receipt {
        Some(path) => Some(check_receipt(&read_receipt(path)?, &keys)?),
        None => None,
    };
    if let Some(path) = &verify.inclusion {
        let proof = InclusionProof::from_json(&read_json(path)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let note = match &verify.checkpoint {
            Some(path) => read(path)?,
            None => proof
                .note
                .clone()
                .ok_or(no_checkpoint("", proof.tree_size))?,
        };
        proof
            .check(&note, &keys, receipt.as_ref())
            .map_err(|e| format!("invalid inclusion proof: {e}"))?;
    } else if let Some(path) = &verify.consistency {
        let proof = ConsistencyProof::from_json(&read_json(path)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let old = match &verify.old {
            Some(path) => read(path)?,
            None => proof
                .old_note
                .clone()
                .ok_or(no_checkpoint("old ", proof.old_size))?,
        };
        let new = match &verify.new {
            Some(path) => read(path)?,
            None => proof
                .new_note
                .clone()
                .ok_or(no_checkpoint("new ", proof.new_size))?,
        };
        proof
            .check(&old, &new, &keys)
            .map_err(|e| format!("invalid consistency proof: {e}"))?;
    }
    Ok(())
}

fn no_checkpoint(which: &str, size: u64) -> String {
    format!(
        "the response holds no {which}checkpoint (none was signed at tree size {size}): \
         give one with --{}",
        if which.is_empty() {
            "checkpoint"
        } else {
            which.trim()
        }
    )
}

/// Every key of the `--public-key` files.
pub(super) fn read_key_files(paths: &[PathBuf]) -> Result<Vec<[u8; 32]>, String> {
    Ok(paths
        .iter()
        .map(|path| read_keys(&read(path)?).map_err(|e| format!("{}: {e}", path.display())))
        .collect::<Result<Vec<_>, _>>()?
        .concat())
}

pub(super) fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn read_receipt(path: &Path) -> Result<String, String> {
    if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("cannot read the receipt: {e}"))
    } else {
        read(path)
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    serde_json::from_str(&read(path)?).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// The keys of a key file, in any of the forms `--public-key` documents.
fn read_keys(text: &str) -> Result<Vec<[u8; 32]>, String> {
    let text = text.trim();
    if text.starts_with('{') {
        let json: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let keys = field(&json, "keys")
            .and_then(Value::as_array)
            .ok_or("JSON without the `keys` of ListSigningKeysResponse")?;
        return keys
            .iter()
            .map(|key| {
                let bytes = bytes(field(key, "public_key"))?;
                bytes
                    .try_into()
                    .map_err(|_| "a public_key is not 32 bytes".to_string())
            })
            .collect();
    }
    hex::decode(text)
        .ok()
        .or_else(|| base64(text).ok())
        .and_then(|bytes| bytes.try_into().ok())
        .or_else(|| parse_verifier_key(text).ok().map(|(_, key)| key))
        .map(|key| vec![key])
        .ok_or_else(|| "the public key must be 32 bytes in base64 or hex, or a verifier key".into())
}

/// A receipt that one of `keys` signed.
fn check_receipt(token: &str, keys: &[[u8; 32]]) -> Result<Receipt, String> {
    let receipt = Receipt::parse(token).map_err(|e| format!("invalid receipt: {e}"))?;
    let verdicts: Vec<_> = keys.iter().map(|key| receipt.verify(key)).collect();
    if !verdicts.iter().any(Result::is_ok) {
        let error = verdicts
            .into_iter()
            .find_map(Result::err)
            .unwrap_or_default();
        return Err(format!("invalid receipt: {error}"));
    }
    println!("valid receipt, signed by key {}", receipt.key_id);
    println!("{}", String::from_utf8_lossy(&receipt.claims_json));
    Ok(receipt)
}

/// A signed checkpoint, named for the messages.
fn open(note: &str, keys: &[[u8; 32]], which: &str) -> Result<Checkpoint, String> {
    Checkpoint::open(note, keys).map_err(|e| format!("the {which}checkpoint: {e}"))
}

/// A GetInclusionProofResponse.
struct InclusionProof {
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: Hash,
    hashes: Vec<Hash>,
    record_id: String,
    preference_event_id: String,
    state: LeafState,
    claims_json: String,
    salt: Vec<u8>,
    note: Option<String>,
}

impl InclusionProof {
    fn from_json(json: &Value) -> Result<Self, String> {
        Ok(Self {
            leaf_index: number(json, "leaf_index")?,
            tree_size: number(json, "tree_size")?,
            leaf_hash: hash(json, "leaf_hash")?,
            hashes: hashes(json)?,
            record_id: text(json, "record_id")?.to_string(),
            preference_event_id: text(json, "preference_event_id")?.to_string(),
            state: LeafState::from_json(field(json, "state"))?,
            claims_json: text(json, "claims_json")?.to_string(),
            salt: bytes(field(json, "salt")).map_err(|e| format!("salt: {e}"))?,
            note: note(json, "checkpoint")?,
        })
    }

    /// What the leaf stands for, its id, and the claim that names it.
    fn entry(&self) -> (&'static str, &str, &'static str) {
        if self.preference_event_id.is_empty() {
            ("record", &self.record_id, "record_id")
        } else {
            ("preference event", &self.preference_event_id, "event_id")
        }
    }

    fn check(
        &self,
        note: &str,
        keys: &[[u8; 32]],
        receipt: Option<&Receipt>,
    ) -> Result<(), String> {
        let checkpoint = open(note, keys, "")?;
        if checkpoint.size != self.tree_size {
            return Err(format!(
                "the proof is for a tree of {} leaves, the checkpoint is of {}",
                self.tree_size, checkpoint.size
            ));
        }
        let (noun, id, claim) = self.entry();
        match self.state {
            LeafState::Present => {
                let claims: Value = serde_json::from_str(&self.claims_json)
                    .map_err(|e| format!("the claims are not JSON: {e}"))?;
                if claims.get(claim).and_then(Value::as_str) != Some(id) {
                    return Err(format!("the claims are not those of {noun} {id}"));
                }
                verify_record_inclusion(
                    self.claims_json.as_bytes(),
                    &self.salt,
                    &self.leaf_hash,
                    self.leaf_index,
                    &self.hashes,
                    &checkpoint,
                )?;
            }
            LeafState::Erased | LeafState::Missing => {
                verify_inclusion(
                    self.leaf_index,
                    checkpoint.size,
                    &self.leaf_hash,
                    &self.hashes,
                    &checkpoint.root,
                )
                .map_err(|e| format!("the leaf is not in the checkpoint's tree: {e}"))?;
            }
        }
        if let Some(receipt) = receipt
            && (self.state != LeafState::Present
                || receipt.claims_json != self.claims_json.as_bytes())
        {
            return Err("the receipt's claims are not the proof's claims".into());
        }
        println!(
            "leaf {} of {noun} {id} is in the tree of {} leaves of {}, root {}",
            self.leaf_index,
            checkpoint.size,
            checkpoint.origin,
            STANDARD.encode(checkpoint.root)
        );
        match self.state {
            LeafState::Present => {
                println!("valid inclusion proof: the {noun}'s claims and salt make the leaf");
                Ok(())
            }
            LeafState::Erased => {
                println!("valid inclusion proof: the {noun} was erased, its leaf stays");
                Ok(())
            }
            LeafState::Missing => Err(format!("{noun} {id} was deleted without an erasure")),
        }
    }
}

/// A GetConsistencyProofResponse.
pub(super) struct ConsistencyProof {
    old_size: u64,
    new_size: u64,
    hashes: Vec<Hash>,
    old_note: Option<String>,
    new_note: Option<String>,
}

impl ConsistencyProof {
    fn from_json(json: &Value) -> Result<Self, String> {
        Ok(Self {
            old_size: number(json, "old_size")?,
            new_size: number(json, "new_size")?,
            hashes: hashes(json)?,
            old_note: note(json, "old_checkpoint")?,
            new_note: note(json, "new_checkpoint")?,
        })
    }

    /// The proof as `consentd checkpoint` fetches it; the notes it checks
    /// against are the caller's.
    pub(super) fn from_response(proof: GetConsistencyProofResponse) -> Result<Self, String> {
        Ok(Self {
            old_size: proof.old_size as u64,
            new_size: proof.new_size as u64,
            hashes: proof
                .hashes
                .into_iter()
                .map(|hash| Hash::try_from(hash).map_err(|_| "a proof hash is not 32 bytes"))
                .collect::<Result<_, _>>()?,
            old_note: None,
            new_note: None,
        })
    }

    pub(super) fn check(&self, old: &str, new: &str, keys: &[[u8; 32]]) -> Result<(), String> {
        let old = open(old, keys, "old ")?;
        let new = open(new, keys, "new ")?;
        if old.origin != new.origin {
            return Err(format!(
                "the checkpoints are of two logs, {} and {}",
                old.origin, new.origin
            ));
        }
        for (which, proof, checkpoint) in [
            ("old", self.old_size, old.size),
            ("new", self.new_size, new.size),
        ] {
            if proof != checkpoint {
                return Err(format!(
                    "the proof's {which} size is {proof}, the {which} checkpoint's {checkpoint}"
                ));
            }
        }
        verify_consistency(old.size, new.size, &old.root, &new.root, &self.hashes).map_err(
            |e| format!("the old checkpoint's tree is not the start of the new one's: {e}"),
        )?;
        println!(
            "valid consistency proof: the tree of {} leaves of {} is the start of the tree of {}",
            old.size, old.origin, new.size
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_base64_hex_a_verifier_key_or_list_signing_keys() {
        let key = [7u8; 32];
        let b64 = STANDARD.encode(key);
        let vkey = consentd::domain::checkpoint::verifier_key("log.example/x", &key);
        let listed = format!(
            r#"{{"keys":[{{"keyId":"a","publicKey":"{b64}"}},{{"key_id":"b","public_key":"{b64}"}}]}}"#
        );
        assert_eq!(read_keys(&format!("{b64}\n")), Ok(vec![key]));
        assert_eq!(read_keys(&hex::encode(key)), Ok(vec![key]));
        assert_eq!(read_keys(&vkey), Ok(vec![key]));
        assert_eq!(read_keys(&listed), Ok(vec![key, key]));
        assert!(read_keys("AAAA").is_err());
    }
}
