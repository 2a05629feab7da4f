//! consent.v1.AdminService: site settings and the audit trail.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    ApiContext, Authenticator,
    convert::{duration, present, required, time, timestamp},
    paging::page_tokens,
    proto::{self, admin_service_server::AdminService},
};
use crate::{
    domain::{
        audit::{AuditEvent, AuditFilter},
        auth::Scope,
        ids::{SiteId, WidgetId},
        page::{Cursor, PageSize},
        site::{SiteSettings, SiteSettingsUpdate, lifetime},
        validation::Violations,
    },
    store::{Changer, Store},
};

#[derive(Clone)]
pub struct AdminApi {
    store: Store,
    auth: Authenticator,
    context: Arc<ApiContext>,
}

impl AdminApi {
    pub fn new(store: Store, auth: Authenticator, context: Arc<ApiContext>) -> Self {
        Self {
            auth,
            store,
            context,
        }
    }
}

/// A site id, or "" for the tenant's defaults.
fn site_or_defaults(site_id: String, v: &mut Violations) -> String {
    match present(site_id) {
        Some(site) => v
            .check("site_id", SiteId::parse(site))
            .map(SiteId::into_inner)
            .unwrap_or_default(),
        None => String::new(),
    }
}

fn proto_duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn settings_response(settings: SiteSettings) -> proto::SiteSettings {
    proto::SiteSettings {
        detailed_logging: settings.detailed_logging,
        consent_lifetime: Some(proto_duration(settings.consent_lifetime)),
        retention: Some(proto_duration(settings.retention)),
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    #[tracing::instrument(name = "GetSiteSettings", skip_all, fields(tenant_id))]
    async fn get_site_settings(
        &self,
        request: Request<proto::GetSiteSettingsRequest>,
    ) -> Result<Response<proto::GetSiteSettingsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::Admin).await?;
        let mut v = Violations::new();
        let site_id = site_or_defaults(request.into_inner().site_id, &mut v);
        v.finish(|| ())?;
        let settings = self
            .store
            .site_settings(caller.tenant_id, &site_id, self.context.defaults)
            .await?;
        Ok(Response::new(proto::GetSiteSettingsResponse {
            site_id,
            settings: Some(settings_response(settings)),
        }))
    }

    #[tracing::instrument(name = "UpdateSiteSettings", skip_all, fields(tenant_id))]
    async fn update_site_settings(
        &self,
        request: Request<proto::UpdateSiteSettingsRequest>,
    ) -> Result<Response<proto::UpdateSiteSettingsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::Admin).await?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let site_id = site_or_defaults(r.site_id, &mut v);
        let update = SiteSettingsUpdate {
            detailed_logging: r.detailed_logging,
            consent_lifetime: v
                .check_optional("consent_lifetime", r.consent_lifetime.map(duration)),
            retention: v.check_optional("retention", r.retention.map(duration)),
        };
        if let Err((field, description)) = update.check() {
            v.add(field, description);
        }
        v.finish(|| ())?;
        let settings = self
            .store
            .update_site_settings(
                Changer::Caller(&caller),
                &site_id,
                update,
                self.context.defaults,
            )
            .await?;
        Ok(Response::new(proto::UpdateSiteSettingsResponse {
            site_id,
            settings: Some(settings_response(settings)),
        }))
    }

    #[tracing::instrument(name = "ListAuditEvents", skip_all, fields(tenant_id))]
    async fn list_audit_events(
        &self,
        request: Request<proto::ListAuditEventsRequest>,
    ) -> Result<Response<proto::ListAuditEventsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::AuditRead).await?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let filter = AuditFilter {
            start_time: v.check_optional("start_time", r.start_time.map(time)),
            end_time: v.check_optional("end_time", r.end_time.map(time)),
        };
        let page_size = v.check("page_size", PageSize::parse(r.page_size));
        let after = v.check_optional(
            "page_token",
            present(r.page_token).map(|t| Cursor::from_token(&t, &filter)),
        );
        let page_size = v.finish(|| page_size.expect("checked"))?;
        let page = self
            .store
            .list_audit_events(caller.tenant_id, &filter, after, page_size.get())
            .await?;
        let (next_page_token, resume_page_token) = page_tokens(&page, &filter);
        Ok(Response::new(proto::ListAuditEventsResponse {
            events: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
            resume_page_token,
        }))
    }

    #[tracing::instrument(name = "GetWidgetSettings", skip_all, fields(tenant_id))]
    async fn get_widget_settings(
        &self,
        request: Request<proto::GetWidgetSettingsRequest>,
    ) -> Result<Response<proto::GetWidgetSettingsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::Admin).await?;
        let mut v = Violations::new();
        let widget_id = v.check(
            "widget_id",
            required(request.into_inner().widget_id).and_then(WidgetId::parse),
        );
        let widget_id = v.finish(|| widget_id.expect("checked"))?;
        let lifetime = self
            .store
            .widget_lifetime(caller.tenant_id, &widget_id)
            .await?;
        Ok(Response::new(proto::GetWidgetSettingsResponse {
            widget_id: widget_id.into_inner(),
            settings: Some(proto::WidgetSettings {
                selection_lifetime: lifetime.map(proto_duration),
            }),
        }))
    }

    #[tracing::instrument(name = "UpdateWidgetSettings", skip_all, fields(tenant_id))]
    async fn update_widget_settings(
        &self,
        request: Request<proto::UpdateWidgetSettingsRequest>,
    ) -> Result<Response<proto::UpdateWidgetSettingsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::Admin).await?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let widget_id = v.check("widget_id", required(r.widget_id).and_then(WidgetId::parse));
        let lifetime = v.check_optional(
            "settings.selection_lifetime",
            r.settings
                .and_then(|s| s.selection_lifetime)
                .map(|d| duration(d).and_then(lifetime)),
        );
        let widget_id = v.finish(|| widget_id.expect("checked"))?;
        self.store
            .update_widget_lifetime(&caller, &widget_id, lifetime)
            .await?;
        Ok(Response::new(proto::UpdateWidgetSettingsResponse {
            widget_id: widget_id.into_inner(),
            settings: Some(proto::WidgetSettings {
                selection_lifetime: lifetime.map(proto_duration),
            }),
        }))
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
