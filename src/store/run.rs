//! Statements from `sql/*.sql`, each prepared once per connection (the
//! pool's statement cache keeps it) and run with every value bound, each in
//! a span of its own while traces are exported.

use deadpool_postgres::GenericClient;
use tokio_postgres::{Row, Statement, types::ToSql};
use tracing::Instrument;

use super::{Error, Result};

pub(super) async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    prepared(client, sql, async |c, s| c.query(s, params).await).await
}

/// Exactly one row, else an error.
pub(super) async fn query_one(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row> {
    prepared(client, sql, async |c, s| c.query_one(s, params).await).await
}

pub(super) async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    prepared(client, sql, async |c, s| c.query_opt(s, params).await).await
}

/// The one row, or NotFound when there is none.
pub(super) async fn query_found(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row> {
    query_opt(client, sql, params).await?.ok_or(Error::NotFound)
}

/// The number of rows changed.
pub(super) async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    prepared(client, sql, async |c, s| c.execute(s, params).await).await
}

/// Prepares `sql` (from the connection's cache) and runs it, in the
/// statement's span.
async fn prepared<C: GenericClient, T>(
    client: &C,
    sql: &str,
    run: impl AsyncFnOnce(&C, &Statement) -> std::result::Result<T, tokio_postgres::Error>,
) -> Result<T> {
    async {
        let statement = client.prepare_cached(sql).await?;
        Ok(run(client, &statement).await?)
    }
    .instrument(crate::telemetry::statement_span(sql))
    .await
}
