//! The SQL of one RecordConsent batch, in two round trips: BEGIN with the
//! batch's clock, the settings of its sites and the records already stored
//! under its request ids; then the INSERT with COMMIT.

use std::{collections::HashMap, time::SystemTime};

use deadpool_postgres::Object;
use tokio_postgres::{Row, Statement, error::SqlState, types::ToSql};
use uuid::Uuid;

use super::{
    Error, Result, Store,
    consent_row::{Columns, ConsentRow, INSERT_CONSENTS, record_from_row},
    row::{StoredRow, micros},
    site::{declaration_from_row, settings_from_row},
};
use crate::domain::{
    consent::{ConsentDecision, ConsentRecord},
    declared::Declaration,
    seal::Sealed,
    site::{ServerDefaults, SiteSettings},
};

/// Sent with the batch's first query, as one simple-query message: two
/// statements (and transaction control) cannot be one prepared statement.
/// The same two statements run for every batch: a generic plan, made once,
/// spares the server planning them for each batch.
const BEGIN_BATCH: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";

/// Sent right behind the INSERT, so that the two share a round trip.
const COMMIT: &str = "COMMIT";

/// The unique index that keeps one record per request id.
const REQUEST_ID_INDEX: &str = "consent_records_request_id";

/// A batch's transaction, begun: its clock, the settings of its sites and
/// the records stored before under its request ids.
pub(super) struct BegunBatch {
    transaction: OpenTransaction,
    insert: Statement,
    /// One per (tenant, site) of the batch, each with the batch's clock.
    settings: Vec<Row>,
    earlier: Vec<Row>,
}

/// What a batch's site holds its decisions to.
pub(super) struct InForce {
    pub settings: SiteSettings,
    /// Checked before anything is sealed.
    pub declaration: Option<Declaration>,
}

/// What became of a batch's INSERT.
pub(super) enum Committed {
    /// Every record given is stored.
    All,
    /// A concurrent batch stored one of the request ids first: nothing was
    /// stored, and beginning again finds that record.
    RequestIdTaken,
}

impl Store {
    /// Begins a batch's transaction: labels it as a writer's, then reads
    /// the record time, the settings of every (tenant, site) in `items`
    /// and the records already stored under their request ids.
    pub(super) async fn begin_consent_batch(
        &self,
        items: &[(Uuid, &ConsentDecision)],
        defaults: ServerDefaults,
    ) -> Result<BegunBatch> {
        let mut keys: Vec<(Uuid, &str)> = items
            .iter()
            .map(|(t, d)| (*t, d.site_id.as_ref()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let (tenants, sites): (Vec<Uuid>, Vec<&str>) = keys.into_iter().unzip();
        let (lifetime, retention) = (
            micros(defaults.consent_lifetime),
            micros(defaults.retention),
        );
        let begin_params: [&(dyn ToSql + Sync); 4] = [&tenants, &sites, &lifetime, &retention];
        let (request_tenants, request_ids): (Vec<Uuid>, Vec<&str>) = items
            .iter()
            .filter_map(|(t, d)| Some((*t, d.request_id.as_ref()?.as_ref())))
            .unzip();
        let client = self.pool.get().await?;
        let begin = client
            .prepare_cached(include_str!("sql/begin_consent_batch.sql"))
            .await?;
        let earlier = client
            .prepare_cached(include_str!("sql/consents_by_request_ids.sql"))
            .await?;
        let insert = client.prepare_cached(&INSERT_CONSENTS).await?;
        let transaction = OpenTransaction(Some(client));
        let earlier_params: [&(dyn ToSql + Sync); 2] = [&request_tenants, &request_ids];
        let (began, settings, earlier) = tokio::join!(
            transaction.client().batch_execute(BEGIN_BATCH),
            transaction.client().query(&begin, &begin_params),
            async {
                if request_ids.is_empty() {
                    return Ok(Vec::new());
                }
                transaction.client().query(&earlier, &earlier_params).await
            }
        );
        began?;
        Ok(BegunBatch {
            transaction,
            insert,
            settings: settings?,
            earlier: earlier?,
        })
    }
}

impl BegunBatch {
    /// The batch's record time: after its writer label is visible.
    pub fn record_time(&self) -> Result<SystemTime> {
        let first = self
            .settings
            .first()
            .ok_or_else(|| Error::Internal("no settings".into()))?;
        StoredRow::of("sites", first).get("now")
    }

    /// The settings in force for each (tenant, site) of the batch, with
    /// the categories it declares.
    pub fn settings(&self) -> Result<HashMap<(Uuid, &str), InForce>> {
        let mut settings = HashMap::with_capacity(self.settings.len());
        for row in &self.settings {
            let stored = StoredRow::of("sites", row);
            let key: (Uuid, &str) = (stored.get("tenant_id")?, stored.get("site_id")?);
            let in_force = InForce {
                settings: settings_from_row(row)?,
                declaration: declaration_from_row(row)?,
            };
            settings.insert(key, in_force);
        }
        Ok(settings)
    }

    /// Ends a batch with nothing to insert (every decision of it was
    /// refused or stored before), keeping its connection for the next.
    pub async fn commit_nothing(self) -> Result<()> {
        self.transaction.client().batch_execute(COMMIT).await?;
        drop(self.transaction.ended());
        Ok(())
    }

    /// The records stored before under the batch's request ids, by tenant
    /// and request id.
    pub fn earlier(&self) -> Result<HashMap<(Uuid, String), ConsentRecord>> {
        let mut earlier = HashMap::with_capacity(self.earlier.len());
        for row in &self.earlier {
            let stored = StoredRow::of("consent_records", row);
            earlier.insert(
                (stored.get("tenant_id")?, stored.get("request_id")?),
                record_from_row(row)?,
            );
        }
        Ok(earlier)
    }

    /// Inserts the records and commits, in one round trip; `on_sent` runs
    /// once the INSERT and COMMIT are on their way, before their answers.
    /// Either every record is stored or none is.
    pub async fn insert_and_commit(
        self,
        sealed: &[Sealed],
        on_sent: impl FnOnce(),
    ) -> Result<Committed> {
        // Rows go in by request id, so two batches retrying the same ids take
        // their unique-index locks in one order and cannot deadlock.
        let mut order: Vec<usize> = (0..sealed.len()).collect();
        order.sort_by_key(|&i| {
            let record = &sealed[i].record;
            (
                sealed[i].tenant_id,
                record
                    .decision
                    .request_id
                    .as_ref()
                    .map(AsRef::<str>::as_ref),
            )
        });
        let mut columns = Columns::with_capacity(sealed.len());
        for i in order {
            columns.push(ConsentRow::of(&sealed[i]));
        }
        let params = columns.params();
        let (transaction, insert) = (self.transaction, self.insert);
        let (inserted, committed, ()) = tokio::join!(
            transaction.client().execute(&insert, &params),
            transaction.client().batch_execute(COMMIT),
            // Last, so the INSERT and COMMIT are queued before it runs.
            async { on_sent() }
        );
        // After a failed INSERT the server answers this COMMIT with a
        // rollback: the INSERT's error is the one that tells.
        committed?;
        drop(transaction.ended());
        match inserted {
            Ok(_) => Ok(Committed::All),
            Err(error) if request_id_taken(&error) => Ok(Committed::RequestIdTaken),
            Err(error) => Err(error.into()),
        }
    }
}

fn request_id_taken(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(REQUEST_ID_INDEX)
    })
}

/// A pooled connection in a transaction begun by hand, so that BEGIN and
/// COMMIT share a round trip with the statements next to them. Dropped
/// before it ends (an error, a cancelled task), the connection is closed
/// rather than returned to the pool mid-transaction.
struct OpenTransaction(Option<Object>);

impl OpenTransaction {
    fn client(&self) -> &Object {
        self.0.as_ref().expect("present until ended or dropped")
    }

    /// The transaction is over: the connection may go back to the pool.
    fn ended(mut self) -> Object {
        self.0.take().expect("present until ended or dropped")
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}
