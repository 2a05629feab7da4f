//! Embedded SQL migrations, applied in order under an advisory lock so that
//! replicas starting together do not race.

use deadpool_postgres::Object;

use sha2::{Digest, Sha256};

use super::{Error, Result};

/// Version, name, SQL. Append only: an applied migration never changes.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (
        2,
        "preferences",
        include_str!("migrations/0002_preferences.sql"),
    ),
    (3, "proof", include_str!("migrations/0003_proof.sql")),
    (
        4,
        "batch_receipts",
        include_str!("migrations/0004_batch_receipts.sql"),
    ),
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
        let checksum = Sha256::digest(sql.as_bytes()).to_vec();
        let transaction = client.transaction().await?;
        let applied: Option<Vec<u8>> = transaction
            .query_opt(include_str!("sql/applied_migration.sql"), &[&version])
            .await?
            .map(|row| row.get("checksum"));
        match applied {
            None => {
                transaction.batch_execute(sql).await?;
                transaction
                    .execute(
                        include_str!("sql/record_migration.sql"),
                        &[&version, &name, &checksum],
                    )
                    .await?;
                tracing::info!(version, name, "applied migration");
            }
            // An applied migration never changes: a database migrated with
            // another text of it would silently lack what this one makes.
            Some(stored) if stored != checksum => {
                return Err(Error::Internal(
                    format!(
                        "migration {version} ({name}) differs from the one this database applied"
                    )
                    .into(),
                ));
            }
            Some(_) => {}
        }
        transaction.commit().await?;
    }
    Ok(())
}
