//! The transparency log's read path at scale: a tenant log of a million
//! leaves built directly in PostgreSQL (the leaves, the block roots and the
//! head, as the sequencer would store them, computed with consentd's own
//! `Frontier`), then GetCheckpoint, GetInclusionProof and
//! GetConsistencyProof timed over gRPC, and the full read the proofs made
//! before the blocks, for comparison.

use std::time::{Duration, Instant};

use consentd::{
    api::proto::{
        GetCheckpointRequest, GetConsistencyProofRequest, GetInclusionProofRequest,
        consent_service_client::ConsentServiceClient, get_inclusion_proof_request::Leaf,
    },
    domain::{
        merkle::{Hash, LOG_BLOCK_HEIGHTS, inclusion_proof, leaf_hash},
        tlog::Frontier,
    },
};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::{Tally, with_key};

type Error = Box<dyn std::error::Error>;

async fn connect(database_url: &str) -> Result<tokio_postgres::Client, Error> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn tenant_id(sql: &tokio_postgres::Client, tenant: &str) -> Result<Uuid, Error> {
    let row = sql
        .query_one("SELECT tenant_id FROM tenants WHERE name = $1", &[&tenant])
        .await?;
    Ok(row.get(0))
}

/// Stores a log of `leaves` tombstone leaves for `tenant` (which must have
/// none yet) and a head with no checkpoint, so the running sequencer signs
/// one at once.
pub async fn fixture(database_url: &str, tenant: &str, leaves: u64) -> Result<(), Error> {
    let started = Instant::now();
    let mut sql = connect(database_url).await?;
    let tenant_id = tenant_id(&sql, tenant).await?;
    let transaction = sql.transaction().await?;
    let mut frontier = Frontier::default();
    let chunk = 50_000;
    let mut stored_blocks = 0;
    for start in (0..leaves).step_by(chunk) {
        let end = (start + chunk as u64).min(leaves);
        let (mut indexes, mut hashes, mut records) = (Vec::new(), Vec::new(), Vec::new());
        let (mut levels, mut block_indexes, mut block_hashes) =
            (Vec::new(), Vec::new(), Vec::new());
        for index in start..end {
            let leaf = leaf_hash(&index.to_be_bytes());
            for (node, hash) in frontier.push(leaf, LOG_BLOCK_HEIGHTS) {
                levels.push(node.height as i16);
                block_indexes.push(node.index as i64);
                block_hashes.push(hash.to_vec());
            }
            indexes.push(index as i64);
            hashes.push(leaf.to_vec());
            records.push(Uuid::new_v4());
        }
        transaction
            .execute(
                "INSERT INTO log_leaves (tenant_id, leaf_index, leaf_hash, record_id, erased)
                 SELECT $1, * , true FROM unnest($2::bigint[], $3::bytea[], $4::uuid[])",
                &[&tenant_id, &indexes, &hashes, &records],
            )
            .await?;
        stored_blocks += levels.len();
        transaction
            .execute(
                "INSERT INTO log_blocks (tenant_id, level, block_index, hash)
                 SELECT $1, * FROM unnest($2::smallint[], $3::bigint[], $4::bytea[])",
                &[&tenant_id, &levels, &block_indexes, &block_hashes],
            )
            .await?;
    }
    transaction
        .execute(
            "INSERT INTO log_heads (tenant_id, tree_size, frontier) VALUES ($1, $2, $3)",
            &[&tenant_id, &(leaves as i64), &frontier.to_stored()],
        )
        .await?;
    transaction.commit().await?;
    sql.execute("VACUUM ANALYZE log_leaves", &[]).await?;
    sql.execute("VACUUM ANALYZE log_blocks", &[]).await?;
    println!(
        "log fixture: leaves={leaves} blocks={stored_blocks} elapsed_s={:.1}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A reproducible spread of numbers below `n` (SplitMix64).
fn spread(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % n
}

/// Times `count` calls, one after another.
async fn timed<F, Fut>(what: &str, count: u64, mut call: F) -> Result<(), Error>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>>,
{
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..count {
        let sent = Instant::now();
        match call(n).await {
            Ok(()) => tally.latencies.push(sent.elapsed()),
            Err(status) => *tally.errors.entry(crate::code(status)).or_default() += 1,
        }
    }
    tally.report(what, started.elapsed());
    Ok(())
}

/// Waits for the checkpoint of the whole log, then times the log's reads.
pub async fn proofs(channel: Channel, key: &str, count: u64) -> Result<(), Error> {
    let mut client = ConsentServiceClient::new(channel);
    let deadline = Instant::now() + Duration::from_secs(60);
    let size = loop {
        let checkpoint = client
            .get_checkpoint(with_key(GetCheckpointRequest::default(), key))
            .await
            .ok()
            .and_then(|answer| answer.into_inner().checkpoint);
        match checkpoint {
            Some(checkpoint) => break checkpoint.tree_size,
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            None => return Err("no checkpoint after 60 s: is the sequencer on?".into()),
        }
    };
    for rpc in [
        "get_checkpoint",
        "get_inclusion_proof",
        "get_consistency_proof",
    ] {
        timed(&format!("{rpc} tree_size={size}"), count, |n| {
            let mut client = client.clone();
            // A leaf index, or an old size, spread over the log.
            let spread = spread(n, size as u64) as i64;
            async move {
                match rpc {
                    "get_checkpoint" => client
                        .get_checkpoint(with_key(GetCheckpointRequest::default(), key))
                        .await
                        .map(drop),
                    "get_inclusion_proof" => {
                        let request = GetInclusionProofRequest {
                            leaf: Some(Leaf::LeafIndex(spread)),
                            tree_size: size,
                        };
                        client
                            .get_inclusion_proof(with_key(request, key))
                            .await
                            .map(drop)
                    }
                    _ => {
                        let request = GetConsistencyProofRequest {
                            old_size: 1 + spread,
                            new_size: size,
                        };
                        client
                            .get_consistency_proof(with_key(request, key))
                            .await
                            .map(drop)
                    }
                }
            }
        })
        .await?;
    }
    Ok(())
}

/// What an inclusion proof cost before the blocks: every leaf hash of the
/// tenant read (the query consentd ran), then the proof computed from them.
pub async fn full_read(database_url: &str, tenant: &str, count: u64) -> Result<(), Error> {
    let sql = connect(database_url).await?;
    let tenant_id = tenant_id(&sql, tenant).await?;
    let size: i64 = sql
        .query_one(
            "SELECT tree_size FROM log_heads WHERE tenant_id = $1",
            &[&tenant_id],
        )
        .await?
        .get(0);
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..count {
        let sent = Instant::now();
        let row = sql
            .query_one(
                "SELECT coalesce(array_agg(leaf_hash ORDER BY leaf_index), '{}') AS hashes
                 FROM log_leaves WHERE tenant_id = $1 AND leaf_index < $2",
                &[&tenant_id, &size],
            )
            .await?;
        let leaves: Vec<Hash> = row
            .get::<_, Vec<Vec<u8>>>(0)
            .into_iter()
            .map(|hash| hash.try_into().expect("32 bytes"))
            .collect();
        let index = spread(n, size as u64) as usize;
        inclusion_proof(&leaves, index).map_err(|e| e.to_string())?;
        tally.latencies.push(sent.elapsed());
    }
    tally.report(
        &format!("full_read_inclusion tree_size={size}"),
        started.elapsed(),
    );
    Ok(())
}
