//! The audit trail, written inside the transaction of what it records.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{Result, Store, run};
use crate::domain::{
    audit::AuditAction,
    auth::{Caller, Scope},
    erasure::AuditKey,
};

/// What an erasure did.
#[derive(Debug)]
pub struct Erasure {
    pub erased_count: i64,
    pub audit_id: Uuid,
}

/// One entry to write.
pub(super) struct AuditEntry {
    pub tenant_id: Uuid,
    /// None: the consentd command line, or the server itself.
    pub key_id: Option<Uuid>,
    pub scope: Option<Scope>,
    pub action: AuditAction,
    pub target: Option<String>,
    pub subject_hmac: Option<Vec<u8>>,
    pub user_hmac: Option<Vec<u8>>,
    pub item_count: i64,
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry for an action taken by `caller` with `scope`.
    pub fn by(caller: &Caller, scope: Scope, action: AuditAction, target: Option<&str>) -> Self {
        Self {
            tenant_id: caller.tenant_id,
            key_id: Some(caller.key_id),
            scope: Some(scope),
            action,
            target: target.map(str::to_string),
            subject_hmac: None,
            user_hmac: None,
            item_count: 0,
            detail: None,
        }
    }

    /// An entry for an action taken with the consentd command line.
    pub fn command_line(tenant_id: Uuid, action: AuditAction, target: &str) -> Self {
        Self {
            tenant_id,
            key_id: None,
            scope: None,
            action,
            target: Some(target.to_string()),
            subject_hmac: None,
            user_hmac: None,
            item_count: 0,
            detail: None,
        }
    }

    /// An entry for what the server does by itself, such as retention.
    pub fn server(tenant_id: Uuid, action: AuditAction, target: &str) -> Self {
        Self::command_line(tenant_id, action, target)
    }

    /// Writes the entry inside the caller's transaction, labelled as a
    /// writer first so audit pages never pass it (see mark_writer.sql).
    pub async fn write(self, client: &impl GenericClient) -> Result<Uuid> {
        let audit_id = Uuid::now_v7();
        mark_writer(client).await?;
        run::execute(
            client,
            include_str!("sql/insert_audit_event.sql"),
            &[
                &self.tenant_id,
                &audit_id,
                &self.key_id,
                &self.scope.map(Scope::as_str),
                &self.target,
                &self.subject_hmac,
                &self.user_hmac,
                &self.item_count,
                &self.action.as_str(),
                &self.detail,
            ],
        )
        .await?;
        Ok(audit_id)
    }
}

/// Labels the transaction as a writer's until it ends, so that list pages
/// stop before anything it may still commit (see mark_writer.sql).
pub(super) async fn mark_writer(client: &impl GenericClient) -> Result<()> {
    run::query_one(client, include_str!("sql/mark_writer.sql"), &[]).await?;
    Ok(())
}

/// Whose data an erasure removed, as the audit trail names it.
pub(super) struct ErasedIdentifiers<'a> {
    pub scope: Scope,
    pub action: AuditAction,
    pub place: Option<&'a str>,
    pub subject_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
}

/// Writes the audit entry of an erasure inside its transaction, with keyed
/// digests in place of the identifiers.
pub(super) async fn record_erasure(
    client: &impl GenericClient,
    caller: &Caller,
    erased: ErasedIdentifiers<'_>,
    erased_count: i64,
    audit_key: &AuditKey,
) -> Result<Erasure> {
    let mut entry = AuditEntry::by(caller, erased.scope, erased.action, erased.place);
    entry.subject_hmac = erased
        .subject_id
        .map(|id| audit_key.digest("subject_id", id).to_vec());
    entry.user_hmac = erased
        .user_id
        .map(|id| audit_key.digest("user_id", id).to_vec());
    entry.item_count = erased_count;
    let audit_id = entry.write(client).await?;
    Ok(Erasure {
        erased_count,
        audit_id,
    })
}

impl Store {
    /// Writes one entry in a transaction of its own.
    pub(super) async fn write_audit(&self, audit: AuditEntry) -> Result<()> {
        let mut client = self.connection().await?;
        let transaction = client.transaction().await?;
        audit.write(&transaction).await?;
        transaction.commit().await?;
        Ok(())
    }
}
