//! Site settings: a site's own, else its tenant's defaults (site ''), else
//! the server's.

use uuid::Uuid;

use super::{
    Result, Store,
    audit::AuditEntry,
    consent::{micros, settings_from_row},
};
use crate::domain::{
    audit::AuditAction,
    auth::{Caller, Scope},
    site::{ServerDefaults, SiteSettings, SiteSettingsUpdate},
};

/// Who changes a setting: an API caller, or the command line for a tenant.
pub enum Changer<'a> {
    Caller(&'a Caller),
    CommandLine { tenant_id: Uuid },
}

impl Store {
    /// The settings in force for `site_id` ("" for the tenant's defaults).
    pub async fn site_settings(
        &self,
        tenant_id: Uuid,
        site_id: &str,
        defaults: ServerDefaults,
    ) -> Result<SiteSettings> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                include_str!("sql/site_settings.sql"),
                &[
                    &tenant_id,
                    &site_id,
                    &micros(defaults.consent_lifetime),
                    &micros(defaults.retention),
                ],
            )
            .await?;
        settings_from_row(&row)
    }

    /// Changes some settings and audits it; returns the settings in force.
    pub async fn update_site_settings(
        &self,
        changer: Changer<'_>,
        site_id: &str,
        update: SiteSettingsUpdate,
        defaults: ServerDefaults,
    ) -> Result<SiteSettings> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let (tenant_id, mut audit) = match changer {
            Changer::Caller(caller) => (
                caller.tenant_id,
                AuditEntry::by(caller, Scope::Admin, AuditAction::SiteUpdate, Some(site_id)),
            ),
            Changer::CommandLine { tenant_id } => (
                tenant_id,
                AuditEntry::command_line(tenant_id, AuditAction::SiteUpdate, site_id),
            ),
        };
        transaction
            .execute(
                include_str!("sql/update_site_settings.sql"),
                &[
                    &tenant_id,
                    &site_id,
                    &update.detailed_logging,
                    &update.consent_lifetime.map(micros),
                    &update.retention.map(micros),
                ],
            )
            .await?;
        let row = transaction
            .query_one(
                include_str!("sql/site_settings.sql"),
                &[
                    &tenant_id,
                    &site_id,
                    &micros(defaults.consent_lifetime),
                    &micros(defaults.retention),
                ],
            )
            .await?;
        let settings = settings_from_row(&row)?;
        audit.item_count = 1;
        audit.detail = Some(format!(
            "detailed_logging={} consent_lifetime_s={} retention_s={}",
            settings.detailed_logging,
            settings.consent_lifetime.as_secs(),
            settings.retention.as_secs()
        ));
        audit.write(&transaction).await?;
        transaction.commit().await?;
        Ok(settings)
    }
}
