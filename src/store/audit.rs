//! The audit trail, written inside the transaction of what it records.

use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    Result, Store,
    paging::{Keyset, Page, Params},
};
use crate::domain::{
    audit::{AuditAction, AuditEvent, AuditFilter},
    auth::{Caller, Scope},
    erasure::AuditKey,
    page::Cursor,
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
    /// None: the consentd command line.
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

    /// Writes the entry inside the caller's transaction, labelled as a
    /// writer first so audit pages never pass it (see mark_writer.sql).
    pub async fn write(self, client: &impl GenericClient) -> Result<Uuid> {
        let audit_id = Uuid::now_v7();
        client
            .batch_execute(include_str!("sql/mark_writer.sql"))
            .await?;
        client
            .execute(
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

const AUDIT_KEYSET: Keyset<AuditEvent> = Keyset {
    sql: include_str!("sql/list_audit_events.sql"),
    from_row: audit_from_row,
    cursor_of: |event| Cursor {
        time: event.time,
        id: event.id,
    },
};

impl Store {
    pub async fn list_audit_events(
        &self,
        tenant_id: Uuid,
        filter: &AuditFilter,
        after: Option<Cursor>,
        page_size: u32,
    ) -> Result<Page<AuditEvent>> {
        let after_or_start = after.unwrap_or(Cursor::START);
        let params: Params = vec![
            Box::new(tenant_id),
            Box::new(filter.start_time),
            Box::new(filter.end_time),
            Box::new(after_or_start.time),
            Box::new(after_or_start.id),
        ];
        self.keyset_page(&AUDIT_KEYSET, params, after, page_size)
            .await
    }
}

fn audit_from_row(row: &Row) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.try_get("audit_id")?,
        action: row.try_get("action")?,
        actor_key_id: row.try_get("key_id")?,
        time: row.try_get::<_, SystemTime>("event_time")?,
        target: row.try_get("target")?,
        item_count: row.try_get("item_count")?,
        subject_digest: row.try_get("subject_hmac")?,
        user_digest: row.try_get("user_hmac")?,
        detail: row.try_get("detail")?,
    })
}
