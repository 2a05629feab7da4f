//! The sequencer's steps: reading its cursor and the records committed
//! after it, turning them into leaves, appending them, and signing the
//! checkpoints that are due. `super` runs them in its transactions.

use std::{collections::HashMap, time::SystemTime};

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::*;
use crate::domain::merkle::{LOG_BLOCK_HEIGHTS, Node};
use crate::store::{Result, consent_row::record_from_row, row::StoredRow, run};

/// A tenant's head as read: its frontier and its latest checkpoint.
pub(super) struct Head {
    frontier: Frontier,
    checkpoint: Option<(u64, SystemTime)>,
}

pub(super) fn head_from_row(row: &tokio_postgres::Row) -> Result<(Uuid, Head)> {
    let row = StoredRow::of("log_heads", row);
    let size = row.get::<i64>("tree_size")? as u64;
    let frontier = row.parse("frontier", |bytes: Vec<u8>| {
        Frontier::from_stored(size, &bytes)
    })?;
    let checkpoint_size = row.get::<i64>("checkpoint_size")? as u64;
    let checkpoint = row
        .get::<Option<SystemTime>>("checkpoint_time")?
        .map(|time| (checkpoint_size, time));
    Ok((
        row.get("tenant_id")?,
        Head {
            frontier,
            checkpoint,
        },
    ))
}

pub(super) async fn sequencer_session(client: &impl GenericClient) -> Result<()> {
    run::query_one(
        client,
        include_str!("../sql/log_sequencer_session.sql"),
        &[],
    )
    .await?;
    Ok(())
}

pub(super) type Cursor = (SystemTime, Uuid);

pub(super) async fn read_cursor(client: &impl GenericClient) -> Result<Cursor> {
    let cursor = run::query_one(client, include_str!("../sql/log_cursor.sql"), &[]).await?;
    let cursor = StoredRow::of("log_sequencer", &cursor);
    Ok((cursor.get("record_time")?, cursor.get("record_id")?))
}

/// The write watermark: every record and event older is committed and
/// visible to the next statement's snapshot.
pub(super) async fn watermark(client: &impl GenericClient) -> Result<SystemTime> {
    StoredRow::of(
        "consentd_write_watermark()",
        &run::query_one(client, include_str!("../sql/list_watermark.sql"), &[]).await?,
    )
    .get("watermark")
}

/// Up to `batch` rows of `sql` (records' or events') committed after
/// `cursor` and before `watermark`, in log order.
pub(super) async fn after_cursor(
    client: &impl GenericClient,
    sql: &str,
    cursor: Cursor,
    watermark: SystemTime,
    batch: i64,
) -> Result<(Cursor, Vec<tokio_postgres::Row>)> {
    let rows = run::query(client, sql, &[&cursor.0, &cursor.1, &watermark, &batch]).await?;
    Ok((cursor, rows))
}

/// Appends a batch's leaves, then its events', to their tenants' logs and
/// moves each cursor past the last record or event read.
pub(super) async fn append(
    client: &impl GenericClient,
    batch: &Batch,
    events: &preference::EventBatch,
) -> Result<()> {
    let tenants: Vec<Uuid> = (batch.leaves.iter().chain(&events.leaves))
        .map(|leaf| leaf.0)
        .collect();
    let mut heads: HashMap<Uuid, Frontier> = HashMap::new();
    for row in run::query(client, include_str!("../sql/log_heads.sql"), &[&tenants]).await? {
        let (tenant_id, head) = head_from_row(&row)?;
        heads.insert(tenant_id, head.frontier);
    }
    let mut leaves = Leaves::default();
    let mut blocks = Blocks::default();
    let records = batch.leaves.iter().map(|l| (l, LeafKind::ConsentRecord));
    let logged = events.leaves.iter().map(|l| (l, LeafKind::PreferenceEvent));
    for (&(tenant_id, leaf, record_id), kind) in records.chain(logged) {
        let frontier = heads.entry(tenant_id).or_default();
        leaves.push(tenant_id, frontier.size(), leaf, record_id, kind);
        for (node, hash) in frontier.push(leaf, LOG_BLOCK_HEIGHTS) {
            blocks.push(tenant_id, node, hash);
        }
    }
    run::execute(
        client,
        include_str!("../sql/log_append.sql"),
        &[
            &leaves.tenants,
            &leaves.indexes,
            &leaves.hashes,
            &leaves.records,
            &leaves.kinds,
        ],
    )
    .await?;
    if !blocks.tenants.is_empty() {
        run::execute(
            client,
            include_str!("../sql/log_save_blocks.sql"),
            &[
                &blocks.tenants,
                &blocks.levels,
                &blocks.indexes,
                &blocks.hashes,
            ],
        )
        .await?;
    }
    let (tenants, sizes, frontiers): (Vec<Uuid>, Vec<i64>, Vec<Vec<u8>>) = heads
        .iter()
        .map(|(tenant, frontier)| (*tenant, frontier.size() as i64, frontier.to_stored()))
        .collect();
    run::execute(
        client,
        include_str!("../sql/log_save_heads.sql"),
        &[&tenants, &sizes, &frontiers],
    )
    .await?;
    if let Some(last) = batch.last_read {
        run::execute(
            client,
            include_str!("../sql/log_move_cursor.sql"),
            &[&last.0, &last.1],
        )
        .await?;
    }
    if let Some(last) = events.last_read {
        preference::move_event_cursor(client, last).await?;
    }
    Ok(())
}

/// A batch's leaves, in log order, and the last record read.
pub(super) struct Batch {
    leaves: Vec<(Uuid, Hash, Uuid)>,
    pub(super) last_read: Option<Cursor>,
}

/// The leaves of a batch's records (tenant, leaf hash, record id), and how
/// many records were left out because their receipt does not verify (rows
/// written behind consentd's back).
pub(super) fn leaves_of(
    rows: &[tokio_postgres::Row],
    signing: &SigningKeyring,
) -> Result<(Batch, u64)> {
    let mut checker = ReceiptChecker::new(signing);
    let mut batch = Batch {
        leaves: Vec::with_capacity(rows.len()),
        last_read: None,
    };
    let mut rejected = Vec::new();
    for row in rows {
        let stored = StoredRow::of("consent_records", row);
        let tenant_id: Uuid = stored.get("tenant_id")?;
        let record = record_from_row(row)?;
        batch.last_read = Some((record.record_time, record.id));
        let salt: Option<Vec<u8>> = stored.get("log_salt")?;
        let salt: Option<[u8; SALT_BYTES]> = salt.and_then(|salt| salt.try_into().ok());
        // The claims the receipt check proves signed are the leaf's: built
        // once, from the row.
        let receipt = receipt::receipt(tenant_id, &record);
        let checked = checker.check(receipt.as_ref());
        let (Some(salt), Some(receipt), Ok(())) = (salt, &receipt, &checked) else {
            rejected.push((record.id, checked.err()));
            continue;
        };
        let leaf = record_leaf(&salt, &receipt.claims_json);
        batch.leaves.push((tenant_id, leaf, record.id));
    }
    if let Some((first, why)) = rejected.first() {
        tracing::error!(
            rejected = rejected.len(),
            first_record_id = %first,
            why = why.as_deref().unwrap_or("no salt"),
            "stored records that are not consentd's: left out of the log"
        );
    }
    Ok((batch, rejected.len() as u64))
}

/// The leaves of one batch, as log_append.sql takes them.
#[derive(Default)]
pub(super) struct Leaves {
    tenants: Vec<Uuid>,
    indexes: Vec<i64>,
    hashes: Vec<Vec<u8>>,
    records: Vec<Uuid>,
    kinds: Vec<i16>,
}

impl Leaves {
    fn push(&mut self, tenant_id: Uuid, index: u64, hash: Hash, record_id: Uuid, kind: LeafKind) {
        self.tenants.push(tenant_id);
        self.indexes.push(index as i64);
        self.hashes.push(hash.to_vec());
        self.records.push(record_id);
        self.kinds.push(kind.to_db());
    }
}

/// The block roots one batch completed, as log_save_blocks.sql takes them.
#[derive(Default)]
struct Blocks {
    tenants: Vec<Uuid>,
    levels: Vec<i16>,
    indexes: Vec<i64>,
    hashes: Vec<Vec<u8>>,
}

impl Blocks {
    fn push(&mut self, tenant_id: Uuid, node: Node, hash: Hash) {
        self.tenants.push(tenant_id);
        self.levels.push(node.height as i16);
        self.indexes.push(node.index as i64);
        self.hashes.push(hash.to_vec());
    }
}

/// Signs a checkpoint of every log whose policy says one is due.
pub(super) async fn sign_due_checkpoints(
    client: &impl GenericClient,
    signing: &SigningKeyring,
    config: &SequencerConfig,
    now: SystemTime,
) -> Result<u64> {
    let mut due = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in run::query(client, include_str!("../sql/log_unsigned_heads.sql"), &[]).await? {
        let (tenant_id, head) = head_from_row(&row)?;
        let size = head.frontier.size();
        if !config.checkpoints.due(size, head.checkpoint, now) {
            continue;
        }
        let checkpoint = Checkpoint {
            origin: log_origin(&config.origin_prefix, tenant_id),
            size,
            root: head.frontier.root(),
        };
        due.0.push(tenant_id);
        due.1.push(size as i64);
        due.2.push(checkpoint.root.to_vec());
        due.3.push(checkpoint.sign(signing));
        due.4.push(now);
    }
    if due.0.is_empty() {
        return Ok(0);
    }
    run::execute(
        client,
        include_str!("../sql/log_save_checkpoints.sql"),
        &[&due.0, &due.1, &due.2, &due.3, &due.4],
    )
    .await?;
    Ok(due.0.len() as u64)
}
