//! Site settings: a site's own, else its tenant's defaults (site ''), else
//! the server's.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    Result, Store,
    audit::AuditEntry,
    row::{StoredRow, micros},
    run,
};
use crate::domain::{
    audit::AuditAction,
    auth::{Caller, Scope},
    declared::{Declaration, DeclarationChange},
    ids::WidgetId,
    site::{ServerDefaults, SiteSettings, SiteSettingsUpdate},
};

/// Who changes a setting: an API caller, or the command line for a tenant.
pub enum Changer<'a> {
    Caller(&'a Caller),
    CommandLine { tenant_id: Uuid },
}

/// The settings in force for a site, read with `client` (a transaction or not).
async fn settings_of(
    client: &impl GenericClient,
    tenant_id: Uuid,
    site_id: &str,
    defaults: ServerDefaults,
) -> Result<SiteSettings> {
    let [lifetime, retention] = default_micros(defaults);
    let row = run::query_one(
        client,
        include_str!("sql/site_settings.sql"),
        &[&tenant_id, &site_id, &lifetime, &retention],
    )
    .await?;
    settings_from_row(&row)
}

/// The server's defaults as the SQL takes them: the consent lifetime and the
/// retention, in microseconds.
pub(super) fn default_micros(defaults: ServerDefaults) -> [i64; 2] {
    [
        micros(defaults.consent_lifetime),
        micros(defaults.retention),
    ]
}

/// A row of `consentd_site_settings`: the settings in force for a site.
pub(super) fn settings_from_row(row: &Row) -> Result<SiteSettings> {
    let row = StoredRow::of("sites", row);
    Ok(SiteSettings {
        detailed_logging: row.get("detailed_logging")?,
        consent_lifetime: row.duration("consent_lifetime_micros")?,
        retention: row.duration("retention_micros")?,
        drop_query_strings: row.get("drop_query_strings")?,
    })
}

/// The categories `site_id` declares (its own, else its tenant's).
async fn declaration_of(
    client: &impl GenericClient,
    tenant_id: Uuid,
    site_id: &str,
) -> Result<Option<Declaration>> {
    let row = run::query_one(
        client,
        include_str!("sql/site_declaration.sql"),
        &[&tenant_id, &site_id],
    )
    .await?;
    declaration_from_row(&row)
}

/// A row of `consentd_site_declaration`: a site's declared categories.
pub(super) fn declaration_from_row(row: &Row) -> Result<Option<Declaration>> {
    let row = StoredRow::of("sites", row);
    let list = |column| -> Result<Vec<String>> {
        Ok(row.get::<Option<Vec<String>>>(column)?.unwrap_or_default())
    };
    Ok(Declaration::from_stored(
        list("declared_categories")?,
        list("necessary_categories")?,
        list("declared_services")?,
    ))
}

impl Store {
    /// The settings in force for `site_id` ("" for the tenant's defaults).
    pub async fn site_settings(
        &self,
        tenant_id: Uuid,
        site_id: &str,
        defaults: ServerDefaults,
    ) -> Result<SiteSettings> {
        let client = self.connection().await?;
        settings_of(&*client, tenant_id, site_id, defaults).await
    }

    /// The categories `site_id` declares: its own, else its tenant's.
    pub async fn site_declaration(
        &self,
        tenant_id: Uuid,
        site_id: &str,
    ) -> Result<Option<Declaration>> {
        let client = self.connection().await?;
        declaration_of(&*client, tenant_id, site_id).await
    }

    /// Changes some settings (and, when `declared` is given, replaces the
    /// declared categories) and audits it; returns what is in force.
    pub async fn update_site_settings(
        &self,
        changer: Changer<'_>,
        site_id: &str,
        update: SiteSettingsUpdate,
        declared: Option<&DeclarationChange>,
        defaults: ServerDefaults,
    ) -> Result<(SiteSettings, Option<Declaration>)> {
        let mut client = self.connection().await?;
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
        run::execute(
            &transaction,
            include_str!("sql/update_site_settings.sql"),
            &[
                &tenant_id,
                &site_id,
                &update.detailed_logging,
                &update.consent_lifetime.map(micros),
                &update.retention.map(micros),
                &update.drop_query_strings,
            ],
        )
        .await?;
        if let Some(declared) = declared {
            let (categories, necessary, services) = match declared.to_stored() {
                Some((c, n, s)) => (Some(c), Some(n), Some(s)),
                None => (None, None, None),
            };
            run::execute(
                &transaction,
                include_str!("sql/declare_site_categories.sql"),
                &[&tenant_id, &site_id, &categories, &necessary, &services],
            )
            .await?;
        }
        let settings = settings_of(&transaction, tenant_id, site_id, defaults).await?;
        let declaration = declaration_of(&transaction, tenant_id, site_id).await?;
        audit.item_count = 1;
        audit.detail = Some(format!(
            "detailed_logging={} consent_lifetime_s={} retention_s={} drop_query_strings={}",
            settings.detailed_logging,
            settings.consent_lifetime.as_secs(),
            settings.retention.as_secs(),
            settings.drop_query_strings
        ));
        if let (Some(detail), Some(declaration)) = (&mut audit.detail, &declaration) {
            detail.push_str(&format!(
                " declared_categories={}",
                declaration.categories().len()
            ));
        }
        audit.write(&transaction).await?;
        transaction.commit().await?;
        Ok((settings, declaration))
    }
}

impl Store {
    /// A preference widget's default selection lifetime; `None`: no expiry.
    pub async fn widget_lifetime(
        &self,
        tenant_id: Uuid,
        widget_id: &WidgetId,
    ) -> Result<Option<Duration>> {
        let client = self.connection().await?;
        let row = run::query_opt(
            &*client,
            include_str!("sql/widget_settings.sql"),
            &[&tenant_id, &widget_id.as_ref()],
        )
        .await?;
        Ok(match row {
            Some(row) => StoredRow::of("preference_widgets", &row)
                .duration_opt("selection_lifetime_micros")?,
            None => None,
        })
    }

    /// Sets a widget's default selection lifetime, audited.
    pub async fn update_widget_lifetime(
        &self,
        caller: &Caller,
        widget_id: &WidgetId,
        lifetime: Option<Duration>,
    ) -> Result<()> {
        let mut client = self.connection().await?;
        let transaction = client.transaction().await?;
        run::execute(
            &transaction,
            include_str!("sql/update_widget_settings.sql"),
            &[
                &caller.tenant_id,
                &widget_id.as_ref(),
                &lifetime.map(micros),
            ],
        )
        .await?;
        let mut audit = AuditEntry::by(
            caller,
            Scope::Admin,
            AuditAction::WidgetUpdate,
            Some(widget_id.as_ref()),
        );
        audit.item_count = 1;
        audit.detail = Some(match lifetime {
            Some(lifetime) => format!("selection_lifetime_s={}", lifetime.as_secs()),
            None => "selection_lifetime=none".to_string(),
        });
        audit.write(&transaction).await?;
        transaction.commit().await?;
        Ok(())
    }
}
