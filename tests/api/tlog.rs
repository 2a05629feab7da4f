//! The proof an auditor checks: batch receipts whose signed trees hold only
//! stored records, and each tenant's append-only log with its signed
//! checkpoints, inclusion and consistency proofs, which catch what is
//! changed in PostgreSQL behind consentd's back.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use consentd::{
    api::proto::{
        ConsentRecord, ConsentView, EraseConsentsRequest, ExportConsentsRequest,
        GetCheckpointRequest, GetConsistencyProofRequest, GetInclusionProofRequest,
        GetInclusionProofResponse, LogCheckpoint, LogLeafState, get_inclusion_proof_request::Leaf,
    },
    domain::{
        checkpoint::Checkpoint,
        merkle::{Hash, verify_consistency, verify_inclusion},
        receipt::Receipt,
        tlog::verify_record_inclusion,
    },
};
use futures::{StreamExt, stream};
use tonic::Code;

use crate::{
    helpers::{
        ConsentClient, TestApp, count, decision, record_many, recorded, served_key, violated_fields,
    },
    round_trip::export_all,
    verify::tenant_of,
};

#[tokio::test]
async fn every_leaf_of_every_signed_batch_tree_is_a_stored_record() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    // Retries of one request id sent at once land in batches of different
    // writers; calls without a request id fill the batches around them.
    let calls: Vec<(usize, Option<usize>)> = (0..480)
        .map(|i| (i, (i % 3 != 0).then_some((i * 7) % 40)))
        .collect();
    let answers: Vec<_> = stream::iter(calls)
        .map(|(i, request)| {
            let mut client = client.clone();
            let mut body = decision("shop", &format!("visitor-{i}"));
            if let Some(request) = request {
                body.request_id = format!("retried-{request}");
            }
            async move { (request, recorded(&mut client, body).await) }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    let stored = export_all(
        &mut client,
        ExportConsentsRequest {
            site_id: "shop".into(),
            view: ConsentView::Full.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(stored.len(), 160 + 40, "one row per request id");
    let mut first_answer = HashMap::new();
    for (request, answer) in &answers {
        if let Some(request) = request {
            let first = first_answer.entry(*request).or_insert(answer.clone());
            assert_eq!(first, answer, "every retry gets the stored record");
        }
        assert!(stored.contains(answer), "an answer names a stored record");
    }

    let public = served_key(&mut client, "sig-1").await;
    let mut trees: HashMap<[u8; 64], (u16, BTreeSet<u16>)> = HashMap::new();
    for record in &stored {
        let token = &record.receipt.as_ref().unwrap().token;
        let receipt = Receipt::parse(token).unwrap();
        assert_eq!(receipt.verify(&public), Ok(()));
        let inclusion = receipt.inclusion.unwrap();
        let (size, leaves) = trees
            .entry(receipt.signature)
            .or_insert((inclusion.size, BTreeSet::new()));
        assert_eq!(*size, inclusion.size, "one signature, one tree");
        assert!(leaves.insert(inclusion.index), "one record per leaf");
    }
    for (size, leaves) in trees.values() {
        let every: BTreeSet<u16> = (0..*size).collect();
        assert_eq!(
            leaves, &every,
            "a signed tree of {size} whose leaves not all are stored records"
        );
    }
}

/// Records `count` consents of different subjects on site `shop` and waits
/// until the log holds them: the records, and their tenant.
pub async fn record_logged(
    app: &TestApp,
    client: &ConsentClient,
    count: usize,
) -> (Vec<ConsentRecord>, uuid::Uuid) {
    let records = record_many(client, "shop", count, count.min(8)).await;
    let tenant_id = tenant_of(&records[0].receipt.as_ref().unwrap().claims_json);
    log_caught_up(app, tenant_id).await;
    (records, tenant_id)
}

/// Waits until the sequencer has passed every record and preference event
/// of `tenant_id` and a checkpoint covers its whole log, so that no row of
/// the tenant's changes from then on unless something is written.
pub async fn log_caught_up(app: &TestApp, tenant_id: uuid::Uuid) {
    let sql = app.sql().await;
    for _ in 0..400 {
        let done: bool = sql
            .query_one(
                "SELECT NOT EXISTS (
                     SELECT 1 FROM consent_records c, consentd_meta.log_sequencer s
                     WHERE c.tenant_id = $1
                       AND (c.record_time, c.record_id) > (s.record_time, s.record_id))
                 AND NOT EXISTS (
                     SELECT 1 FROM preference_events e, consentd_meta.log_sequencer s
                     WHERE e.tenant_id = $1
                       AND (e.event_time, e.event_id) > (s.event_time, s.event_id))
                 AND NOT EXISTS (
                     SELECT 1 FROM log_heads WHERE tenant_id = $1 AND tree_size > checkpoint_size)",
                &[&tenant_id],
            )
            .await
            .unwrap()
            .get(0);
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the log of {tenant_id} did not catch up in 20 s");
}

/// The latest checkpoint once it covers at least `size` leaves; the
/// sequencer runs every 50 ms in the tests, so this waits for it.
pub async fn checkpoint_of_at_least(client: &mut ConsentClient, size: i64) -> LogCheckpoint {
    for _ in 0..400 {
        match client.get_checkpoint(GetCheckpointRequest::default()).await {
            Ok(answer) => {
                let checkpoint = answer.into_inner().checkpoint.unwrap();
                if checkpoint.tree_size >= size {
                    return checkpoint;
                }
            }
            Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint of {size} leaves after 20 s");
}

/// Opens a checkpoint's note with the served key, as a witness does.
pub async fn opened(client: &mut ConsentClient, checkpoint: &LogCheckpoint) -> Checkpoint {
    let public = served_key(client, "sig-1").await;
    let opened = Checkpoint::open(&checkpoint.note, &[public]).expect("a signed checkpoint");
    assert_eq!(opened.size as i64, checkpoint.tree_size);
    assert_eq!(opened.root.to_vec(), checkpoint.root_hash);
    opened
}

pub fn hashes(proof: &[Vec<u8>]) -> Vec<Hash> {
    proof
        .iter()
        .map(|h| h.clone().try_into().unwrap())
        .collect()
}

pub async fn inclusion(
    client: &mut ConsentClient,
    leaf: Leaf,
    tree_size: i64,
) -> Result<GetInclusionProofResponse, tonic::Status> {
    client
        .get_inclusion_proof(GetInclusionProofRequest {
            leaf: Some(leaf),
            tree_size,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// What an auditor checks of a record's or an event's proof against a
/// checkpoint.
pub fn leaf_verifies(
    proof: &GetInclusionProofResponse,
    checkpoint: &Checkpoint,
) -> Result<(), String> {
    if proof.state != LogLeafState::Present as i32 {
        return Err(format!("the record is {:?}", proof.state()));
    }
    let leaf: Hash = proof.leaf_hash.clone().try_into().unwrap();
    verify_record_inclusion(
        proof.claims_json.as_bytes(),
        &proof.salt,
        &leaf,
        proof.leaf_index as u64,
        &hashes(&proof.hashes),
        checkpoint,
    )
}

async fn consistent(client: &mut ConsentClient, old: &Checkpoint, new: &Checkpoint) -> bool {
    let proof = client
        .get_consistency_proof(GetConsistencyProofRequest {
            old_size: old.size as i64,
            new_size: new.size as i64,
        })
        .await
        .unwrap()
        .into_inner();
    verify_consistency(
        old.size,
        new.size,
        &old.root,
        &new.root,
        &hashes(&proof.hashes),
    )
    .is_ok()
}

/// Every checkpoint of `checkpoints` is consistent with every later one
/// and with `last`.
pub async fn all_consistent(
    client: &mut ConsentClient,
    checkpoints: &[Checkpoint],
    last: &Checkpoint,
) {
    for (i, old) in checkpoints.iter().enumerate() {
        for new in checkpoints[i..].iter().chain([last]) {
            assert!(
                consistent(client, old, new).await,
                "{} to {}",
                old.size,
                new.size
            );
        }
    }
}

/// The leaf stays, a tombstone: in the tree of `last`, without its record
/// or event and without salt.
pub async fn assert_tombstone(client: &mut ConsentClient, leaf: Leaf, last: &Checkpoint) {
    let proof = inclusion(client, leaf, 0).await.unwrap();
    assert_eq!(proof.state(), LogLeafState::Erased);
    assert!(proof.claims_json.is_empty() && proof.salt.is_empty());
    let leaf: Hash = proof.leaf_hash.clone().try_into().unwrap();
    let path = hashes(&proof.hashes);
    let index = proof.leaf_index as u64;
    assert_eq!(
        verify_inclusion(index, last.size, &leaf, &path, &last.root),
        Ok(())
    );
}

#[tokio::test]
async fn every_record_is_a_leaf_of_its_tenants_log_under_a_signed_checkpoint() {
    let app = TestApp::spawn().await;
    let mut acme = app.tenant_client("acme").await;
    let mut other = app.tenant_client("other").await;
    let records = record_many(&acme, "shop", 150, 32).await;
    let theirs = record_many(&other, "shop", 7, 4).await;

    let checkpoint = checkpoint_of_at_least(&mut acme, 150).await;
    assert_eq!(
        checkpoint.tree_size, 150,
        "one leaf per record, of this tenant only"
    );
    let tenant_line = checkpoint.note.lines().next().unwrap();
    assert!(
        tenant_line.starts_with("consentd.test/log/"),
        "{tenant_line}"
    );
    let signed = opened(&mut acme, &checkpoint).await;
    assert_eq!(checkpoint_of_at_least(&mut other, 7).await.tree_size, 7);

    let mut indexes = BTreeSet::new();
    for record in &records {
        let proof = inclusion(&mut acme, Leaf::RecordId(record.id.clone()), 0)
            .await
            .unwrap();
        assert_eq!(proof.tree_size, 150);
        assert_eq!(proof.record_id, record.id);
        assert_eq!(leaf_verifies(&proof, &signed), Ok(()));
        // The leaf commits to the claims of the record's receipt.
        assert_eq!(
            proof.claims_json,
            record.receipt.as_ref().unwrap().claims_json
        );
        assert_eq!(proof.checkpoint.as_ref(), Some(&checkpoint));
        let by_index = inclusion(&mut acme, Leaf::LeafIndex(proof.leaf_index), 150)
            .await
            .unwrap();
        assert_eq!(by_index, proof);
        indexes.insert(proof.leaf_index);
    }
    assert_eq!(indexes, (0..150).collect(), "every leaf is one record");

    // Another tenant's record is not in this log, and not found.
    let status = inclusion(&mut acme, Leaf::RecordId(theirs[0].id.clone()), 0)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // A proof of a smaller tree verifies against its own root.
    let proof = inclusion(&mut acme, Leaf::LeafIndex(3), 10).await.unwrap();
    assert_eq!(proof.hashes.len(), 4);
    assert_eq!(proof.checkpoint, None, "no checkpoint was signed at 10");
}

#[tokio::test]
async fn log_requests_out_of_range_are_invalid_arguments_naming_the_field() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let status = client
        .get_checkpoint(GetCheckpointRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "no checkpoint yet");
    record_many(&client, "shop", 3, 3).await;
    checkpoint_of_at_least(&mut client, 3).await;
    let cases = [
        (
            inclusion(&mut client, Leaf::LeafIndex(0), -1).await,
            "tree_size",
        ),
        (
            inclusion(&mut client, Leaf::LeafIndex(-1), 0).await,
            "leaf_index",
        ),
        (
            inclusion(&mut client, Leaf::RecordId("nope".into()), 0).await,
            "record_id",
        ),
        (
            inclusion(&mut client, Leaf::LeafIndex(0), 4).await,
            "tree_size",
        ),
        (
            inclusion(&mut client, Leaf::LeafIndex(2), 2).await,
            "tree_size",
        ),
    ];
    for (answer, field) in cases {
        let status = answer.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(violated_fields(&status), [field]);
    }
    for (old_size, new_size, field) in [(0, 3, "old_size"), (3, 2, "new_size"), (1, 4, "new_size")]
    {
        let status = client
            .get_consistency_proof(GetConsistencyProofRequest { old_size, new_size })
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{old_size}..{new_size}"
        );
        assert_eq!(violated_fields(&status), [field]);
    }
    let status = client
        .get_checkpoint(GetCheckpointRequest { tree_size: 2 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "none signed at 2");
}

#[tokio::test]
async fn a_record_altered_deleted_or_inserted_in_postgres_is_caught_by_the_next_check() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let records = record_many(&client, "shop", 10, 10).await;
    let first = checkpoint_of_at_least(&mut client, 10).await;
    let first = opened(&mut client, &first).await;
    for record in &records {
        let proof = inclusion(&mut client, Leaf::RecordId(record.id.clone()), 0)
            .await
            .unwrap();
        assert_eq!(leaf_verifies(&proof, &first), Ok(()));
    }
    let sql = app.sql().await;
    let (altered, deleted, copied) = (&records[3].id, &records[5].id, &records[7].id);

    // Altered: the record no longer makes its leaf.
    sql.execute(
        "UPDATE consent_records SET banner_revision = 'forged' WHERE record_id = $1::text::uuid",
        &[altered],
    )
    .await
    .unwrap();
    let proof = inclusion(&mut client, Leaf::RecordId(altered.clone()), 0)
        .await
        .unwrap();
    assert!(
        leaf_verifies(&proof, &first).is_err(),
        "an altered record verifies"
    );

    // Deleted: its leaf stays, and says the record is gone without an erasure.
    sql.execute(
        "DELETE FROM consent_records WHERE record_id = $1::text::uuid",
        &[deleted],
    )
    .await
    .unwrap();
    let proof = inclusion(&mut client, Leaf::RecordId(deleted.clone()), 0)
        .await
        .unwrap();
    assert_eq!(proof.state(), LogLeafState::Missing);

    // Inserted: a copy with another id and subject, and the original's seal.
    let forged: String = sql
        .query_one(
            "WITH forged AS (
                 INSERT INTO consent_records
                 SELECT (jsonb_populate_record(c, jsonb_build_object(
                     'record_id', gen_random_uuid(), 'subject_id', 'forged',
                     'record_time', clock_timestamp()))).*
                 FROM consent_records c WHERE record_id = $1::text::uuid
                 RETURNING record_id)
             SELECT record_id::text FROM forged",
            &[copied],
        )
        .await
        .unwrap()
        .get(0);
    // Records after the forged one are logged, so the sequencer passed it.
    let later = recorded(&mut client, decision("shop", "later")).await;
    let latest = checkpoint_of_at_least(&mut client, 11).await;
    let latest = opened(&mut client, &latest).await;
    let proof = inclusion(&mut client, Leaf::RecordId(later.id.clone()), 0)
        .await
        .unwrap();
    assert_eq!(leaf_verifies(&proof, &latest), Ok(()));
    let status = inclusion(&mut client, Leaf::RecordId(forged), 0)
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "a forged record is never logged"
    );
    assert_eq!(latest.size, 11);
    assert!(consistent(&mut client, &first, &latest).await);

    // A leaf changed in the log itself: no proof from the old checkpoint
    // to the new one holds, nor any inclusion proof through it.
    sql.execute(
        "UPDATE log_leaves SET leaf_hash = sha256(leaf_hash) WHERE leaf_index = 1",
        &[],
    )
    .await
    .unwrap();
    assert!(
        !consistent(&mut client, &first, &latest).await,
        "a changed leaf went unseen"
    );
    let proof = inclusion(&mut client, Leaf::LeafIndex(0), 0).await.unwrap();
    assert!(leaf_verifies(&proof, &latest).is_err());
}

#[tokio::test]
async fn an_erasure_through_the_api_leaves_every_checkpoint_consistent_with_the_later_ones() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let mut checkpoints = Vec::new();
    let mut erased: Vec<ConsentRecord> = Vec::new();
    let mut size = 0;
    for round in 0..4 {
        for i in 0..3 {
            let subject = if i == 0 {
                format!("erased-{round}")
            } else {
                format!("kept-{round}-{i}")
            };
            let record = recorded(&mut client, decision("shop", &subject)).await;
            if i == 0 {
                erased.push(record);
            }
        }
        size += 3;
        let checkpoint = checkpoint_of_at_least(&mut client, size).await;
        checkpoints.push(opened(&mut client, &checkpoint).await);
        let subject_id = format!("erased-{round}");
        client
            .erase_consents(EraseConsentsRequest {
                site_id: "shop".into(),
                subject_id,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let last = checkpoint_of_at_least(&mut client, size).await;
    let last = opened(&mut client, &last).await;
    all_consistent(&mut client, &checkpoints, &last).await;
    for record in &erased {
        assert_tombstone(&mut client, Leaf::RecordId(record.id.clone()), &last).await;
    }
    nothing_left_of_the_erased(&app, "consent_records", "subject_id").await;
}

/// Asserts that `table` holds no row of a person erased by the test (ids
/// `erased-…` in `column`): with the row goes the leaf's salt.
pub async fn nothing_left_of_the_erased(app: &TestApp, table: &str, column: &str) {
    let query = format!("SELECT count(*) FROM {table} WHERE {column} LIKE 'erased-%'");
    let left = count(&app.sql().await, &query, &[]).await;
    assert_eq!(
        left, 0,
        "{table} keeps rows of erased people, salts included"
    );
}
