//! consent.v1.AdminService: site settings and the audit trail.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    ApiContext, Authenticator,
    convert::{list_command, site_settings, widget_settings},
    paging::page_tokens,
    proto::{self, admin_service_server::AdminService},
};
use crate::{
    domain::{
        auth::Scope,
        command::{
            GetSiteSettings, GetWidgetSettings, ListAuditEvents, UpdateSiteSettings,
            UpdateWidgetSettings,
        },
        ids::SiteId,
        page::PageTokens,
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

/// How the store keys settings: a site's id, or "" for the tenant's
/// defaults; responses echo it.
fn settings_key(site_id: Option<SiteId>) -> String {
    site_id.map(SiteId::into_inner).unwrap_or_default()
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    #[tracing::instrument(name = "GetSiteSettings", skip_all, fields(tenant_id))]
    async fn get_site_settings(
        &self,
        request: Request<proto::GetSiteSettingsRequest>,
    ) -> Result<Response<proto::GetSiteSettingsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::Admin).await?;
        let query = GetSiteSettings::try_from(request.into_inner())?;
        let site_id = settings_key(query.site_id);
        let settings = self
            .store
            .site_settings(caller.tenant_id, &site_id, self.context.defaults)
            .await?;
        let declaration = self
            .store
            .site_declaration(caller.tenant_id, &site_id)
            .await?;
        Ok(Response::new(proto::GetSiteSettingsResponse {
            site_id,
            settings: Some(site_settings((settings, declaration))),
        }))
    }

    #[tracing::instrument(name = "UpdateSiteSettings", skip_all, fields(tenant_id))]
    async fn update_site_settings(
        &self,
        request: Request<proto::UpdateSiteSettingsRequest>,
    ) -> Result<Response<proto::UpdateSiteSettingsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::Admin).await?;
        let change = UpdateSiteSettings::try_from(request.into_inner())?;
        let site_id = settings_key(change.site_id);
        let settings = self
            .store
            .update_site_settings(
                Changer::Caller(&caller),
                &site_id,
                change.update,
                change.declared.as_ref(),
                self.context.defaults,
            )
            .await?;
        Ok(Response::new(proto::UpdateSiteSettingsResponse {
            site_id,
            settings: Some(site_settings(settings)),
        }))
    }

    #[tracing::instrument(name = "ListAuditEvents", skip_all, fields(tenant_id))]
    async fn list_audit_events(
        &self,
        request: Request<proto::ListAuditEventsRequest>,
    ) -> Result<Response<proto::ListAuditEventsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::AuditRead).await?;
        let tokens = PageTokens::new(&self.context.audit_key, caller.tenant_id);
        let ListAuditEvents {
            filter,
            after,
            page_size,
        } = list_command(request.into_inner(), &tokens)?;
        let page = self
            .store
            .list_audit_events(caller.tenant_id, &filter, after, page_size.get())
            .await?;
        let (next_page_token, resume_page_token) = page_tokens(&page, &filter, &tokens);
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
        let query = GetWidgetSettings::try_from(request.into_inner())?;
        let lifetime = self
            .store
            .widget_lifetime(caller.tenant_id, &query.widget_id)
            .await?;
        Ok(Response::new(proto::GetWidgetSettingsResponse {
            widget_id: query.widget_id.into_inner(),
            settings: Some(widget_settings(lifetime)),
        }))
    }

    #[tracing::instrument(name = "UpdateWidgetSettings", skip_all, fields(tenant_id))]
    async fn update_widget_settings(
        &self,
        request: Request<proto::UpdateWidgetSettingsRequest>,
    ) -> Result<Response<proto::UpdateWidgetSettingsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::Admin).await?;
        let change = UpdateWidgetSettings::try_from(request.into_inner())?;
        self.store
            .update_widget_lifetime(&caller, &change.widget_id, change.selection_lifetime)
            .await?;
        Ok(Response::new(proto::UpdateWidgetSettingsResponse {
            widget_id: change.widget_id.into_inner(),
            settings: Some(widget_settings(change.selection_lifetime)),
        }))
    }
}
