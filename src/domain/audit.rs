//! The audit trail: who did what, when, to how many items. Never a raw
//! identifier: erased ids appear only as keyed digests.

use std::time::SystemTime;

use uuid::Uuid;

use super::page::{Fingerprint, PageFilter};

/// What was done. Stored as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    ConsentErase,
    PreferenceErase,
    ConsentExport,
    PreferenceExport,
    SiteUpdate,
    WidgetUpdate,
    KeyCreate,
    KeyRevoke,
    /// Records deleted by the retention worker, past expire time plus
    /// retention.
    ConsentPurge,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ConsentErase => "consent.erase",
            AuditAction::PreferenceErase => "preference.erase",
            AuditAction::ConsentExport => "consent.export",
            AuditAction::PreferenceExport => "preference.export",
            AuditAction::SiteUpdate => "site.update",
            AuditAction::WidgetUpdate => "widget.update",
            AuditAction::KeyCreate => "key.create",
            AuditAction::KeyRevoke => "key.revoke",
            AuditAction::ConsentPurge => "consent.purge",
        }
    }
}

/// One audited action, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub action: String,
    /// None: the consentd command line, or the server itself (retention).
    pub actor_key_id: Option<Uuid>,
    pub time: SystemTime,
    pub target: Option<String>,
    pub item_count: i64,
    pub subject_digest: Option<Vec<u8>>,
    pub user_digest: Option<Vec<u8>>,
    pub detail: Option<String>,
}

/// Which audit events a list covers.
#[derive(Clone, Debug)]
pub struct AuditFilter {
    pub start_time: Option<SystemTime>,
    pub end_time: Option<SystemTime>,
}

impl PageFilter for AuditFilter {
    fn fingerprint(&self) -> [u8; 8] {
        Fingerprint::of("audit-events")
            .time(self.start_time)
            .time(self.end_time)
            .finish()
    }
}
