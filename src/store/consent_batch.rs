//! The SQL of one RecordConsent batch, in two round trips: BEGIN with the
//! batch's clock and the settings of its sites, then the INSERT with COMMIT.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::SystemTime,
};

use deadpool_postgres::Object;
use tokio_postgres::{Row, Statement, types::ToSql};
use uuid::Uuid;

use super::{
    Error, Result, Store,
    consent_row::{Columns, ConsentRow, INSERT_CONSENTS, record_from_row},
    row::{StoredRow, micros},
    run,
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

/// A batch's transaction, begun: its clock and the settings of its sites.
pub(super) struct BegunBatch {
    transaction: OpenTransaction,
    insert: Statement,
    /// One per (tenant, site) of the batch, each with the batch's clock.
    settings: Vec<Row>,
}

/// What a batch's site holds its decisions to.
pub(super) struct InForce {
    pub settings: SiteSettings,
    /// Checked before anything is sealed.
    pub declaration: Option<Declaration>,
}

/// What became of a record once its batch committed.
pub(super) enum Written {
    /// Stored as sealed.
    Inserted,
    /// Its request id was taken before: the record stored then.
    Earlier(Box<ConsentRecord>),
}

impl Store {
    /// Begins a batch's transaction: labels it as a writer's, then reads
    /// the record time and the settings of every (tenant, site) in `items`.
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
        let client = self.pool.get().await?;
        let begin = client
            .prepare_cached(include_str!("sql/begin_consent_batch.sql"))
            .await?;
        let insert = client.prepare_cached(&INSERT_CONSENTS).await?;
        let transaction = OpenTransaction(Some(client));
        let (began, settings) = tokio::join!(
            transaction.client().batch_execute(BEGIN_BATCH),
            transaction.client().query(&begin, &begin_params)
        );
        began?;
        Ok(BegunBatch {
            transaction,
            insert,
            settings: settings?,
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

    /// The records stored before under these request ids, read in the
    /// batch's transaction.
    pub async fn earlier_records(
        &self,
        keys: Vec<(Uuid, &str)>,
    ) -> Result<HashMap<(Uuid, String), ConsentRecord>> {
        earlier_records(self.transaction.client(), keys).await
    }

    /// Ends a batch with nothing to insert (every decision of it was
    /// refused), keeping its connection for the next.
    pub async fn commit_nothing(self) -> Result<()> {
        self.transaction.client().batch_execute(COMMIT).await?;
        drop(self.transaction.ended());
        Ok(())
    }

    /// Inserts the records and commits, in one round trip; `on_sent` runs
    /// once the INSERT and COMMIT are on their way, before their answers.
    /// An error means nothing was committed; once committed, each record
    /// gets its own answer, in order.
    pub async fn insert_and_commit(
        self,
        sealed: &[Sealed],
        on_sent: impl FnOnce(),
    ) -> Result<Vec<Result<Written>>> {
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
        let (rows, committed, ()) = tokio::join!(
            transaction.client().query(&insert, &params),
            transaction.client().batch_execute(COMMIT),
            // Last, so the INSERT and COMMIT are queued before it runs.
            async { on_sent() }
        );
        // After a failed INSERT the server answers this COMMIT with a
        // rollback: the INSERT's error is the one that tells.
        committed?;
        let client = transaction.ended();
        let rows = rows?;
        // Committed: from here a failure answers calls, never rewrites them.
        let inserted: HashSet<Uuid> = match rows
            .iter()
            .map(|row| StoredRow::of("consent_records", row).get("record_id"))
            .collect()
        {
            Ok(inserted) => inserted,
            Err(error) => {
                let shared = Arc::new(error);
                return Ok(sealed.iter().map(|_| Err(Error::shared(&shared))).collect());
            }
        };

        // Request ids taken before inserted nothing: their callers get the
        // record stored first, read after COMMIT. A failure here fails only
        // those calls.
        let retried: Vec<(Uuid, &str)> = sealed
            .iter()
            .filter(|s| !inserted.contains(&s.record.id))
            .filter_map(|s| Some((s.tenant_id, s.record.decision.request_id.as_ref()?.as_ref())))
            .collect();
        let earlier = if retried.is_empty() {
            Ok(HashMap::new())
        } else {
            earlier_records(&client, retried).await.map_err(Arc::new)
        };
        Ok(sealed
            .iter()
            .map(|s| {
                if inserted.contains(&s.record.id) {
                    return Ok(Written::Inserted);
                }
                let earlier = earlier.as_ref().map_err(Error::shared)?;
                let request_id = s.record.decision.request_id.as_ref();
                request_id
                    .and_then(|r| earlier.get(&(s.tenant_id, r.as_ref().to_string())))
                    .map(|record| Written::Earlier(Box::new(record.clone())))
                    // Erased, or its request id forgotten, between the
                    // INSERT and this read: the caller's next retry is a
                    // new request.
                    .ok_or_else(|| Error::Unavailable("retried record gone meanwhile".into()))
            })
            .collect())
    }
}

/// The records stored under these request ids.
async fn earlier_records(
    client: &Object,
    keys: Vec<(Uuid, &str)>,
) -> Result<HashMap<(Uuid, String), ConsentRecord>> {
    let (tenants, request_ids): (Vec<Uuid>, Vec<&str>) = keys.into_iter().unzip();
    let mut earlier = HashMap::new();
    let rows = run::query(
        client,
        include_str!("sql/consents_by_request_ids.sql"),
        &[&tenants, &request_ids],
    )
    .await?;
    for row in &rows {
        let stored = StoredRow::of("consent_records", row);
        earlier.insert(
            (stored.get("tenant_id")?, stored.get("request_id")?),
            record_from_row(row)?,
        );
    }
    Ok(earlier)
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
