//! Tenants and their API keys.

use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{Error, Result, Store, audit::AuditEntry, row::StoredRow, run};
use crate::domain::{
    audit::AuditAction,
    auth::{ApiKey, Caller, Origin, Scope, SiteKey},
    ids::SiteId,
};

/// A key just created: `secret` is shown once and never stored.
pub struct CreatedKey {
    pub tenant_id: Uuid,
    pub key_id: Uuid,
    pub secret: ApiKey,
}

/// A key as `keys list` shows it: never its secret.
#[derive(Debug)]
pub struct KeyInfo {
    pub key_id: Uuid,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub created_at: SystemTime,
    pub revoked_at: Option<SystemTime>,
    /// A publishable key's site, with the origins it accepts.
    pub site: Option<(String, Vec<String>)>,
}

impl Store {
    /// Creates the tenant if it does not exist yet, then a key for it.
    pub async fn create_key(&self, tenant: &str, scopes: &[Scope]) -> Result<CreatedKey> {
        let scopes: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
        self.insert_key(
            tenant,
            ApiKey::generate(),
            include_str!("sql/insert_api_key.sql"),
            &[&scopes],
            format!("scopes={}", scopes.join(",")),
        )
        .await
    }

    /// Creates a publishable key (and the tenant if new): it records consent
    /// for `site` from `origins` on the public listener, and nothing else.
    pub async fn create_site_key(
        &self,
        tenant: &str,
        site: &SiteId,
        origins: &[Origin],
    ) -> Result<CreatedKey> {
        let origins: Vec<&str> = origins.iter().map(AsRef::as_ref).collect();
        self.insert_key(
            tenant,
            ApiKey::generate_publishable(),
            include_str!("sql/insert_site_key.sql"),
            &[&site.as_ref(), &origins],
            format!(
                "publishable site={} origins={}",
                site.as_ref(),
                origins.join(",")
            ),
        )
        .await
    }

    /// Writes `secret` as a new key of `tenant` (created if new) with
    /// `insert_sql`, whose parameters are the tenant id, the key id, the
    /// secret's digest, then `more`; audited as a key creation with
    /// `detail`, in the same transaction.
    async fn insert_key(
        &self,
        tenant: &str,
        secret: ApiKey,
        insert_sql: &str,
        more: &[&(dyn ToSql + Sync)],
        detail: String,
    ) -> Result<CreatedKey> {
        let mut client = self.connection().await?;
        let transaction = client.transaction().await?;
        let tenant_id = upsert_tenant(&transaction, tenant).await?;
        let key_id = Uuid::now_v7();
        let digest = secret.digest();
        let digest = digest.as_slice();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&tenant_id, &key_id, &digest];
        params.extend_from_slice(more);
        run::execute(&transaction, insert_sql, &params).await?;
        let mut audit =
            AuditEntry::command_line(tenant_id, AuditAction::KeyCreate, &key_id.to_string());
        audit.detail = Some(detail);
        audit.item_count = 1;
        audit.write(&transaction).await?;
        transaction.commit().await?;
        Ok(CreatedKey {
            tenant_id,
            key_id,
            secret,
        })
    }

    /// Revokes a key; `NotFound` when no such key exists.
    pub async fn revoke_key(&self, key_id: Uuid) -> Result<()> {
        let mut client = self.connection().await?;
        let transaction = client.transaction().await?;
        let revoked = run::query_found(
            &transaction,
            include_str!("sql/revoke_api_key.sql"),
            &[&key_id],
        )
        .await?;
        let tenant_id: Uuid = StoredRow::of("api_keys", &revoked).get("tenant_id")?;
        let mut audit =
            AuditEntry::command_line(tenant_id, AuditAction::KeyRevoke, &key_id.to_string());
        audit.item_count = 1;
        audit.write(&transaction).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The id of a tenant, created when new.
    pub async fn tenant_id(&self, tenant: &str) -> Result<Uuid> {
        upsert_tenant(&*self.connection().await?, tenant).await
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let client = self.connection().await?;
        let rows = run::query(&*client, include_str!("sql/list_api_keys.sql"), &[]).await?;
        rows.iter()
            .map(|row| {
                let row = StoredRow::of("api_keys", row);
                Ok(KeyInfo {
                    key_id: row.get("key_id")?,
                    tenant: row.get("name")?,
                    scopes: row.get("scopes")?,
                    created_at: row.get("created_at")?,
                    revoked_at: row.get("revoked_at")?,
                    site: row
                        .get::<Option<String>>("site_id")?
                        .map(|site| Ok::<_, Error>((site, row.get("origins")?)))
                        .transpose()?,
                })
            })
            .collect()
    }

    /// The caller a presented key stands for, if it is known and not revoked.
    pub async fn authenticate(&self, presented: &ApiKey) -> Result<Option<Caller>> {
        let client = self.connection().await?;
        let row = key_row(&*client, include_str!("sql/authenticate.sql"), presented).await?;
        row.map(|row| {
            let row = StoredRow::of("api_keys", &row);
            let scopes: Vec<String> = row.get("scopes")?;
            Ok(Caller {
                tenant_id: row.get("tenant_id")?,
                key_id: row.get("key_id")?,
                // A scope this version does not know grants nothing here.
                scopes: scopes.iter().filter_map(|s| Scope::parse(s).ok()).collect(),
            })
        })
        .transpose()
    }
}

impl Store {
    /// The publishable key a presented key stands for, if it is one, known
    /// and not revoked. Secret keys are never returned here, and
    /// [`Store::authenticate`] never returns a publishable one.
    pub async fn authenticate_site_key(&self, presented: &ApiKey) -> Result<Option<SiteKey>> {
        let client = self.pool.get().await?;
        let sql = include_str!("sql/authenticate_site_key.sql");
        let row = key_row(&client, sql, presented).await?;
        row.map(|row| {
            let row = StoredRow::of("api_keys", &row);
            let origins: Vec<String> = row.get("origins")?;
            let site: String = row.get("site_id")?;
            Ok(SiteKey {
                tenant_id: row.get("tenant_id")?,
                key_id: row.get("key_id")?,
                site_id: SiteId::parse(site)
                    .map_err(|e| Error::Internal(format!("stored site id {e}").into()))?,
                // Stored origins were parsed on the way in.
                origins: origins
                    .iter()
                    .filter_map(|o| Origin::parse(o).ok())
                    .collect(),
            })
        })
        .transpose()
    }
}

/// The id of a tenant, created when new.
/// The row of `api_keys` that `sql` finds by the presented key's digest.
async fn key_row(
    client: &impl GenericClient,
    sql: &str,
    presented: &ApiKey,
) -> Result<Option<tokio_postgres::Row>> {
    run::query_opt(client, sql, &[&presented.digest().as_slice()]).await
}

async fn upsert_tenant(client: &impl GenericClient, tenant: &str) -> Result<Uuid> {
    let row = run::query_one(
        client,
        include_str!("sql/upsert_tenant.sql"),
        &[&Uuid::now_v7(), &tenant],
    )
    .await?;
    StoredRow::of("tenants", &row).get("tenant_id")
}
