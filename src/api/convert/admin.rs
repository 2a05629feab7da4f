//! AdminService: requests into domain commands, settings and audit events
//! into messages.

use std::time::Duration;

use super::{duration, page_start, parsed, present, proto_duration, time, timestamp};
use crate::{
    api::proto,
    domain::{
        audit::{AuditEvent, AuditFilter},
        command::{
            GetSiteSettings, GetWidgetSettings, ListAuditEvents, UpdateSiteSettings,
            UpdateWidgetSettings,
        },
        declared::{Declaration, DeclarationChange, RawDeclaredCategory},
        ids::{SiteId, WidgetId},
        page::{PageSize, PageTokens},
        site::{Setting, SiteSettings, SiteSettingsUpdate, lifetime},
        validation::{Checked, FieldViolation, Violations},
    },
};

conversions! {
    proto::GetSiteSettingsRequest => GetSiteSettings: get_site_settings,
    proto::UpdateSiteSettingsRequest => UpdateSiteSettings: update_site_settings,
    proto::GetWidgetSettingsRequest => GetWidgetSettings: get_widget_settings,
    proto::UpdateWidgetSettingsRequest => UpdateWidgetSettings: update_widget_settings,
}

list_conversions! {
    proto::ListAuditEventsRequest => ListAuditEvents: list_audit_events,
}

/// A site id; none (an empty one) for the tenant's defaults.
fn site_or_defaults(site_id: String, v: &mut Violations) -> Checked<Option<SiteId>> {
    v.check_optional("site_id", present(site_id).map(SiteId::parse))
}

fn setting_field(setting: Setting) -> &'static str {
    match setting {
        Setting::ConsentLifetime => "consent_lifetime",
        Setting::Retention => "retention",
    }
}

fn get_site_settings(
    r: proto::GetSiteSettingsRequest,
    v: &mut Violations,
) -> Checked<GetSiteSettings> {
    let site_id = site_or_defaults(r.site_id, v);
    Ok(GetSiteSettings { site_id: site_id? })
}

fn update_site_settings(
    r: proto::UpdateSiteSettingsRequest,
    v: &mut Violations,
) -> Checked<UpdateSiteSettings> {
    let site_id = site_or_defaults(r.site_id, v);
    let consent_lifetime = v.check_optional("consent_lifetime", r.consent_lifetime.map(duration));
    let retention = v.check_optional("retention", r.retention.map(duration));
    // The ranges are checked on the durations that parsed.
    let update = SiteSettingsUpdate {
        detailed_logging: r.detailed_logging,
        consent_lifetime: consent_lifetime.unwrap_or_default(),
        retention: retention.unwrap_or_default(),
        drop_query_strings: r.drop_query_strings,
    };
    if let Err((setting, description)) = update.check() {
        v.add(setting_field(setting), description);
    }
    let declared = match r.categories {
        None => Ok(None),
        Some(declared) if declared.inherit => match declared.categories.is_empty() {
            true => Ok(Some(DeclarationChange::Inherit)),
            false => Err(v.add(
                "categories.inherit",
                "must be false when categories are given",
            )),
        },
        Some(declared) => {
            let raw = declared
                .categories
                .into_iter()
                .map(|c| RawDeclaredCategory {
                    name: c.name,
                    necessary: c.necessary,
                    services: c.services,
                })
                .collect();
            Declaration::parse(raw)
                .map(|own| Some(DeclarationChange::Own(own)))
                .map_err(|problems| {
                    let mut invalid = None;
                    for problem in problems {
                        invalid = Some(v.push(FieldViolation {
                            field: format!("categories.{}", problem.field),
                            description: problem.description,
                        }));
                    }
                    invalid.expect("a declaration fails with a problem")
                })
        }
    };
    Ok(UpdateSiteSettings {
        declared: declared?,
        site_id: site_id?,
        update: SiteSettingsUpdate {
            consent_lifetime: consent_lifetime?,
            retention: retention?,
            ..update
        },
    })
}

fn list_audit_events(
    r: proto::ListAuditEventsRequest,
    tokens: &PageTokens,
    v: &mut Violations,
) -> Checked<ListAuditEvents> {
    let start_time = v.check_optional("start_time", r.start_time.map(time));
    let end_time = v.check_optional("end_time", r.end_time.map(time));
    let page_size = v.check("page_size", PageSize::parse(r.page_size));
    // Unlike other lists, the token is checked against what parsed of
    // the filter even when a time did not.
    let parsed = AuditFilter {
        start_time: start_time.unwrap_or_default(),
        end_time: end_time.unwrap_or_default(),
    };
    let after = page_start(r.page_token, Some(&parsed), tokens, v);
    Ok(ListAuditEvents {
        filter: AuditFilter {
            start_time: start_time?,
            end_time: end_time?,
        },
        after: after?,
        page_size: page_size?,
    })
}

fn get_widget_settings(
    r: proto::GetWidgetSettingsRequest,
    v: &mut Violations,
) -> Checked<GetWidgetSettings> {
    // One field: nothing else to collect violations of.
    let widget_id = parsed(v, "widget_id", r.widget_id, WidgetId::parse)?;
    Ok(GetWidgetSettings { widget_id })
}

fn update_widget_settings(
    r: proto::UpdateWidgetSettingsRequest,
    v: &mut Violations,
) -> Checked<UpdateWidgetSettings> {
    let widget_id = parsed(v, "widget_id", r.widget_id, WidgetId::parse);
    let selection_lifetime = v.check_optional(
        "settings.selection_lifetime",
        r.settings
            .and_then(|s| s.selection_lifetime)
            .map(|d| duration(d).and_then(lifetime)),
    );
    Ok(UpdateWidgetSettings {
        widget_id: widget_id?,
        selection_lifetime: selection_lifetime?,
    })
}

pub fn site_settings(
    (settings, declaration): (SiteSettings, Option<Declaration>),
) -> proto::SiteSettings {
    let categories = declaration
        .iter()
        .flat_map(Declaration::categories)
        .map(|c| proto::DeclaredCategory {
            name: c.name.as_ref().to_string(),
            necessary: c.necessary,
            services: c.services.iter().map(|s| s.as_ref().to_string()).collect(),
        })
        .collect();
    proto::SiteSettings {
        categories,
        detailed_logging: settings.detailed_logging,
        consent_lifetime: Some(proto_duration(settings.consent_lifetime)),
        retention: Some(proto_duration(settings.retention)),
        drop_query_strings: settings.drop_query_strings,
    }
}

pub fn widget_settings(selection_lifetime: Option<Duration>) -> proto::WidgetSettings {
    proto::WidgetSettings {
        selection_lifetime: selection_lifetime.map(proto_duration),
    }
}

impl From<AuditEvent> for proto::AuditEvent {
    fn from(event: AuditEvent) -> Self {
        proto::AuditEvent {
            id: event.id.to_string(),
            action: event.action,
            actor_key_id: event
                .actor_key_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            event_time: Some(timestamp(event.time)),
            target: event.target.unwrap_or_default(),
            item_count: event.item_count,
            subject_digest: event.subject_digest.map(hex::encode).unwrap_or_default(),
            user_digest: event.user_digest.map(hex::encode).unwrap_or_default(),
            detail: event.detail.unwrap_or_default(),
        }
    }
}
