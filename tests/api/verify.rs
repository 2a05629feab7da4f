//! `consentd verify` offline, on what a real server's log serves: inclusion
//! and consistency proofs written as grpcurl prints them (the protobuf JSON
//! mapping, the format the README documents), then tampered with.

use std::{path::PathBuf, process::Command};

use base64::{Engine, engine::general_purpose::STANDARD};
use consentd::{
    api::proto::{
        EraseConsentsRequest, GetConsistencyProofRequest, GetConsistencyProofResponse,
        GetInclusionProofRequest, GetInclusionProofResponse, ListSigningKeysRequest,
        ListSigningKeysResponse, LogCheckpoint, get_inclusion_proof_request::Leaf,
    },
    domain::{
        checkpoint::Checkpoint,
        keyring::{SigningKeyring, generate_entry},
    },
};
use serde_json::{Map, Value, json};

use crate::{
    helpers::{ConsentClient, SIGNING_KEYS, TestApp, answer, record_many},
    preferences::{add_weekly, preference_client},
    tlog::{log_caught_up, record_logged},
};

/// A directory of files for the command, removed on drop.
pub struct Files(PathBuf);

impl Files {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("consentd-verify-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn put(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A verifier's verdict: whether it exited 0 (valid), and what it said.
/// Any exit but 0 and 1 (invalid) fails the test.
pub(crate) fn verdict(command: &mut Command) -> (bool, String) {
    let output = command.output().unwrap();
    let code = output.status.code();
    assert!(matches!(code, Some(0 | 1)), "{command:?}: {output:?}");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (code == Some(0), said)
}

/// `consentd verify ARGS`.
fn verify(args: &[&str]) -> (bool, String) {
    verdict(
        Command::new(env!("CARGO_BIN_EXE_consentd"))
            .arg("verify")
            .args(args)
            .env("RUST_LOG", "warn"),
    )
}

/// What `verifier` said of ARGS, which it must find valid.
pub(crate) fn holds_with(verifier: fn(&[&str]) -> (bool, String), args: &[&str]) -> String {
    let (valid, said) = verifier(args);
    assert!(valid, "{args:?}: {said}");
    said
}

/// That `verifier` finds ARGS invalid, saying `message`.
pub(crate) fn fails_with(verifier: fn(&[&str]) -> (bool, String), args: &[&str], message: &str) {
    let (valid, said) = verifier(args);
    assert!(!valid, "{args:?} verified: {said}");
    assert!(
        said.contains(message),
        "{args:?}: {said:?} lacks {message:?}"
    );
}

fn holds(args: &[&str]) -> String {
    holds_with(verify, args)
}

fn fails(args: &[&str], message: &str) {
    fails_with(verify, args, message)
}

/// A JSON object of the fields that are not their zero value, as grpcurl
/// leaves zero values out; int64 as strings, bytes as base64.
pub(crate) fn object(fields: Vec<(&str, Value)>) -> Value {
    let zero = |v: &Value| match v {
        Value::String(s) => s.is_empty() || s == "0",
        Value::Array(items) => items.is_empty(),
        Value::Null | Value::Bool(false) => true,
        _ => false,
    };
    Value::Object(
        fields
            .into_iter()
            .filter(|(_, v)| !zero(v))
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<_, _>>(),
    )
}

/// ListSigningKeysResponse as grpcurl prints it.
pub(crate) fn keys_json(keys: &ListSigningKeysResponse) -> Value {
    json!({ "keys": objects(&keys.keys, |k| vec![
        ("keyId", json!(k.key_id)),
        ("algorithm", json!(k.algorithm)),
        ("publicKey", json!(STANDARD.encode(&k.public_key))),
        ("active", json!(k.active)),
    ]) })
}

pub(crate) async fn signing_keys(client: &mut ConsentClient) -> ListSigningKeysResponse {
    client
        .list_signing_keys(ListSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// A repeated message field: one [`object`] per item.
pub(crate) fn objects<T>(items: &[T], fields: impl Fn(&T) -> Vec<(&'static str, Value)>) -> Value {
    items.iter().map(|item| object(fields(item))).collect()
}

pub(crate) fn checkpoint_json(checkpoint: &Option<LogCheckpoint>) -> Value {
    let Some(c) = checkpoint else {
        return Value::Null;
    };
    object(vec![
        ("note", json!(c.note)),
        ("origin", json!(c.origin)),
        ("treeSize", json!(c.tree_size.to_string())),
        ("rootHash", json!(STANDARD.encode(&c.root_hash))),
    ])
}

fn hashes_json(hashes: &[Vec<u8>]) -> Value {
    hashes.iter().map(|h| json!(STANDARD.encode(h))).collect()
}

pub(crate) fn inclusion_json(p: &GetInclusionProofResponse) -> Value {
    object(vec![
        ("leafIndex", json!(p.leaf_index.to_string())),
        ("treeSize", json!(p.tree_size.to_string())),
        ("leafHash", json!(STANDARD.encode(&p.leaf_hash))),
        ("hashes", hashes_json(&p.hashes)),
        ("recordId", json!(p.record_id)),
        ("preferenceEventId", json!(p.preference_event_id)),
        ("leafKind", json!(p.leaf_kind().as_str_name())),
        ("state", json!(p.state().as_str_name())),
        ("claimsJson", json!(p.claims_json)),
        ("salt", json!(STANDARD.encode(&p.salt))),
        ("checkpoint", checkpoint_json(&p.checkpoint)),
    ])
}

pub(crate) fn consistency_json(p: &GetConsistencyProofResponse) -> Value {
    object(vec![
        ("oldSize", json!(p.old_size.to_string())),
        ("newSize", json!(p.new_size.to_string())),
        ("hashes", hashes_json(&p.hashes)),
        ("oldCheckpoint", checkpoint_json(&p.old_checkpoint)),
        ("newCheckpoint", checkpoint_json(&p.new_checkpoint)),
    ])
}

/// Renames the JSON names of an object (and its objects) back to the
/// proto's original names, which a verifier accepts too.
fn snake_case(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| {
                    let snake = k
                        .chars()
                        .flat_map(|c| match c.is_ascii_uppercase() {
                            true => vec!['_', c.to_ascii_lowercase()],
                            false => vec![c],
                        })
                        .collect();
                    (snake, snake_case(v))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

pub(crate) fn flip(base64: &str, byte: usize) -> String {
    let mut bytes = STANDARD.decode(base64).unwrap();
    bytes[byte] ^= 0x01;
    STANDARD.encode(bytes)
}

/// With field `name` changed by `change`.
fn with(json: &Value, name: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut json = json.clone();
    change(&mut json[name]);
    json.to_string()
}

pub(crate) async fn inclusion(client: &mut ConsentClient, leaf: Leaf) -> GetInclusionProofResponse {
    client
        .get_inclusion_proof(GetInclusionProofRequest {
            leaf: Some(leaf),
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

/// The tenant of a client's records, from a receipt's claims.
pub fn tenant_of(claims_json: &str) -> uuid::Uuid {
    let claims: Value = serde_json::from_str(claims_json).unwrap();
    claims["tenant_id"].as_str().unwrap().parse().unwrap()
}

/// A checkpoint like `note`'s, with `root`, signed with the server's key:
/// a signature that holds over a root that does not.
pub(crate) fn signed_with_root(note: &str, root: [u8; 32]) -> String {
    let checkpoint = Checkpoint::read_unverified(note).unwrap();
    Checkpoint { root, ..checkpoint }.sign(&SigningKeyring::parse(SIGNING_KEYS).unwrap())
}

pub fn other_key() -> String {
    let keyring = SigningKeyring::parse(&generate_entry("other")).unwrap();
    STANDARD.encode(keyring.public_keys()[0].public_key)
}

#[tokio::test]
async fn an_inclusion_proof_verifies_offline_and_every_tampering_fails_naming_the_check() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let (records, tenant_id) = record_logged(&app, &client, 6).await;
    let receipt = records[0].receipt.clone().unwrap();

    let files = Files::new();
    let keys = signing_keys(&mut client).await;
    let public = STANDARD.encode(&keys.keys[0].public_key);
    let key = files.put("key.pub", &public);
    let listed = files.put("keys.json", keys_json(&keys).to_string());
    let wrong = files.put("other.pub", other_key());

    let proof = inclusion(&mut client, Leaf::RecordId(records[0].id.clone())).await;
    assert_eq!(proof.tree_size, 6);
    let json = inclusion_json(&proof);
    let path = files.put("proof.json", json.to_string());
    let note = proof.checkpoint.as_ref().unwrap().note.clone();
    let checkpoint = files.put("checkpoint.txt", &note);
    let receipt_file = files.put("receipt.txt", &receipt.token);

    // Valid: with the response's checkpoint or one kept, with the receipt,
    // with the key list, by original field names, and at leaf 0 (which
    // grpcurl leaves out).
    let said = holds(&["--inclusion", &path, "--public-key", &key]);
    assert!(said.contains(&format!("leaf {} of record", proof.leaf_index)));
    assert!(said.contains(&STANDARD.encode(&proof.checkpoint.as_ref().unwrap().root_hash)));
    holds(&[
        "--inclusion",
        &path,
        "--checkpoint",
        &checkpoint,
        "--public-key",
        &key,
    ]);
    holds(&["--inclusion", &path, "--public-key", &listed, &receipt_file]);
    let snake = files.put("snake.json", snake_case(&json).to_string());
    assert!(snake_case(&json).get("leaf_hash").is_some());
    holds(&["--inclusion", &snake, "--public-key", &key]);
    let first = inclusion(&mut client, Leaf::LeafIndex(0)).await;
    let first_json = inclusion_json(&first);
    assert!(first_json.get("leafIndex").is_none(), "zero is left out");
    let first = files.put("first.json", first_json.to_string());
    holds(&["--inclusion", &first, "--public-key", &key]);

    let in_tree = "the leaf is not in the checkpoint's tree";
    let leaf = "the record's claims and salt do not make its leaf";
    let signature = "invalid inclusion proof: the checkpoint: ";
    let tampered = [
        (
            with(&json, "hashes", |h| {
                h[1] = json!(flip(h[1].as_str().unwrap(), 5))
            }),
            in_tree,
        ),
        (
            with(&json, "leafHash", |h| {
                *h = json!(flip(h.as_str().unwrap(), 31))
            }),
            leaf,
        ),
        (
            with(&json, "salt", |h| *h = json!(flip(h.as_str().unwrap(), 0))),
            leaf,
        ),
        (
            with(&json, "claimsJson", |c| {
                *c = json!(c.as_str().unwrap().replace("subject-", "subjecT-"))
            }),
            leaf,
        ),
        (with(&json, "leafIndex", |i| *i = json!("1")), in_tree),
        (
            with(&json, "treeSize", |n| *n = json!("7")),
            "the proof is for a tree of 7 leaves, the checkpoint is of 6",
        ),
        (
            with(&json, "checkpoint", |c| {
                let note = c["note"].as_str().unwrap();
                // Inside the signature, past the key hash.
                let at = note.len() - 10;
                let mut bytes = note.as_bytes().to_vec();
                bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
                c["note"] = json!(String::from_utf8(bytes).unwrap());
            }),
            signature,
        ),
    ];
    for (i, (tampered, message)) in tampered.iter().enumerate() {
        let path = files.put(&format!("tampered-{i}.json"), tampered);
        fails(&["--inclusion", &path, "--public-key", &key], message);
    }
    // A root the signature holds over, but not the proof.
    let root = proof.checkpoint.as_ref().unwrap().root_hash.clone();
    let mut forged_root: [u8; 32] = root.try_into().unwrap();
    forged_root[9] ^= 0x40;
    let forged = files.put("forged.txt", signed_with_root(&note, forged_root));
    let args = [
        "--inclusion",
        &path,
        "--checkpoint",
        &forged,
        "--public-key",
        &key,
    ];
    fails(&args, in_tree);
    fails(
        &["--inclusion", &path, "--public-key", &wrong],
        "by a known key verifies",
    );
    // Another record's receipt is not this leaf's.
    let theirs = files.put("theirs.txt", &records[1].receipt.as_ref().unwrap().token);
    fails(
        &["--inclusion", &path, "--public-key", &key, &theirs],
        "the receipt's claims are not the proof's claims",
    );

    // A checkpoint of another size: the proof is for 6.
    let more = record_many(&client, "shop", 1, 1).await;
    log_caught_up(&app, tenant_id).await;
    let later = inclusion(&mut client, Leaf::RecordId(more[0].id.clone())).await;
    let later_note = files.put("later.txt", &later.checkpoint.unwrap().note);
    fails(
        &[
            "--inclusion",
            &path,
            "--checkpoint",
            &later_note,
            "--public-key",
            &key,
        ],
        "the proof is for a tree of 6 leaves, the checkpoint is of 7",
    );

    // An erased record's leaf stays in the log: included, without claims.
    client
        .erase_consents(EraseConsentsRequest {
            site_id: "shop".into(),
            subject_id: records[2].subject_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let erased = inclusion(&mut client, Leaf::RecordId(records[2].id.clone())).await;
    let erased = files.put("erased.json", inclusion_json(&erased).to_string());
    let said = holds(&["--inclusion", &erased, "--public-key", &key]);
    assert!(said.contains("erased"), "{said}");
    // One deleted behind consentd's back is the evidence of it.
    app.sql()
        .await
        .execute(
            "DELETE FROM consent_records WHERE record_id = $1::text::uuid",
            &[&records[3].id],
        )
        .await
        .unwrap();
    let missing = inclusion(&mut client, Leaf::RecordId(records[3].id.clone())).await;
    let missing = files.put("missing.json", inclusion_json(&missing).to_string());
    fails(
        &["--inclusion", &missing, "--public-key", &key],
        "was deleted without an erasure",
    );
}

#[tokio::test]
async fn two_real_checkpoints_are_consistent_offline_and_a_tampered_proof_is_not() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    record_logged(&app, &client, 5).await;
    let old = inclusion(&mut client, Leaf::LeafIndex(0))
        .await
        .checkpoint
        .unwrap();
    record_logged(&app, &client, 8).await;

    let proof = client
        .get_consistency_proof(GetConsistencyProofRequest {
            old_size: 5,
            new_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(proof.new_size, 13);
    let new = proof.new_checkpoint.clone().unwrap();
    let files = Files::new();
    let key = files.put(
        "key.pub",
        STANDARD.encode(crate::helpers::served_key(&mut client, "sig-1").await),
    );
    let json = consistency_json(&proof);
    let path = files.put("proof.json", json.to_string());
    let (old_note, new_note) = (
        files.put("old.txt", &old.note),
        files.put("new.txt", &new.note),
    );

    let said = holds(&[
        "--consistency",
        &path,
        "--old",
        &old_note,
        "--new",
        &new_note,
        "--public-key",
        &key,
    ]);
    assert!(said.contains("the tree of 5 leaves"), "{said}");
    holds(&["--consistency", &path, "--public-key", &key]);
    let snake = files.put("snake.json", snake_case(&json).to_string());
    holds(&[
        "--consistency",
        &snake,
        "--old",
        &old_note,
        "--public-key",
        &key,
    ]);

    let start = "the old checkpoint's tree is not the start of the new one's";
    for at in 0..proof.hashes.len() {
        let tampered = with(&json, "hashes", |h| {
            h[at] = json!(flip(h[at].as_str().unwrap(), at))
        });
        let tampered = files.put(&format!("tampered-{at}.json"), tampered);
        let args = [
            "--consistency",
            &tampered,
            "--old",
            &old_note,
            "--public-key",
            &key,
        ];
        fails(&args, start);
    }
    let args = [
        "--consistency",
        &path,
        "--old",
        &new_note,
        "--new",
        &old_note,
        "--public-key",
        &key,
    ];
    fails(&args, "the proof's old size is 5, the old checkpoint's 13");
    let args = [
        "--consistency",
        &path,
        "--new",
        &old_note,
        "--public-key",
        &key,
    ];
    fails(&args, "the proof's new size is 13, the new checkpoint's 5");
    let mut root: [u8; 32] = old.root_hash.clone().try_into().unwrap();
    root[0] ^= 0x80;
    let forged = files.put("forged.txt", signed_with_root(&old.note, root));
    fails(
        &[
            "--consistency",
            &path,
            "--old",
            &forged,
            "--public-key",
            &key,
        ],
        start,
    );
    let wrong = files.put("other.pub", other_key());
    fails(
        &["--consistency", &path, "--public-key", &wrong],
        "invalid consistency proof: the old checkpoint: ",
    );
}

#[tokio::test]
async fn a_preference_events_inclusion_proof_verifies_offline_and_names_the_event() {
    let app = TestApp::spawn().await;
    let client = app.tenant_client("acme").await;
    let records = record_many(&client, "shop", 2, 2).await;
    let mut preferences = preference_client(&app, "acme").await;
    let event = answer(preferences.update_preferences(add_weekly("ann")))
        .await
        .events
        .remove(0);
    log_caught_up(
        &app,
        tenant_of(&records[0].receipt.as_ref().unwrap().claims_json),
    )
    .await;
    let files = Files::new();
    let keys = client
        .clone()
        .list_signing_keys(ListSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    let key = files.put("key.pub", STANDARD.encode(&keys.keys[0].public_key));
    let proof = inclusion(
        &mut client.clone(),
        Leaf::PreferenceEventId(event.id.clone()),
    )
    .await;
    let json = inclusion_json(&proof);
    let path = files.put("proof.json", json.to_string());
    let said = holds(&["--inclusion", &path, "--public-key", &key]);
    assert!(
        said.contains(&format!("of preference event {}", event.id)),
        "{said}"
    );
    // The claims of another event are not this one's.
    let other = with(&json, "preferenceEventId", |id| {
        *id = json!(records[0].id.clone())
    });
    let other = files.put("other.json", other);
    fails(
        &["--inclusion", &other, "--public-key", &key],
        &format!(
            "the claims are not those of preference event {}",
            records[0].id
        ),
    );
    let forged = with(&json, "claimsJson", |c| {
        *c = json!(c.as_str().unwrap().replace("\"ADDED\"", "\"REMOVED\""))
    });
    let forged = files.put("forged.json", forged);
    fails(
        &["--inclusion", &forged, "--public-key", &key],
        "claims and salt do not make its leaf",
    );
}
