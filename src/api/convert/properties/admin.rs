//! AdminService requests.

use super::*;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn admin_requests_convert_or_name_fields(
        id in text(),
        detailed_logging in proptest::option::of(any::<bool>()),
        drop_query_strings in proptest::option::of(any::<bool>()),
        lifetimes in (duration(), duration()),
        times in (timestamp(), timestamp()),
        page_size in page_size(),
        page_token in page_token(),
        declared in proptest::option::of((proptest::collection::vec(
            (text(), any::<bool>(), proptest::collection::vec(text(), 0..3)),
            0..4,
        ), any::<bool>())),
    ) {
        let categories = declared.map(|(categories, inherit)| proto::DeclaredCategories {
            inherit,
            categories: categories
                .into_iter()
                .map(|(name, necessary, services)| proto::DeclaredCategory {
                    name,
                    necessary,
                    services,
                })
                .collect(),
        });
        let site = proto::UpdateSiteSettingsRequest {
            site_id: id.clone(),
            detailed_logging,
            consent_lifetime: lifetimes.0,
            retention: lifetimes.1,
            drop_query_strings,
            categories,
        };
        judged("UpdateSiteSettingsRequest", UpdateSiteSettings::try_from(site))?;
        let widget = proto::UpdateWidgetSettingsRequest {
            widget_id: id,
            settings: detailed_logging.map(|_| proto::WidgetSettings {
                selection_lifetime: lifetimes.0,
            }),
        };
        judged("UpdateWidgetSettingsRequest", UpdateWidgetSettings::try_from(widget))?;
        let audit = proto::ListAuditEventsRequest {
            start_time: times.0,
            end_time: times.1,
            page_size,
            page_token,
        };
        judged::<ListAuditEvents>("ListAuditEventsRequest", list_command(audit, &tokens()))?;
    }
}
