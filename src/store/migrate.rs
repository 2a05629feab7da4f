//! Embedded SQL migrations, applied in order under an advisory lock so that
//! replicas starting together do not race.

use deadpool_postgres::Object;

use super::Result;

/// Version, name, SQL. Append only: an applied migration never changes.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (
        2,
        "preferences",
        include_str!("migrations/0002_preferences.sql"),
    ),
    (3, "proof", include_str!("migrations/0003_proof.sql")),
];

/// Arbitrary, fixed: "consentd" in ASCII.
const MIGRATION_LOCK: i64 = 0x636f_6e73_656e_7464;

pub(super) async fn run(client: &mut Object) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let outcome = apply_pending(client).await;
    // Unlock even after a failure; the lock also goes when the session ends.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    outcome?;
    unlocked?;
    Ok(())
}

async fn apply_pending(client: &mut Object) -> Result<()> {
    client
        .batch_execute(include_str!("sql/create_schema_migrations.sql"))
        .await?;
    for &(version, name, sql) in MIGRATIONS {
        let transaction = client.transaction().await?;
        let applied = transaction
            .query_opt(
                "SELECT 1 FROM consentd_meta.schema_migrations WHERE version = $1",
                &[&version],
            )
            .await?
            .is_some();
        if !applied {
            transaction.batch_execute(sql).await?;
            transaction
                .execute(
                    "INSERT INTO consentd_meta.schema_migrations (version, name) VALUES ($1, $2)",
                    &[&version, &name],
                )
                .await?;
            tracing::info!(version, name, "applied migration");
        }
        transaction.commit().await?;
    }
    Ok(())
}
