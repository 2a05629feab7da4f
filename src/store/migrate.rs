//! Embedded SQL migrations, applied in order under an advisory lock so that
//! replicas starting together do not race.

use deadpool_postgres::Object;

use sha2::{Digest, Sha256};

use super::{Error, Result, row::StoredRow, run};

/// Version, name, SQL. Append only: an applied migration never changes.
pub(super) const MIGRATIONS: &[(i32, &str, &str)] = &[
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
    (5, "forget", include_str!("migrations/0005_forget.sql")),
    (
        6,
        "publishable_keys",
        include_str!("migrations/0006_publishable_keys.sql"),
    ),
    (
        7,
        "drop_query_strings",
        include_str!("migrations/0007_drop_query_strings.sql"),
    ),
    (
        8,
        "declared_categories",
        include_str!("migrations/0008_declared_categories.sql"),
    ),
    (
        9,
        "transparency_log",
        include_str!("migrations/0009_transparency_log.sql"),
    ),
    (
        10,
        "preference_leaves",
        include_str!("migrations/0010_preference_leaves.sql"),
    ),
    (
        11,
        "log_blocks",
        include_str!("migrations/0011_log_blocks.sql"),
    ),
    (
        12,
        "log_leaf_tags",
        include_str!("migrations/0012_log_leaf_tags.sql"),
    ),
];

/// Arbitrary, fixed: "consentd" in ASCII.
const MIGRATION_LOCK: i64 = 0x636f_6e73_656e_7464;

pub(super) async fn run(client: &mut Object) -> Result<()> {
    run::execute(
        &*client,
        include_str!("sql/lock_migrations.sql"),
        &[&MIGRATION_LOCK],
    )
    .await?;
    let outcome = apply_pending(client).await;
    // Unlock even after a failure; the lock also goes when the session ends.
    let unlocked = run::execute(
        &*client,
        include_str!("sql/unlock_migrations.sql"),
        &[&MIGRATION_LOCK],
    )
    .await;
    outcome?;
    unlocked?;
    Ok(())
}

async fn apply_pending(client: &mut Object) -> Result<()> {
    for create in [
        include_str!("sql/create_meta_schema.sql"),
        include_str!("sql/create_schema_migrations.sql"),
    ] {
        run::execute(&*client, create, &[]).await?;
    }
    // A database a newer build migrated holds rows this build would read
    // wrongly (a receipt it cannot rebuild, a column it does not know):
    // refuse it rather than serve them.
    let newest: Option<i32> = StoredRow::of(
        "consentd_meta.schema_migrations",
        &run::query_one(&*client, include_str!("sql/newest_migration.sql"), &[]).await?,
    )
    .get("newest")?;
    let known = MIGRATIONS.last().map_or(0, |&(version, _, _)| version);
    if let Some(newest) = newest.filter(|&newest| newest > known) {
        return Err(Error::Internal(
            format!(
                "the database is at migration {newest}, this build knows only up to {known}: \
                 run a build at least as new"
            )
            .into(),
        ));
    }
    for &(version, name, sql) in MIGRATIONS {
        let checksum = Sha256::digest(sql.as_bytes()).to_vec();
        let transaction = client.transaction().await?;
        // A migration may need a lock a long export holds; waiting for it
        // would queue every write behind the migration. Fail instead: the
        // next start tries again.
        run::query_one(
            &transaction,
            include_str!("sql/migration_lock_timeout.sql"),
            &[],
        )
        .await?;
        let applied: Option<Vec<u8>> = run::query_opt(
            &transaction,
            include_str!("sql/applied_migration.sql"),
            &[&version],
        )
        .await?
        .map(|row| StoredRow::of("consentd_meta.schema_migrations", &row).get("checksum"))
        .transpose()?;
        match applied {
            None => {
                transaction.batch_execute(sql).await?;
                run::execute(
                    &transaction,
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
