//! The audit trail read back: keyset pages of a tenant's events.

use std::time::SystemTime;

use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    Result, Store,
    paging::{Keyset, Page, Params},
    row::StoredRow,
};
use crate::domain::{
    audit::{AuditEvent, AuditFilter},
    page::Cursor,
};

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
    let row = StoredRow::of("audit_events", row);
    Ok(AuditEvent {
        id: row.get("audit_id")?,
        action: row.get("action")?,
        actor_key_id: row.get("key_id")?,
        time: row.get::<SystemTime>("event_time")?,
        target: row.get("target")?,
        item_count: row.get("item_count")?,
        subject_digest: row.get("subject_hmac")?,
        user_digest: row.get("user_hmac")?,
        detail: row.get("detail")?,
    })
}
