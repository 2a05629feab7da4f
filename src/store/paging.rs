//! Keyset pages behind the writers' watermark, and snapshot exports through
//! a bounded channel: shared by every list and export.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_postgres::{IsolationLevel, Row, types::ToSql};

use super::{Result, Store, audit::AuditEntry, row::StoredRow, run};
use crate::domain::page::Cursor;

/// Bound values of a list query, owned so an export task can keep them.
pub type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Chunks of an export, in order; the export stops when this is dropped.
pub type ExportChunks<T> = mpsc::Receiver<Result<Vec<T>>>;

/// Chunks buffered between the database and a slow client.
const EXPORT_CHANNEL_CHUNKS: usize = 2;

/// How long an export waits for another to end when as many run as may.
const EXPORT_WAIT: Duration = Duration::from_secs(1);

/// One page of a list, and where to go on from.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Set when the page is full: more items may follow now.
    pub next: Option<Cursor>,
    /// Where a poller resumes later: after the last item returned, or where
    /// the caller started when the page is empty.
    pub resume: Option<Cursor>,
}

/// How a list query's rows become items, and the cursor after an item.
pub struct Keyset<T> {
    pub sql: &'static str,
    pub from_row: fn(&Row) -> Result<T>,
    pub cursor_of: fn(&T) -> Cursor,
}

fn as_refs(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl Store {
    /// Runs `keyset.sql` for one page. Its last two parameters are the
    /// watermark (see sql/list_watermark.sql) and the limit, appended here.
    pub(super) async fn keyset_page<T>(
        &self,
        keyset: &Keyset<T>,
        mut params: Params,
        after: Option<Cursor>,
        page_size: u32,
    ) -> Result<Page<T>> {
        let client = self.connection().await?;
        let watermark: SystemTime = StoredRow::of(
            "consentd_write_watermark()",
            &run::query_one(&*client, include_str!("sql/list_watermark.sql"), &[]).await?,
        )
        .get("watermark")?;
        params.push(Box::new(Some(watermark)));
        params.push(Box::new(Some(i64::from(page_size))));
        let statement = client.prepare_cached(keyset.sql).await?;
        let rows = client.query(&statement, &as_refs(&params)).await?;
        let items = rows
            .iter()
            .map(keyset.from_row)
            .collect::<Result<Vec<_>>>()?;
        let last = items.last().map(keyset.cursor_of);
        let next = if items.len() == page_size as usize {
            last
        } else {
            None
        };
        Ok(Page {
            next,
            resume: last.or(after),
            items,
        })
    }

    /// Streams every row of `keyset.sql` (without watermark and limit) from
    /// one REPEATABLE READ snapshot, `chunk_size` rows per chunk, through a
    /// bounded channel: the database is read only as fast as the client
    /// takes chunks, and the connection is freed as soon as the receiver is
    /// dropped.
    ///
    /// `audit` is written when the export ends, with the number of items
    /// sent and whether the client read to the end.
    ///
    /// Refused with `Error::TooManyExports` when as many exports of the
    /// caller's tenant, or of all tenants, are running as the pool allows
    /// (see `export_limit`) and none ends within [`EXPORT_WAIT`].
    pub(super) async fn export<T: Send + 'static>(
        &self,
        keyset: &Keyset<T>,
        mut params: Params,
        chunk_size: usize,
        mut audit: AuditEntry,
    ) -> Result<ExportChunks<T>> {
        let slot = self.exports.start(audit.tenant_id, EXPORT_WAIT).await?;
        let (sender, receiver) = mpsc::channel(EXPORT_CHANNEL_CHUNKS);
        let store = self.clone();
        let (sql, from_row) = (keyset.sql, keyset.from_row);
        params.push(Box::new(None::<SystemTime>));
        params.push(Box::new(None::<i64>));
        // The task outlives the handler: it takes the call's deadline along.
        let deadline = super::deadline::current();
        tokio::spawn(async move {
            let failed = sender.clone();
            let mut sent = 0;
            let outcome = super::deadline::bounded(
                deadline,
                store.export_into(sql, params, chunk_size, from_row, sender, &mut sent),
            )
            .await;
            audit.item_count = sent as i64;
            audit.detail = Some(
                match &outcome {
                    Some(Ok(true)) => "complete",
                    Some(Ok(false)) => "client left before the end",
                    Some(Err(_)) => "failed",
                    None => "deadline passed before the end",
                }
                .to_string(),
            );
            if let Some(Err(error)) = outcome {
                let _ = failed.send(Err(error)).await;
            }
            if let Err(error) = store.write_audit(audit).await {
                tracing::error!(error = %crate::telemetry::error_chain(&error), "cannot audit an export");
            }
            drop(slot);
        });
        Ok(receiver)
    }

    async fn export_into<T>(
        &self,
        sql: &str,
        params: Params,
        chunk_size: usize,
        from_row: fn(&Row) -> Result<T>,
        sender: mpsc::Sender<Result<Vec<T>>>,
        sent: &mut usize,
    ) -> Result<bool> {
        let mut client = self.connection().await?;
        let statement = client.prepare_cached(sql).await?;
        let transaction = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let portal = transaction.bind(&statement, &as_refs(&params)).await?;
        loop {
            let rows = transaction.query_portal(&portal, chunk_size as i32).await?;
            if rows.is_empty() {
                break;
            }
            let chunk = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
            let len = chunk.len();
            if sender.send(Ok(chunk)).await.is_err() {
                // The client went away; dropping the transaction rolls back
                // and the connection returns to the pool.
                return Ok(false);
            }
            *sent += len;
        }
        Ok(true)
    }
}
