//! Preference events in the tenant's log: the sequencer's event cursor,
//! the events committed after it, their leaves, and an event's leaf read
//! back for its proof. Each round sequences them after the round's
//! records, in the same transaction under the same lock (see `super`).

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{LeafRecord, StoredLeaf, sequence::Cursor, stored_leaf};
use crate::{
    domain::{
        merkle::Hash,
        preference::claims::event_claims,
        tlog::{LeafKind, SALT_BYTES, record_leaf},
    },
    store::{Result, preference_history::event_from_row, row::StoredRow, run},
};

const EVENTS: &str = "preference_events";

/// A round's event leaves (tenant, leaf hash, event id), in log order, and
/// the last event read.
#[derive(Default)]
pub(super) struct EventBatch {
    pub(super) leaves: Vec<(Uuid, Hash, Uuid)>,
    pub(super) last_read: Option<Cursor>,
}

pub(super) async fn read_event_cursor(client: &impl GenericClient) -> Result<Cursor> {
    let cursor = run::query_one(client, include_str!("../sql/log_event_cursor.sql"), &[]).await?;
    let cursor = StoredRow::of("log_sequencer", &cursor);
    Ok((cursor.get("event_time")?, cursor.get("event_id")?))
}

/// The leaves of a round's events. Every stored event has a salt (the
/// column's default), so none is left out.
pub(super) fn event_leaves(rows: &[tokio_postgres::Row]) -> Result<EventBatch> {
    let mut batch = EventBatch {
        leaves: Vec::with_capacity(rows.len()),
        last_read: None,
    };
    for row in rows {
        let stored = StoredRow::of(EVENTS, row);
        let tenant_id: Uuid = stored.get("tenant_id")?;
        let event = event_from_row(row)?;
        let salt = salt_of(&stored)?;
        batch.last_read = Some((event.time, event.id));
        let leaf = record_leaf(&salt, &event_claims(tenant_id, &event));
        batch.leaves.push((tenant_id, leaf, event.id));
    }
    Ok(batch)
}

fn salt_of(stored: &StoredRow) -> Result<[u8; SALT_BYTES]> {
    stored.parse("log_salt", |salt: Vec<u8>| {
        <[u8; SALT_BYTES]>::try_from(salt).map_err(|_| "not 32 bytes")
    })
}

pub(super) async fn move_event_cursor(client: &impl GenericClient, last: Cursor) -> Result<()> {
    run::execute(
        client,
        include_str!("../sql/log_move_event_cursor.sql"),
        &[&last.0, &last.1],
    )
    .await?;
    Ok(())
}

/// The leaf of the tenant's event `event_id`, with the event if stored.
pub(super) async fn event_leaf(
    client: &impl GenericClient,
    tenant_id: Uuid,
    event_id: Uuid,
) -> Result<StoredLeaf> {
    let row = run::query_opt(
        client,
        include_str!("../sql/log_event_leaf.sql"),
        &[&tenant_id, &event_id],
    )
    .await?
    .ok_or(crate::store::Error::NotFound)?;
    let stored = StoredRow::of("log_leaves", &row);
    let present: Option<Uuid> = stored.get("event_id")?;
    let record = match (stored.get::<bool>("erased")?, present) {
        (true, _) => LeafRecord::Erased,
        (false, Some(_)) => LeafRecord::Event {
            event: Box::new(event_from_row(&row)?),
            salt: salt_of(&stored)?.to_vec(),
        },
        (false, None) => LeafRecord::Missing,
    };
    stored_leaf(&stored, LeafKind::PreferenceEvent, record)
}
