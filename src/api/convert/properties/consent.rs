//! ConsentService requests, and the single-id requests of every service.

use super::*;

fn consent_filter() -> impl Strategy<Value = Option<proto::ConsentFilter>> {
    proptest::option::of(
        (timestamp(), timestamp(), text(), text(), text(), number()).prop_map(
            |(start_time, end_time, subject_id, user_id, country_code, status)| {
                proto::ConsentFilter {
                    start_time,
                    end_time,
                    subject_id,
                    user_id,
                    country_code,
                    status,
                }
            },
        ),
    )
}

fn record_consent() -> impl Strategy<Value = proto::RecordConsentRequest> {
    let ids = (text(), text(), text(), text(), number(), number());
    let choices = (
        texts(),
        texts(),
        vec((text(), text(), any::<bool>()), 0..5),
        text(),
        any::<[bool; 3]>(),
    );
    let strings = (
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
    );
    let notice = (timestamp(), text(), text());
    (ids, choices, strings, notice).prop_map(
        |(
            (request_id, site_id, subject_id, user_id, action, regime),
            (granted, denied, services, banner_revision, [gpc_detected, gpc_honoured, ccpa]),
            (tcf, gpp, google_ac, country, language, page_url, user_agent, ip),
            (client_time, notice_version, notice_sha256),
        )| proto::RecordConsentRequest {
            request_id,
            site_id,
            subject_id,
            user_id,
            action,
            granted_categories: granted,
            denied_categories: denied,
            services: services
                .into_iter()
                .map(|(category, service, granted)| proto::ServiceDecision {
                    category,
                    service,
                    granted,
                })
                .collect(),
            banner_revision,
            regime,
            gpc_detected,
            gpc_honoured,
            ccpa_opt_out: ccpa,
            tcf_string: tcf,
            gpp_string: gpp,
            google_ac_string: google_ac,
            country_code: country,
            language_code: language,
            page_url,
            user_agent,
            ip_address: ip,
            client_time,
            notice_version,
            notice_sha256,
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn record_consent_converts_or_names_fields(r in record_consent()) {
        judged("RecordConsentRequest", ConsentDecision::try_from(r))?;
    }

    #[test]
    fn list_consents_converts_or_names_fields(
        site_id in text(),
        filter in consent_filter(),
        page_size in page_size(),
        page_token in page_token(),
        view in number(),
    ) {
        let r = proto::ListConsentsRequest { site_id, filter, page_size, page_token, view };
        judged::<ListConsents>("ListConsentsRequest", list_command(r, &tokens()))?;
    }

    #[test]
    fn export_consents_converts_or_names_fields(
        site_id in text(),
        filter in consent_filter(),
        view in number(),
        page_token in page_token(),
    ) {
        let r = proto::ExportConsentsRequest { site_id, filter, view, page_token };
        judged::<ExportConsents>("ExportConsentsRequest", list_command(r, &tokens()))?;
    }

    #[test]
    fn subject_requests_convert_or_name_fields(
        site_id in text(),
        subject_id in text(),
        user_id in text(),
        as_of in timestamp(),
    ) {
        let status = proto::GetConsentStatusRequest {
            site_id: site_id.clone(),
            subject_id: subject_id.clone(),
            as_of,
        };
        judged("GetConsentStatusRequest", GetConsentStatus::try_from(status))?;
        let erase = proto::EraseConsentsRequest { site_id, subject_id, user_id };
        judged("EraseConsentsRequest", EraseRequest::try_from(erase))?;
    }

    #[test]
    fn single_id_requests_convert_or_name_fields(
        id in text(),
        text_ in text(),
        include_document in any::<bool>(),
    ) {
        let proof = proto::GetConsentProofRequest { record_id: id.clone(), include_document };
        judged("GetConsentProofRequest", GetConsentProof::try_from(proof))?;
        let put = proto::PutNoticeRequest { text: text_, expected_sha256: id.clone() };
        judged("PutNoticeRequest", PutNotice::try_from(put))?;
        let notice = proto::GetNoticeRequest { sha256: id.clone() };
        judged("GetNoticeRequest", GetNotice::try_from(notice))?;
        let site = proto::GetSiteSettingsRequest { site_id: id.clone() };
        judged("GetSiteSettingsRequest", GetSiteSettings::try_from(site))?;
        let widget = proto::GetWidgetSettingsRequest { widget_id: id };
        judged("GetWidgetSettingsRequest", GetWidgetSettings::try_from(widget))?;
    }
}
