//! What each RPC asks for, parsed. `api` turns every request into one of
//! these, or into the richer type its own module keeps
//! ([`ConsentDecision`](super::consent::ConsentDecision) for RecordConsent,
//! [`EraseRequest`](super::erasure::EraseRequest) for EraseConsents,
//! [`PreferenceUpdate`](super::preference::PreferenceUpdate) for
//! UpdatePreferences); a handler hands the fields to the store.
//! ListSigningKeys asks for nothing, so it has no command.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::{
    audit::AuditFilter,
    consent::{NoticeHash, NoticeText},
    declared::DeclarationChange,
    ids::{SiteId, SubjectId, UserId, WidgetId},
    page::{ConsentFilter, Cursor, PageSize},
    preference::HistoryFilter,
    site::SiteSettingsUpdate,
};

/// How much of a record a list or an export returns (AIP-157).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Every field but the receipt.
    Basic,
    /// With the signed receipt.
    Full,
}

/// GetConsentStatus: the subject's latest unexpired record on a site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetConsentStatus {
    pub site_id: SiteId,
    pub subject_id: SubjectId,
    /// The instant asked about; `None` is now.
    pub as_of: Option<SystemTime>,
}

/// ListConsents: one page of a site's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListConsents {
    pub filter: ConsentFilter,
    /// Where the previous page ended; none for the first page.
    pub after: Option<Cursor>,
    pub page_size: PageSize,
    pub view: View,
}

/// ExportConsents: every record the filter matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportConsents {
    pub filter: ConsentFilter,
    pub view: View,
    /// Where an interrupted export resumes.
    pub after: Option<Cursor>,
}

/// GetConsentProof: one record with its receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetConsentProof {
    pub record_id: Uuid,
    /// Whether to render the proof as a document too.
    pub include_document: bool,
}

/// PutNotice: keep a notice text under its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutNotice {
    /// The SHA-256 of `text`.
    pub sha256: NoticeHash,
    pub text: NoticeText,
}

/// GetNotice: the text of a notice kept before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetNotice {
    pub sha256: NoticeHash,
}

/// GetPreferences: a user's selections on a widget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetPreferences {
    pub widget_id: WidgetId,
    pub user_id: UserId,
    /// The instant asked about; `None` is now.
    pub as_of: Option<SystemTime>,
}

/// One page of the events a filter matches.
#[derive(Clone, Debug)]
pub struct ListEvents<F> {
    pub filter: F,
    /// Where the previous page ended; none for the first page.
    pub after: Option<Cursor>,
    pub page_size: PageSize,
}

/// ListPreferenceHistory: one page of a user's events on a widget.
pub type ListPreferenceHistory = ListEvents<HistoryFilter>;

/// ExportPreferenceHistory: every event of a widget the filter matches.
#[derive(Clone, Debug)]
pub struct ExportPreferenceHistory {
    pub filter: HistoryFilter,
    /// Where an interrupted export resumes.
    pub after: Option<Cursor>,
}

/// ErasePreferences: a user's selections and events, on one widget or all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasePreferences {
    pub widget_id: Option<WidgetId>,
    pub user_id: UserId,
}

/// GetSiteSettings: the settings in force for a site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetSiteSettings {
    /// None: the tenant's defaults.
    pub site_id: Option<SiteId>,
}

/// UpdateSiteSettings: change some of a site's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateSiteSettings {
    /// None: the tenant's defaults.
    pub site_id: Option<SiteId>,
    /// In range ([`SiteSettingsUpdate::check`] passed).
    pub update: SiteSettingsUpdate,
    /// None keeps the declared categories.
    pub declared: Option<DeclarationChange>,
}

/// ListAuditEvents: one page of the tenant's audit trail.
pub type ListAuditEvents = ListEvents<AuditFilter>;

/// GetWidgetSettings: a widget's selection lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetWidgetSettings {
    pub widget_id: WidgetId,
}

/// UpdateWidgetSettings: set or clear a widget's selection lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateWidgetSettings {
    pub widget_id: WidgetId,
    /// None: selections do not expire.
    pub selection_lifetime: Option<Duration>,
}
