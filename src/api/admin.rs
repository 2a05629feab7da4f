//! consent.v1.AdminService: site settings and the audit trail.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    ApiContext, Authenticator,
    convert::{site_settings, widget_settings},
    handler::Rpc,
    paging::page_tokens,
    proto::{self, admin_service_server::AdminService},
};
use crate::{
    domain::{auth::Scope, ids::SiteId},
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
        self.unary(request, Scope::Admin, async |caller, query| {
            let site_id = settings_key(query.site_id);
            let (tenant_id, defaults) = (caller.tenant_id, self.context.defaults);
            let settings = self
                .store
                .site_settings(tenant_id, &site_id, defaults)
                .await?;
            let declaration = self.store.site_declaration(tenant_id, &site_id).await?;
            Ok(proto::GetSiteSettingsResponse {
                site_id,
                settings: Some(site_settings((settings, declaration))),
            })
        })
        .await
    }

    #[tracing::instrument(name = "UpdateSiteSettings", skip_all, fields(tenant_id))]
    async fn update_site_settings(
        &self,
        request: Request<proto::UpdateSiteSettingsRequest>,
    ) -> Result<Response<proto::UpdateSiteSettingsResponse>, Status> {
        self.unary(request, Scope::Admin, async |caller, change| {
            let site_id = settings_key(change.site_id);
            let (changer, defaults) = (Changer::Caller(&caller), self.context.defaults);
            let declared = change.declared.as_ref();
            let settings = self
                .store
                .update_site_settings(changer, &site_id, change.update, declared, defaults)
                .await?;
            Ok(proto::UpdateSiteSettingsResponse {
                site_id,
                settings: Some(site_settings(settings)),
            })
        })
        .await
    }

    #[tracing::instrument(name = "ListAuditEvents", skip_all, fields(tenant_id))]
    async fn list_audit_events(
        &self,
        request: Request<proto::ListAuditEventsRequest>,
    ) -> Result<Response<proto::ListAuditEventsResponse>, Status> {
        self.paged(request, Scope::AuditRead, async |caller, tokens, list| {
            let (filter, size) = (&list.filter, list.page_size.get());
            let page = self
                .store
                .list_audit_events(caller.tenant_id, filter, list.after, size)
                .await?;
            let (next_page_token, resume_page_token) = page_tokens(&page, filter, &tokens);
            Ok(proto::ListAuditEventsResponse {
                events: page.items.into_iter().map(Into::into).collect(),
                next_page_token,
                resume_page_token,
            })
        })
        .await
    }

    #[tracing::instrument(name = "GetWidgetSettings", skip_all, fields(tenant_id))]
    async fn get_widget_settings(
        &self,
        request: Request<proto::GetWidgetSettingsRequest>,
    ) -> Result<Response<proto::GetWidgetSettingsResponse>, Status> {
        self.unary(request, Scope::Admin, async |caller, query| {
            let lifetime = self
                .store
                .widget_lifetime(caller.tenant_id, &query.widget_id)
                .await?;
            Ok(proto::GetWidgetSettingsResponse {
                widget_id: query.widget_id.into_inner(),
                settings: Some(widget_settings(lifetime)),
            })
        })
        .await
    }

    #[tracing::instrument(name = "UpdateWidgetSettings", skip_all, fields(tenant_id))]
    async fn update_widget_settings(
        &self,
        request: Request<proto::UpdateWidgetSettingsRequest>,
    ) -> Result<Response<proto::UpdateWidgetSettingsResponse>, Status> {
        self.unary(request, Scope::Admin, async |caller, change| {
            let (widget_id, lifetime) = (change.widget_id, change.selection_lifetime);
            self.store
                .update_widget_lifetime(&caller, &widget_id, lifetime)
                .await?;
            Ok(proto::UpdateWidgetSettingsResponse {
                widget_id: widget_id.into_inner(),
                settings: Some(widget_settings(lifetime)),
            })
        })
        .await
    }
}

impl Rpc for AdminApi {
    fn parts(&self) -> (&Authenticator, &ApiContext) {
        (&self.auth, &self.context)
    }
}
