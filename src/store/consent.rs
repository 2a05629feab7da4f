//! Consent records: write, status, keyset pages, snapshot exports, erasure.

use std::time::SystemTime;

use uuid::Uuid;

use super::{
    Result, Store,
    audit::{AuditEntry, ErasedIdentifiers, Erasure, record_erasure},
    consent_row::record_from_row,
    paging::{ExportChunks, Keyset, Page, Params},
    row::StoredRow,
    run,
    site::default_micros,
    stored::StoredEnum,
    tlog,
};
use crate::domain::{
    audit::AuditAction,
    auth::{Caller, Scope},
    consent::{ConsentRecord, NoticeHash, Status},
    erasure::{AuditKey, EraseRequest},
    ids::{SiteId, SubjectId},
    page::{ConsentFilter, Cursor},
    site::ServerDefaults,
    time::Reading,
};

/// Arbitrary, fixed: "retentio" in ASCII.
const RETENTION_LOCK: i64 = 0x7265_7465_6e74_696f;

const CONSENT_KEYSET: Keyset<ConsentRecord> = Keyset {
    sql: include_str!("sql/list_consents.sql"),
    from_row: record_from_row,
    cursor_of,
};

impl Store {
    /// Now: the latest record of a subject on a site that has not expired.
    /// As of an instant: the latest record at or before it, when it had not
    /// expired at it.
    pub async fn consent_status(
        &self,
        tenant_id: Uuid,
        site_id: &SiteId,
        subject_id: &SubjectId,
        reading: Reading,
    ) -> Result<ConsentRecord> {
        let (sql, at) = match reading {
            Reading::Now(now) => (include_str!("sql/consent_status.sql"), now),
            Reading::AsOf(as_of) => (include_str!("sql/consent_status_as_of.sql"), as_of),
        };
        let client = self.connection().await?;
        let row = run::query_found(
            &*client,
            sql,
            &[&tenant_id, &subject_id.as_ref(), &site_id.as_ref(), &at],
        )
        .await?;
        record_from_row(&row)
    }

    /// A record and whether the notice it names is on file.
    pub async fn consent_proof(
        &self,
        tenant_id: Uuid,
        record_id: Uuid,
    ) -> Result<(ConsentRecord, bool)> {
        let client = self.connection().await?;
        let row = run::query_found(
            &*client,
            include_str!("sql/consent_proof.sql"),
            &[&tenant_id, &record_id],
        )
        .await?;
        let on_file = StoredRow::of("consent_records", &row).get("notice_on_file")?;
        Ok((record_from_row(&row)?, on_file))
    }

    /// Stores a notice text under its hash; false when it was on file.
    pub async fn put_notice(&self, tenant_id: Uuid, hash: &NoticeHash, text: &str) -> Result<bool> {
        let client = self.connection().await?;
        let created = run::query_opt(
            &*client,
            include_str!("sql/put_notice.sql"),
            &[&tenant_id, &hash.as_bytes().as_slice(), &text],
        )
        .await?;
        Ok(created.is_some())
    }

    /// A notice text and when it was stored.
    pub async fn notice(&self, tenant_id: Uuid, hash: &NoticeHash) -> Result<(String, SystemTime)> {
        let client = self.connection().await?;
        let row = run::query_found(
            &*client,
            include_str!("sql/get_notice.sql"),
            &[&tenant_id, &hash.as_bytes().as_slice()],
        )
        .await?;
        let row = StoredRow::of("notices", &row);
        Ok((row.get("text")?, row.get("create_time")?))
    }

    /// Deletes up to `batch` records past their expire time plus retention
    /// at `now`, and audits how many went from each site (counts only), in
    /// one transaction. One replica at a time: `None` when another holds
    /// the turn.
    pub async fn delete_retired_consents(
        &self,
        now: SystemTime,
        batch: i64,
        defaults: ServerDefaults,
    ) -> Result<Option<u64>> {
        let mut client = self.connection().await?;
        let transaction = client.transaction().await?;
        let turn: bool = StoredRow::of(
            "pg_try_advisory_xact_lock()",
            &run::query_one(
                &transaction,
                include_str!("sql/try_retention_lock.sql"),
                &[&RETENTION_LOCK],
            )
            .await?,
        )
        .get("locked")?;
        if !turn {
            return Ok(None);
        }
        let [lifetime, retention] = default_micros(defaults);
        let per_site = run::query(
            &transaction,
            include_str!("sql/delete_retired_consents.sql"),
            &[&now, &batch, &lifetime, &retention],
        )
        .await?;
        let mut deleted = 0;
        for row in &per_site {
            let row = StoredRow::of("consent_records", row);
            let site_id: String = row.get("site_id")?;
            let tenant_id: Uuid = row.get("tenant_id")?;
            tlog::mark_erased(
                &transaction,
                tenant_id,
                &row.get::<Vec<Uuid>>("record_ids")?,
            )
            .await?;
            let mut audit = AuditEntry::server(tenant_id, AuditAction::ConsentPurge, &site_id);
            audit.item_count = row.get("deleted")?;
            audit.detail = Some("past expire time plus retention".into());
            deleted += audit.item_count as u64;
            audit.write(&transaction).await?;
        }
        transaction.commit().await?;
        Ok(Some(deleted))
    }

    /// One page of records after `after`, in keyset order.
    pub async fn list_consents(
        &self,
        tenant_id: Uuid,
        filter: &ConsentFilter,
        after: Option<Cursor>,
        page_size: u32,
    ) -> Result<Page<ConsentRecord>> {
        self.keyset_page(
            &CONSENT_KEYSET,
            filter_params(tenant_id, filter, after),
            after,
            page_size,
        )
        .await
    }

    /// Every matching record, from one snapshot, in chunks; audited.
    pub async fn export_consents(
        &self,
        caller: &Caller,
        filter: &ConsentFilter,
        after: Option<Cursor>,
        chunk_size: usize,
    ) -> Result<ExportChunks<ConsentRecord>> {
        let audit = AuditEntry::by(
            caller,
            Scope::ConsentExport,
            AuditAction::ConsentExport,
            Some(filter.site_id.as_ref()),
        );
        self.export(
            &CONSENT_KEYSET,
            filter_params(caller.tenant_id, filter, after),
            chunk_size,
            audit,
        )
        .await
    }

    /// Deletes a subject's records and writes the audit entry, atomically.
    pub async fn erase_consents(
        &self,
        caller: &Caller,
        request: &EraseRequest,
        audit_key: &AuditKey,
    ) -> Result<Erasure> {
        let mut client = self.connection().await?;
        let transaction = client.transaction().await?;
        let site = request.site_id.as_ref().map(AsRef::<str>::as_ref);
        let subject = request.subject_id.as_ref().map(AsRef::<str>::as_ref);
        let user = request.user_id.as_ref().map(AsRef::<str>::as_ref);
        let erased = run::query_one(
            &transaction,
            include_str!("sql/erase_consents.sql"),
            &[&caller.tenant_id, &site, &subject, &user],
        )
        .await?;
        let erased = StoredRow::of("consent_records", &erased);
        let erased_count: i64 = erased.get("erased_count")?;
        tlog::mark_erased(
            &transaction,
            caller.tenant_id,
            &erased.get::<Vec<Uuid>>("record_ids")?,
        )
        .await?;
        let erased = ErasedIdentifiers {
            scope: Scope::ConsentErase,
            action: AuditAction::ConsentErase,
            place: site,
            subject_id: subject,
            user_id: user,
        };
        let erasure = record_erasure(&transaction, caller, erased, erased_count, audit_key).await?;
        transaction.commit().await?;
        Ok(erasure)
    }
}

/// The bound values of list_consents.sql before watermark and limit.
fn filter_params(tenant_id: Uuid, filter: &ConsentFilter, after: Option<Cursor>) -> Params {
    let after = after.unwrap_or(Cursor::START);
    let text = |value: Option<&str>| value.map(str::to_string);
    vec![
        Box::new(tenant_id),
        Box::new(filter.site_id.as_ref().to_string()),
        Box::new(filter.start_time),
        Box::new(filter.end_time),
        Box::new(text(filter.subject_id.as_ref().map(AsRef::as_ref))),
        Box::new(text(filter.user_id.as_ref().map(AsRef::as_ref))),
        Box::new(text(filter.country.as_ref().map(AsRef::as_ref))),
        Box::new(filter.status.map(Status::to_db)),
        Box::new(after.time),
        Box::new(after.id),
    ]
}

/// Where a list or an export continues after `record`.
pub fn cursor_of(record: &ConsentRecord) -> Cursor {
    Cursor {
        time: record.record_time,
        id: record.id,
    }
}
