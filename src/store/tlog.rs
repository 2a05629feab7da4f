//! Each tenant's append-only log: the sequencer that gives committed
//! records and preference events their leaves and signs checkpoints, and
//! the reads that proofs are made from. What a leaf is and when a
//! checkpoint is due is `domain::tlog`; the proofs themselves are
//! `domain::merkle`.
//!
//! The sequencer runs apart from the write path: the writers store a salt
//! with each record and, with the log on, its leaf and a tag over it
//! (`domain::tlog::LeafTags`). One sequencer at a time (a transaction-level
//! advisory lock, so every replica may try) reads the records committed
//! since its cursor, below the write watermark (as pollers do), so every
//! record is sequenced exactly once, in (record time, id) order. It takes
//! the leaves whose tags verify as they are; the other rows (stored before
//! the tags, with the log off, or behind consentd's back) are read whole
//! and logged only when their receipts verify. Events follow each round's
//! records, with a cursor of their own (`preference`).

use std::{collections::HashMap, time::SystemTime};

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{
    Error, Result, Store, consent_row::record_from_row, row::StoredRow, run, stored::StoredEnum,
};
use crate::domain::{
    checkpoint::{Checkpoint, log_origin},
    consent::ConsentRecord,
    keyring::SigningKeyring,
    merkle::{Hash, Node, Wanted},
    preference::PreferenceEvent,
    receipt,
    tlog::{
        CheckpointPolicy, Frontier, LeafKind, LeafRef, LeafTags, ReceiptChecker, SALT_BYTES,
        TaggedRecord, record_leaf,
    },
};

mod preference;
mod sequence;

use sequence::*;

/// Arbitrary, fixed: "tlogseq1" in ASCII.
const SEQUENCER_LOCK: i64 = 0x746c_6f67_7365_7131;

/// How the sequencer works.
#[derive(Clone, Debug)]
pub struct SequencerConfig {
    /// Most records per transaction.
    pub batch: i64,
    pub checkpoints: CheckpointPolicy,
    /// The origin of a tenant's log is `PREFIX/TENANT_ID`.
    pub origin_prefix: String,
}

/// What one sequencer run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sequenced {
    /// Records read past the cursor.
    pub read: u64,
    /// Preference events read past theirs.
    pub events: u64,
    /// Of those, records whose receipt did not verify: not in the log.
    pub rejected: u64,
    pub checkpoints: u64,
}

/// A stored checkpoint.
#[derive(Clone, Debug)]
pub struct StoredCheckpoint {
    pub checkpoint: Checkpoint,
    /// The signed note.
    pub note: String,
    pub create_time: SystemTime,
}

/// A leaf, and what became of its record.
#[derive(Clone, Debug)]
pub struct StoredLeaf {
    pub index: u64,
    pub hash: Hash,
    pub kind: LeafKind,
    /// The record's id, or the preference event's.
    pub record_id: Uuid,
    pub record: LeafRecord,
}

#[derive(Clone, Debug)]
pub enum LeafRecord {
    /// Stored, with the salt its leaf commits to.
    Present {
        record: Box<ConsentRecord>,
        salt: Vec<u8>,
    },
    /// A stored preference event, with its salt.
    Event {
        event: Box<PreferenceEvent>,
        salt: Vec<u8>,
    },
    /// Erased or retired through consentd: the leaf is a tombstone.
    Erased,
    /// Gone without an erasure: deleted behind consentd's back.
    Missing,
}

impl Store {
    /// Sequences up to one batch of committed records and signs the
    /// checkpoints due, in one transaction. `None` when another sequencer
    /// has the turn.
    pub async fn sequence(
        &self,
        signing: &SigningKeyring,
        leaf_tags: &LeafTags,
        config: &SequencerConfig,
        now: SystemTime,
    ) -> Result<Option<Sequenced>> {
        let mut client = self.connection().await?;
        // The lock is held from the first read to the commit, so no
        // erasure commits in between (log_erasure_turn.sql) and every leaf
        // appended is of a record that was still stored. What the batch
        // costs the CPU meanwhile is a tag check per record, unless rows
        // without a tag need their receipts checked.
        let transaction = client.transaction().await?;
        sequencer_session(&transaction).await?;
        let locked = run::query_one(
            &transaction,
            include_str!("sql/try_retention_lock.sql"),
            &[&SEQUENCER_LOCK],
        )
        .await?;
        if !StoredRow::of("pg_try_advisory_xact_lock()", &locked).get::<bool>("locked")? {
            return Ok(None);
        }
        // The watermark first: every record and event older is committed and
        // visible to the statements after it.
        let watermark = watermark(&transaction).await?;
        let rows = after_cursor(
            &transaction,
            include_str!("sql/log_records_to_sequence.sql"),
            read_cursor(&transaction).await?,
            watermark,
            config.batch,
        )
        .await?;
        let event_rows = after_cursor(
            &transaction,
            include_str!("sql/log_events_to_sequence.sql"),
            preference::read_event_cursor(&transaction).await?,
            watermark,
            config.batch,
        )
        .await?;
        let (read, events_read) = (rows.len() as u64, event_rows.len() as u64);
        let mut batch = tagged_leaves(&rows, leaf_tags)?;
        let unproven = batch.unproven();
        let to_check = match unproven.0.is_empty() {
            true => Vec::new(),
            false => {
                run::query(
                    &transaction,
                    include_str!("sql/log_records_to_check.sql"),
                    &[&unproven.0, &unproven.1],
                )
                .await?
            }
        };
        let signing_keys = signing.clone();
        let (checked, events) = tokio::task::spawn_blocking(move || {
            Ok::<_, Error>((
                checked_leaves(&to_check, &signing_keys)?,
                preference::event_leaves(&event_rows)?,
            ))
        })
        .await
        .map_err(|error| Error::Internal(error.into()))??;
        let rejected = batch.fill(checked);
        if batch.last_read.is_some() || events.last_read.is_some() {
            append(&transaction, &batch, &events).await?;
        }
        let mut done = Sequenced {
            read,
            events: events_read,
            rejected,
            ..Sequenced::default()
        };
        done.checkpoints = sign_due_checkpoints(&transaction, signing, config, now).await?;
        transaction.commit().await?;
        Ok(Some(done))
    }

    /// The tenant's latest checkpoint, or the one of `size`.
    pub async fn log_checkpoint(
        &self,
        tenant_id: Uuid,
        size: Option<u64>,
    ) -> Result<StoredCheckpoint> {
        let client = self.connection().await?;
        let size = size.map(|s| s as i64);
        let row = run::query_opt(
            &*client,
            include_str!("sql/log_checkpoint.sql"),
            &[&tenant_id, &size],
        )
        .await?
        .ok_or(Error::NotFound)?;
        let row = StoredRow::of("log_checkpoints", &row);
        Ok(StoredCheckpoint {
            note: row.get("note")?,
            create_time: row.get("create_time")?,
            checkpoint: row.parse("note", |note: String| Checkpoint::read_unverified(&note))?,
        })
    }

    /// The tenant's log size: every leaf sequenced so far.
    pub async fn log_tree_size(&self, tenant_id: Uuid) -> Result<u64> {
        let client = self.connection().await?;
        let row = run::query_one(
            &*client,
            include_str!("sql/log_tree_size.sql"),
            &[&tenant_id],
        )
        .await?;
        Ok(StoredRow::of("log_heads", &row).get::<i64>("tree_size")? as u64)
    }

    /// The stored nodes (leaves and block roots) a proof of the tenant's
    /// log needs; a node the log lacks is absent from the map.
    pub async fn log_hashes(
        &self,
        tenant_id: Uuid,
        wanted: &Wanted<'_>,
    ) -> Result<HashMap<Node, Hash>> {
        let (levels, indexes): (Vec<i16>, Vec<i64>) = wanted
            .nodes()
            .iter()
            .map(|node| (node.height as i16, node.index as i64))
            .unzip();
        let client = self.connection().await?;
        let rows = run::query(
            &*client,
            include_str!("sql/log_hashes.sql"),
            &[&tenant_id, &levels, &indexes],
        )
        .await?;
        rows.iter()
            .map(|row| {
                let row = StoredRow::of("log_blocks", row);
                let node = Node {
                    height: row.get::<i16>("level")? as u32,
                    index: row.get::<i64>("node_index")? as u64,
                };
                let hash = row.parse("hash", |hash: Vec<u8>| {
                    Hash::try_from(hash).map_err(|_| "not 32 bytes")
                })?;
                Ok((node, hash))
            })
            .collect()
    }

    /// A leaf of the tenant's log, with its record.
    pub async fn log_leaf(&self, tenant_id: Uuid, leaf: LeafRef) -> Result<StoredLeaf> {
        let client = self.connection().await?;
        let (record_id, index) = match leaf {
            LeafRef::Record(id) => (Some(id), None),
            LeafRef::Index(index) => (None, Some(index as i64)),
            LeafRef::PreferenceEvent(id) => {
                return preference::event_leaf(&*client, tenant_id, id).await;
            }
        };
        let row = run::query_opt(
            &*client,
            include_str!("sql/log_leaf.sql"),
            &[&tenant_id, &record_id, &index],
        )
        .await?
        .ok_or(Error::NotFound)?;
        let stored = StoredRow::of("log_leaves", &row);
        if stored.parse("leaf_kind", LeafKind::from_db)? == LeafKind::PreferenceEvent {
            let event_id = stored.get("leaf_record_id")?;
            return preference::event_leaf(&*client, tenant_id, event_id).await;
        }
        let salt: Option<Vec<u8>> = stored.get("log_salt")?;
        let record = match (stored.get::<bool>("erased")?, salt) {
            (true, _) => LeafRecord::Erased,
            (false, Some(salt)) => LeafRecord::Present {
                record: Box::new(record_from_row(&row)?),
                salt,
            },
            // No record joined (or one without a salt, which consentd never
            // writes): gone without an erasure.
            (false, None) => LeafRecord::Missing,
        };
        stored_leaf(&stored, LeafKind::ConsentRecord, record)
    }
}

/// A leaf read by log_leaf.sql or log_event_leaf.sql, with what became of
/// its record or event.
fn stored_leaf(stored: &StoredRow, kind: LeafKind, record: LeafRecord) -> Result<StoredLeaf> {
    Ok(StoredLeaf {
        index: stored.get::<i64>("leaf_index")? as u64,
        hash: stored.parse("leaf_hash", |bytes: Vec<u8>| {
            Hash::try_from(bytes).map_err(|_| "not 32 bytes")
        })?,
        kind,
        record_id: stored.get("leaf_record_id")?,
        record,
    })
}

/// Marks the leaves of records just deleted through consentd as erased,
/// once any sequencer batch in flight has committed.
pub(super) async fn mark_erased(
    client: &impl GenericClient,
    tenant_id: Uuid,
    record_ids: &[Uuid],
) -> Result<()> {
    mark_leaves_erased(client, tenant_id, LeafKind::ConsentRecord, record_ids).await
}

/// Marks the leaves of records or events (`kind`) just deleted through
/// consentd as erased, as [`mark_erased`] does.
pub(super) async fn mark_leaves_erased(
    client: &impl GenericClient,
    tenant_id: Uuid,
    kind: LeafKind,
    record_ids: &[Uuid],
) -> Result<()> {
    if !record_ids.is_empty() {
        run::query_one(
            client,
            include_str!("sql/log_erasure_turn.sql"),
            &[&SEQUENCER_LOCK],
        )
        .await?;
        run::execute(
            client,
            include_str!("sql/log_mark_erased.sql"),
            &[&tenant_id, &record_ids, &kind.to_db()],
        )
        .await?;
    }
    Ok(())
}
