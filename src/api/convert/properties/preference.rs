//! PreferenceService requests.

use super::*;

fn update_request() -> impl Strategy<Value = proto::UpdatePreferencesRequest> {
    let option = (text(), text(), text()).prop_map(|(option_id, title_en, title_translated)| {
        proto::PreferenceOption {
            option_id,
            title_en,
            title_translated,
        }
    });
    let change = (number(), text(), text(), text(), vec(option, 0..4)).prop_map(
        |(r#type, topic_id, topic_title_en, topic_title_translated, options)| {
            proto::PreferenceChange {
                r#type,
                topic_id,
                topic_title_en,
                topic_title_translated,
                options,
            }
        },
    );
    (
        (text(), text(), text(), text()),
        vec(change, 0..5),
        number(),
        duration(),
    )
        .prop_map(
            |((request_id, widget_id, user_id, language_code), changes, author_type, lifetime)| {
                proto::UpdatePreferencesRequest {
                    request_id,
                    widget_id,
                    user_id,
                    language_code,
                    changes,
                    author_type,
                    selection_lifetime: lifetime,
                }
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn update_preferences_converts_or_names_fields(r in update_request()) {
        judged("UpdatePreferencesRequest", update_preferences(r, Uuid::nil()))?;
    }

    #[test]
    fn preference_reads_convert_or_name_fields(
        widget_id in text(),
        user_id in text(),
        times in (timestamp(), timestamp()),
        page_size in page_size(),
        page_token in page_token(),
    ) {
        let get = proto::GetPreferencesRequest {
            widget_id: widget_id.clone(),
            user_id: user_id.clone(),
            as_of: times.0,
        };
        judged("GetPreferencesRequest", GetPreferences::try_from(get))?;
        let list = proto::ListPreferenceHistoryRequest {
            widget_id: widget_id.clone(),
            user_id: user_id.clone(),
            start_time: times.0,
            end_time: times.1,
            page_size,
            page_token,
        };
        let listed = list_command::<_>(list, &tokens());
        judged::<ListPreferenceHistory>("ListPreferenceHistoryRequest", listed)?;
        let export = proto::ExportPreferenceHistoryRequest {
            widget_id: widget_id.clone(),
            start_time: times.0,
            end_time: times.1,
            page_token: String::new(),
        };
        let exported = list_command::<_>(export, &tokens());
        judged::<ExportPreferenceHistory>("ExportPreferenceHistoryRequest", exported)?;
        let erase = proto::ErasePreferencesRequest { widget_id, user_id };
        judged("ErasePreferencesRequest", ErasePreferences::try_from(erase))?;
    }
}
