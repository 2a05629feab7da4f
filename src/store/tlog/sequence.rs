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
) -> Result<Vec<tokio_postgres::Row>> {
    run::query(client, sql, &[&cursor.0, &cursor.1, &watermark, &batch]).await
}

/// Appends a batch's leaves, then its events', to their tenants' logs and
/// moves each cursor past the last record or event read.
pub(super) async fn append(
    client: &impl GenericClient,
    batch: &Batch,
    events: &preference::EventBatch,
) -> Result<()> {
    let tenants: Vec<Uuid> = (batch.leaves().map(|leaf| leaf.0))
        .chain(events.leaves.iter().map(|leaf| leaf.0))
        .collect();
    let mut heads: HashMap<Uuid, Frontier> = HashMap::new();
    for row in run::query(client, include_str!("../sql/log_heads.sql"), &[&tenants]).await? {
        let (tenant_id, head) = head_from_row(&row)?;
        heads.insert(tenant_id, head.frontier);
    }
    let mut leaves = Leaves::default();
    let mut blocks = Blocks::default();
    let records = batch.leaves().map(|l| (l, LeafKind::ConsentRecord));
    let logged = (events.leaves.iter()).map(|&l| (l, LeafKind::PreferenceEvent));
    for ((tenant_id, leaf, record_id), kind) in records.chain(logged) {
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

/// A batch's records in log order (tenant, record id, and the leaf once
/// known), and the last record read.
pub(super) struct Batch {
    records: Vec<(Uuid, Uuid, Option<Hash>)>,
    pub(super) last_read: Option<Cursor>,
}

impl Batch {
    /// The records whose leaf is not known yet: tenants, then ids, as
    /// log_records_to_check.sql takes them.
    pub(super) fn unproven(&self) -> (Vec<Uuid>, Vec<Uuid>) {
        (self.records.iter())
            .filter(|(_, _, leaf)| leaf.is_none())
            .map(|&(tenant_id, record_id, _)| (tenant_id, record_id))
            .unzip()
    }

    /// Takes the leaves of the records whose receipts verified; the rest
    /// stay out of the log. Returns how many stay out.
    pub(super) fn fill(&mut self, mut checked: HashMap<(Uuid, Uuid), Checked>) -> u64 {
        let mut rejected = Vec::new();
        for (tenant_id, record_id, leaf) in &mut self.records {
            if leaf.is_some() {
                continue;
            }
            match checked.remove(&(*tenant_id, *record_id)) {
                Some(Ok(hash)) => *leaf = Some(hash),
                Some(Err(why)) => rejected.push((*record_id, why)),
                None => rejected.push((*record_id, "deleted while sequenced".into())),
            }
        }
        if let Some((first, why)) = rejected.first() {
            tracing::error!(
                rejected = rejected.len(),
                first_record_id = %first,
                why,
                "stored records that are not consentd's: left out of the log"
            );
        }
        self.records.retain(|(_, _, leaf)| leaf.is_some());
        rejected.len() as u64
    }

    fn leaves(&self) -> impl Iterator<Item = (Uuid, Hash, Uuid)> + '_ {
        (self.records.iter())
            .filter_map(|&(tenant_id, record_id, leaf)| Some((tenant_id, leaf?, record_id)))
    }
}

/// A batch's records as log_records_to_sequence.sql reads them, with the
/// leaf of each whose writer's tag verifies. The others are checked by
/// their receipts ([`checked_leaves`]) before the batch is appended.
pub(super) fn tagged_leaves(rows: &[tokio_postgres::Row], tags: &LeafTags) -> Result<Batch> {
    let mut batch = Batch {
        records: Vec::with_capacity(rows.len()),
        last_read: None,
    };
    for row in rows {
        let stored = StoredRow::of("consent_records", row);
        let tenant_id: Uuid = stored.get("tenant_id")?;
        let record_id: Uuid = stored.get("record_id")?;
        let record_time: SystemTime = stored.get("record_time")?;
        batch.last_read = Some((record_time, record_id));
        let leaf: Option<Vec<u8>> = stored.get("log_leaf")?;
        let tag: Option<Vec<u8>> = stored.get("log_tag")?;
        let leaf = (leaf.and_then(|leaf| Hash::try_from(leaf).ok())).filter(|&leaf| {
            let tagged = TaggedRecord {
                tenant_id,
                record_id,
                record_time,
                leaf,
            };
            tag.is_some_and(|tag| tags.verifies(&tagged, &tag))
        });
        batch.records.push((tenant_id, record_id, leaf));
    }
    Ok(batch)
}

/// A record's leaf, or why it stays out of the log.
pub(super) type Checked = std::result::Result<Hash, String>;

/// The leaves of rows read whole (log_records_to_check.sql), from their
/// claims, for those whose receipts verify: a row written behind
/// consentd's back has none that covers its fields.
pub(super) fn checked_leaves(
    rows: &[tokio_postgres::Row],
    signing: &SigningKeyring,
) -> Result<HashMap<(Uuid, Uuid), Checked>> {
    let mut checker = ReceiptChecker::new(signing);
    let mut checked = HashMap::with_capacity(rows.len());
    for row in rows {
        let stored = StoredRow::of("consent_records", row);
        let tenant_id: Uuid = stored.get("tenant_id")?;
        let record = record_from_row(row)?;
        let salt: Option<Vec<u8>> = stored.get("log_salt")?;
        let salt: Option<[u8; SALT_BYTES]> = salt.and_then(|salt| salt.try_into().ok());
        // The claims the receipt check proves signed are the leaf's: built
        // once, from the row.
        let receipt = receipt::receipt(tenant_id, &record);
        let leaf = match (salt, &receipt, checker.check(receipt.as_ref())) {
            (Some(salt), Some(receipt), Ok(())) => Ok(record_leaf(&salt, &receipt.claims_json)),
            (None, _, _) => Err("no salt".into()),
            (_, _, checked) => Err(checked.err().unwrap_or_default()),
        };
        checked.insert((tenant_id, record.id), leaf);
    }
    Ok(checked)
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
