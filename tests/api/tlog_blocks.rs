//! Proofs of a log larger than one stored block (`merkle::blocks`): served
//! from block roots and a few leaves, they are the proofs from all leaves,
//! and a log sequenced before the blocks existed proves the same once the
//! migration has backfilled them.

use std::time::Duration;

use consentd::{
    api::proto::{GetCheckpointRequest, GetConsistencyProofRequest, GetInclusionProofRequest},
    domain::merkle::{Hash, consistency_proof, inclusion_proof, root, verify_inclusion},
};

use crate::helpers::{ConsentClient, TestApp, count, record_many, settings};

const RECORDS: i64 = 600;

/// Every leaf hash of the database's one log, in order.
async fn all_leaves(app: &TestApp) -> Vec<Hash> {
    let rows = app
        .sql()
        .await
        .query("SELECT leaf_hash FROM log_leaves ORDER BY leaf_index", &[])
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.get::<_, Vec<u8>>(0).try_into().unwrap())
        .collect()
}

fn hashes(proof: Vec<Vec<u8>>) -> Vec<Hash> {
    proof.into_iter().map(|h| h.try_into().unwrap()).collect()
}

/// Sizes and indexes on both sides of the block boundaries (16 and 256).
const EDGES: [usize; 12] = [1, 15, 16, 17, 255, 256, 257, 300, 511, 512, 513, 600];

/// Every served proof at the edges is the proof from all leaves, and the
/// latest checkpoint's proofs verify against its signed root.
async fn assert_proofs_from_all_leaves(client: &mut ConsentClient, leaves: &[Hash]) {
    let checkpoint = client
        .get_checkpoint(GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner()
        .checkpoint
        .unwrap();
    assert_eq!(checkpoint.tree_size, RECORDS);
    let signed_root: Hash = checkpoint.root_hash.try_into().unwrap();
    assert_eq!(signed_root, root(leaves));
    for &size in &EDGES {
        for index in EDGES.iter().map(|&e| e - 1).filter(|&i| i < size) {
            let served = client
                .get_inclusion_proof(GetInclusionProofRequest {
                    leaf: Some(
                        consentd::api::proto::get_inclusion_proof_request::Leaf::LeafIndex(
                            index as i64,
                        ),
                    ),
                    tree_size: size as i64,
                })
                .await
                .unwrap_or_else(|status| panic!("leaf {index} of {size}: {status:?}"))
                .into_inner();
            let served = hashes(served.hashes);
            assert_eq!(
                served,
                inclusion_proof(&leaves[..size], index).unwrap(),
                "leaf {index} of {size}"
            );
            if size == leaves.len() {
                let (i, n) = (index as u64, size as u64);
                assert_eq!(
                    verify_inclusion(i, n, &leaves[index], &served, &signed_root),
                    Ok(())
                );
            }
        }
        for &old in EDGES.iter().filter(|&&old| old <= size) {
            let served = client
                .get_consistency_proof(GetConsistencyProofRequest {
                    old_size: old as i64,
                    new_size: size as i64,
                })
                .await
                .unwrap_or_else(|status| panic!("{old} to {size}: {status:?}"))
                .into_inner();
            assert_eq!(
                hashes(served.hashes),
                consistency_proof(&leaves[..size], old).unwrap(),
                "{old} to {size}"
            );
        }
    }
}

#[tokio::test]
async fn a_log_across_block_boundaries_proves_as_from_all_leaves_also_after_the_backfill() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    record_many(&client, "shop", RECORDS as usize, 32).await;
    let mut signed = 0;
    for _ in 0..400 {
        signed = match client.get_checkpoint(GetCheckpointRequest::default()).await {
            Ok(answer) => answer.into_inner().checkpoint.unwrap().tree_size,
            Err(_) => 0,
        };
        if signed == RECORDS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(signed, RECORDS, "a checkpoint of every record");
    let sql = app.sql().await;
    let blocks = |level: i16| {
        let sql = &sql;
        async move {
            count(
                sql,
                "SELECT count(*) FROM log_blocks WHERE level = $1",
                &[&level],
            )
            .await
        }
    };
    // Stored as the sequencer appended: every complete block, no other.
    assert_eq!(blocks(4).await, RECORDS / 16);
    assert_eq!(blocks(8).await, RECORDS / 256);
    assert_eq!(blocks(12).await, 0);
    let leaves = all_leaves(&app).await;
    assert_proofs_from_all_leaves(&mut client, &leaves).await;

    // A log sequenced before migration 11: no blocks. The next start
    // applies the migration, which computes them from the leaves.
    let database_url = app.database_url.clone();
    app.stop().await;
    sql.batch_execute(
        "DROP TABLE log_blocks;
         DELETE FROM consentd_meta.schema_migrations WHERE version = 11",
    )
    .await
    .unwrap();
    let app = TestApp::spawn_on_database(database_url, settings()).await;
    let mut client = app.tenant_client("acme").await;
    assert_eq!(blocks(4).await, RECORDS / 16);
    assert_eq!(blocks(8).await, RECORDS / 256);
    assert_proofs_from_all_leaves(&mut client, &leaves).await;
    // The backfill's blocks are the sequencer's, byte for byte: a block
    // it got wrong would make some proof above differ.
    let wrong = "UPDATE log_blocks SET hash = sha256(hash) WHERE level = 8 AND block_index = 0";
    sql.execute(wrong, &[]).await.unwrap();
    let status = client
        .get_consistency_proof(GetConsistencyProofRequest {
            old_size: 257,
            new_size: RECORDS,
        })
        .await
        .unwrap();
    assert_ne!(
        hashes(status.into_inner().hashes),
        consistency_proof(&leaves, 257).unwrap(),
        "the proof is made of the stored block"
    );
}
