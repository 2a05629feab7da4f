//! The sequencer's fast path: it takes the leaf each writer made and
//! tagged, without reading the record back, and checks every row whose tag
//! is missing or does not verify by its receipt, as it did before the tags
//! (migration 12). A row inserted or copied in PostgreSQL stays out of the
//! log either way.

use std::collections::BTreeSet;

use consentd::api::proto::{LogLeafState, get_inclusion_proof_request::Leaf};
use tonic::Code;

use crate::{
    helpers::{TestApp, cluster_url, count, decision, record_many, recorded, settings},
    tlog::{checkpoint_of_at_least, inclusion, leaf_verifies, opened},
};

/// A copy of `source`'s row under a new id and subject, then `leaf_and_tag`
/// (a SET over the copy's columns) for its log leaf and tag; its id.
async fn copied(sql: &tokio_postgres::Client, source: &str, leaf_and_tag: &str) -> String {
    let copy: String = sql
        .query_one(
            "INSERT INTO consent_records
             SELECT (jsonb_populate_record(c, jsonb_build_object(
                 'record_id', gen_random_uuid(), 'subject_id', 'forged'))).*
             FROM consent_records c WHERE record_id = $1::text::uuid
             RETURNING record_id::text",
            &[&source],
        )
        .await
        .unwrap()
        .get(0);
    let set = format!("UPDATE consent_records SET {leaf_and_tag} WHERE record_id = $1::text::uuid");
    assert_eq!(sql.execute(&set, &[&copy]).await.unwrap(), 1);
    copy
}

#[tokio::test]
async fn the_sequencer_takes_tagged_leaves_and_checks_every_other_row_by_its_receipt() {
    // Writers make and tag leaves, but no sequencer runs yet: the rows can
    // be changed before the log reads them.
    let mut writers_only = settings();
    writers_only.log.enabled = false;
    let app = TestApp::spawn_with(&cluster_url(), writers_only).await;
    let client = app.tenant_client("acme").await;
    let records = record_many(&client, "shop", 8, 8).await;
    let id = |i: usize| records[i].id.clone();
    let sql = app.sql().await;
    let tagged = "SELECT count(*) FROM consent_records
                  WHERE length(log_leaf) = 32 AND length(log_tag) = 16";
    assert_eq!(count(&sql, tagged, &[]).await, 8, "every record tagged");
    let change = |statement: &'static str, i: usize| {
        let (sql, record_id) = (&sql, id(i));
        async move {
            let changed = sql.execute(statement, &[&record_id]).await.unwrap();
            assert_eq!(changed, 1, "{statement}");
        }
    };
    // As stored before migration 12, or with the log off: neither column.
    let untagged = "UPDATE consent_records SET log_leaf = NULL, log_tag = NULL
                    WHERE record_id = $1::text::uuid";
    change(untagged, 1).await;
    // A tag that is not the server's.
    let bad_tag = "UPDATE consent_records SET log_tag = substr(sha256(log_tag), 1, 16)
                   WHERE record_id = $1::text::uuid";
    change(bad_tag, 2).await;
    // Altered after its writer made its leaf: the tag still verifies.
    let altered = "UPDATE consent_records SET banner_revision = 'forged'
                   WHERE record_id = $1::text::uuid";
    change(altered, 3).await;
    // Its leaf swapped for another's, its tag kept.
    let swapped = "UPDATE consent_records SET log_leaf = sha256(log_leaf)
                   WHERE record_id = $1::text::uuid";
    change(swapped, 4).await;
    // Inserted: copies of a genuine row under new ids, one with a leaf and
    // tag of its own making, one keeping the original's (which bind the
    // original's id).
    let made_up = copied(
        &sql,
        &id(5),
        "log_leaf = sha256(log_leaf), log_tag = substr(sha256(log_salt), 1, 16)",
    )
    .await;
    let kept = copied(&sql, &id(6), "log_leaf = log_leaf").await;

    let database_url = app.database_url.clone();
    app.stop().await;
    let app = TestApp::spawn_on_database(database_url, settings()).await;
    let mut client = app.tenant_client("acme").await;
    let latest = checkpoint_of_at_least(&mut client, 8).await;
    let latest = opened(&mut client, &latest).await;
    assert_eq!(latest.size, 8, "the eight records, and nothing inserted");
    let mut indexes = BTreeSet::new();
    for i in [0, 1, 2, 4, 5, 6, 7] {
        let proof = inclusion(&mut client, Leaf::RecordId(id(i)), 0)
            .await
            .unwrap();
        indexes.insert(proof.leaf_index);
        // The record's own claims and salt make the logged leaf: for 1, 2
        // and 4 the receipt check rebuilt it, not the stored one.
        assert_eq!(leaf_verifies(&proof, &latest), Ok(()), "record {i}");
    }
    // Logged as its writer made it, so the change shows.
    let proof = inclusion(&mut client, Leaf::RecordId(id(3)), 0)
        .await
        .unwrap();
    indexes.insert(proof.leaf_index);
    assert_eq!(indexes, (0..8).collect(), "one leaf each");
    assert_eq!(proof.state(), LogLeafState::Present);
    assert_eq!(
        leaf_verifies(&proof, &latest),
        Err("the record's claims and salt do not make its leaf".into()),
        "an altered record verifies"
    );
    for forged in [made_up, kept] {
        let status = inclusion(&mut client, Leaf::RecordId(forged), 0)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "a forged record is logged");
    }
    let behind = "SELECT count(*) FROM consent_records c, consentd_meta.log_sequencer s
                  WHERE (c.record_time, c.record_id) > (s.record_time, s.record_id)";
    assert_eq!(
        count(&sql, behind, &[]).await,
        0,
        "the sequencer passed them"
    );

    // A logged record moved past the cursor: its tag binds its time, so it
    // is not taken for a second leaf of its record (which the log's unique
    // index would refuse, stopping the sequencer for every tenant).
    let moved = "UPDATE consent_records SET record_time = clock_timestamp()
                 WHERE record_id = $1::text::uuid";
    change(moved, 0).await;
    let later = recorded(&mut client, decision("shop", "later")).await;
    let latest = checkpoint_of_at_least(&mut client, 9).await;
    let latest = opened(&mut client, &latest).await;
    assert_eq!(latest.size, 9, "the later record only");
    let proof = inclusion(&mut client, Leaf::RecordId(later.id), 0)
        .await
        .unwrap();
    assert_eq!(leaf_verifies(&proof, &latest), Ok(()));
    let leaves_of_moved = "SELECT count(*) FROM log_leaves WHERE record_id = $1::text::uuid";
    assert_eq!(count(&sql, leaves_of_moved, &[&id(0)]).await, 1);
}
