//! Statements from `sql/*.sql`, each prepared once per connection (the
//! pool's statement cache keeps it) and run with every value bound, each in
//! a span of its own while traces are exported.

use deadpool_postgres::GenericClient;
use tokio_postgres::{Row, types::ToSql};
use tracing::Instrument;

use super::Result;

pub(super) async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    async {
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }
    .instrument(crate::telemetry::statement_span(sql))
    .await
}

/// Exactly one row, else an error.
pub(super) async fn query_one(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row> {
    async {
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query_one(&statement, params).await?)
    }
    .instrument(crate::telemetry::statement_span(sql))
    .await
}

pub(super) async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    async {
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query_opt(&statement, params).await?)
    }
    .instrument(crate::telemetry::statement_span(sql))
    .await
}

/// The number of rows changed.
pub(super) async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    async {
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, params).await?)
    }
    .instrument(crate::telemetry::statement_span(sql))
    .await
}
