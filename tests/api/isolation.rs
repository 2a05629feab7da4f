//! Tenant isolation, RPC by RPC: tenant B's key against tenant A's site,
//! subject, user, widget, record id, notice hash, request ids and page
//! tokens. B gets nothing of A's back, counts none of it, erases and
//! changes none of it, and sees the same status and the same answer as for
//! ids that exist nowhere. The list of RPCs comes from the compiled file
//! descriptor set, so an RPC added later fails the test until it has a case.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Debug,
};

use consentd::{api::proto::*, domain::auth::Scope};
use futures::future::BoxFuture;
use prost::Message;
use prost_types::{Duration, FileDescriptorSet};
use tonic::{Code, Response, Status, Streaming};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{
    AdminClient, ConsentClient, PreferenceClient, TestApp, decision, recorded, rows_by_table,
};

/// Every method of every consent.v1 service, as `Service/Method`.
pub fn described_rpcs() -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|file| file.package() == "consent.v1")
        .flat_map(|file| &file.service)
        .flat_map(|service| {
            service
                .method
                .iter()
                .map(|method| format!("{}/{}", service.name(), method.name()))
        })
        .collect()
}

/// The ids a case aims at: tenant A's, or ids that exist nowhere.
#[derive(Clone, Debug)]
struct Ids {
    site: String,
    subject: String,
    user: String,
    widget: String,
    record_id: String,
    notice_sha256: String,
    request_id: String,
    /// The `next_page_token` and the `resume_page_token` of each list.
    consents_tokens: [String; 2],
    history_tokens: [String; 2],
    audit_tokens: [String; 2],
}

impl Ids {
    /// Ids no tenant has; the tokens are well formed but sealed by no one.
    fn missing() -> Self {
        let forged = |n: u8| {
            use base64::Engine;
            let mut bytes = vec![2u8];
            bytes.extend(std::iter::repeat_n(n, 40));
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        };
        let fresh = || Uuid::now_v7().simple().to_string();
        Self {
            site: format!("site-{}", fresh()),
            subject: format!("subject-{}", fresh()),
            user: format!("user-{}", fresh()),
            widget: format!("widget-{}", fresh()),
            record_id: Uuid::now_v7().to_string(),
            notice_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fresh())),
            request_id: fresh(),
            consents_tokens: [forged(1), forged(2)],
            history_tokens: [forged(3), forged(4)],
            audit_tokens: [forged(5), forged(6)],
        }
    }
}

/// Tenant B's clients: a tenant of its own for every case, so what one
/// case writes under A's names is not what another case reads.
struct B {
    consent: ConsentClient,
    preference: PreferenceClient,
    admin: AdminClient,
}

/// What B saw of one call: the id it aimed at, the status, and a summary
/// of the answer without the ids B sent (so A's and missing ids compare).
#[derive(Default)]
struct Seen {
    rows: Vec<(&'static str, Code, String)>,
    /// Every response and message, for the search for A's data.
    text: String,
}

impl Seen {
    fn unary<T: Debug>(
        &mut self,
        target: &'static str,
        result: Result<Response<T>, Status>,
        summary: impl FnOnce(&T) -> String,
    ) {
        match result {
            Ok(response) => {
                let response = response.into_inner();
                self.text.push_str(&format!("{response:?}\n"));
                self.rows.push((target, Code::Ok, summary(&response)));
            }
            Err(status) => self.refused(target, status),
        }
    }

    async fn stream<T: Debug>(
        &mut self,
        target: &'static str,
        result: Result<Response<Streaming<T>>, Status>,
        items: impl Fn(&T) -> usize,
    ) {
        let mut stream = match result {
            Ok(response) => response.into_inner(),
            Err(status) => return self.refused(target, status),
        };
        let mut count = 0;
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    count += items(&message);
                    self.text.push_str(&format!("{message:?}\n"));
                }
                Ok(None) => break,
                Err(status) => return self.refused(target, status),
            }
        }
        self.rows.push((target, Code::Ok, format!("{count} items")));
    }

    fn refused(&mut self, target: &'static str, status: Status) {
        self.text.push_str(&format!("{status:?}\n"));
        // The message too: one that differed would tell B that A's id exists.
        let violations: Vec<_> = (status.get_error_details().bad_request())
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|v| v.description.clone())
                    .collect()
            })
            .unwrap_or_default();
        let answer = format!("{} {violations:?}", status.message());
        self.rows.push((target, status.code(), answer));
    }
}

type Case = for<'a> fn(&'a mut B, &'a Ids, &'a mut Seen) -> BoxFuture<'a, ()>;

/// A case as a plain function of B's clients, the ids and what is seen.
macro_rules! case {
    (|$b:ident, $ids:ident, $seen:ident| $body:block) => {{
        fn case<'a>($b: &'a mut B, $ids: &'a Ids, $seen: &'a mut Seen) -> BoxFuture<'a, ()> {
            Box::pin(async move { $body })
        }
        case as Case
    }};
}

fn consent_filter(ids: &Ids, subject: bool, user: bool) -> Option<ConsentFilter> {
    Some(ConsentFilter {
        subject_id: if subject {
            ids.subject.clone()
        } else {
            String::new()
        },
        user_id: if user {
            ids.user.clone()
        } else {
            String::new()
        },
        ..Default::default()
    })
}

/// The tokens a list case sends: none, the next page's, the resume token.
const TOKENS: [(&str, Option<usize>); 3] = [
    ("first page", None),
    ("next_page_token", Some(0)),
    ("resume_page_token", Some(1)),
];

fn token(tokens: &[String; 2], which: Option<usize>) -> String {
    which.map(|i| tokens[i].clone()).unwrap_or_default()
}

fn list_consents(
    ids: &Ids,
    subject: bool,
    user: bool,
    which: Option<usize>,
) -> ListConsentsRequest {
    ListConsentsRequest {
        site_id: ids.site.clone(),
        filter: consent_filter(ids, subject, user),
        page_size: 1,
        page_token: token(&ids.consents_tokens, which),
        view: ConsentView::Full.into(),
    }
}

fn history(ids: &Ids, which: Option<usize>) -> ListPreferenceHistoryRequest {
    ListPreferenceHistoryRequest {
        widget_id: ids.widget.clone(),
        user_id: ids.user.clone(),
        page_size: 1,
        page_token: token(&ids.history_tokens, which),
        ..Default::default()
    }
}

fn preferences(ids: &Ids, title: &str) -> UpdatePreferencesRequest {
    UpdatePreferencesRequest {
        request_id: ids.request_id.clone(),
        widget_id: ids.widget.clone(),
        user_id: ids.user.clone(),
        language_code: "de".into(),
        changes: ["news", "offers"]
            .into_iter()
            .map(|option| PreferenceChange {
                r#type: PreferenceChangeType::Added.into(),
                topic_id: "letters".into(),
                topic_title_en: title.into(),
                options: vec![PreferenceOption {
                    option_id: option.into(),
                    title_en: title.into(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn days(n: i64) -> Option<Duration> {
    Some(Duration {
        seconds: n * 86_400,
        nanos: 0,
    })
}

fn count<T>(items: &[T]) -> String {
    format!("{} items", items.len())
}

/// One case per RPC, by `Service/Method`.
fn cases() -> BTreeMap<&'static str, Case> {
    BTreeMap::from([
        (
            "ConsentService/RecordConsent",
            case!(|b, ids, seen| {
                // A's request id with A's very decision: a record of B's
                // own, never A's record replayed.
                let mut request = decision(&ids.site, &ids.subject);
                request.request_id = ids.request_id.clone();
                request.user_id = ids.user.clone();
                let result = b.consent.record_consent(request).await;
                seen.unary("request_id", result, |r| {
                    format!("record: {}", r.record.is_some())
                });
            }),
        ),
        (
            "ConsentService/GetConsentStatus",
            case!(|b, ids, seen| {
                let request = GetConsentStatusRequest {
                    as_of: None,
                    site_id: ids.site.clone(),
                    subject_id: ids.subject.clone(),
                };
                let result = b.consent.get_consent_status(request).await;
                seen.unary("site+subject", result, |r| {
                    format!("{:?}", r.record.is_some())
                });
            }),
        ),
        (
            "ConsentService/ListConsents",
            case!(|b, ids, seen| {
                for (target, subject, user) in [("subject", true, false), ("user", false, true)] {
                    let request = list_consents(ids, subject, user, None);
                    let result = b.consent.list_consents(request).await;
                    seen.unary(target, result, |r| count(&r.records));
                }
                for (target, which) in TOKENS {
                    let request = list_consents(ids, false, false, which);
                    let result = b.consent.list_consents(request).await;
                    seen.unary(target, result, |r| count(&r.records));
                }
            }),
        ),
        (
            "ConsentService/ExportConsents",
            case!(|b, ids, seen| {
                for (target, subject, user) in [
                    ("site", false, false),
                    ("subject", true, false),
                    ("user", false, true),
                ] {
                    let request = ExportConsentsRequest {
                        page_token: String::new(),
                        site_id: ids.site.clone(),
                        filter: consent_filter(ids, subject, user),
                        view: ConsentView::Full.into(),
                    };
                    let result = b.consent.export_consents(request).await;
                    seen.stream(target, result, |m| m.records.len()).await;
                }
            }),
        ),
        (
            "ConsentService/EraseConsents",
            case!(|b, ids, seen| {
                for (target, site, subject, user) in [
                    ("site+subject", true, true, false),
                    ("subject, every site", false, true, false),
                    ("user, every site", false, false, true),
                ] {
                    let pick =
                        |on: bool, value: &str| if on { value.into() } else { String::new() };
                    let request = EraseConsentsRequest {
                        site_id: pick(site, &ids.site),
                        subject_id: pick(subject, &ids.subject),
                        user_id: pick(user, &ids.user),
                    };
                    let result = b.consent.erase_consents(request).await;
                    seen.unary(target, result, |r| format!("erased {}", r.erased_count));
                }
            }),
        ),
        (
            "ConsentService/GetConsentProof",
            case!(|b, ids, seen| {
                let request = GetConsentProofRequest {
                    include_document: false,
                    record_id: ids.record_id.clone(),
                };
                let result = b.consent.get_consent_proof(request).await;
                seen.unary("record_id", result, |r| format!("{:?}", r.record.is_some()));
            }),
        ),
        (
            "ConsentService/PutNotice",
            case!(|b, ids, seen| {
                // B stores a text of its own under its own hash: that A
                // holds a notice changes nothing B can see.
                let request = PutNoticeRequest {
                    text: format!("B's notice for {}", ids.site),
                    expected_sha256: String::new(),
                };
                let result = b.consent.put_notice(request).await;
                seen.unary("notice text", result, |r| format!("created {}", r.created));
            }),
        ),
        (
            "ConsentService/GetNotice",
            case!(|b, ids, seen| {
                let request = GetNoticeRequest {
                    sha256: ids.notice_sha256.clone(),
                };
                let result = b.consent.get_notice(request).await;
                seen.unary("notice_sha256", result, |r| r.text.len().to_string());
            }),
        ),
        (
            "ConsentService/ListSigningKeys",
            case!(|b, _ids, seen| {
                // The server's public keys: the same for every tenant.
                let result = b.consent.list_signing_keys(ListSigningKeysRequest {}).await;
                seen.unary("(no ids)", result, |r| format!("{:?}", r.keys));
            }),
        ),
        (
            "ConsentService/GetCheckpoint",
            case!(|b, _ids, seen| {
                // B's own log, which is empty: A's checkpoints never show.
                let result = b
                    .consent
                    .get_checkpoint(GetCheckpointRequest::default())
                    .await;
                seen.unary("(no ids)", result, |r| format!("{:?}", r.checkpoint));
            }),
        ),
        (
            "ConsentService/GetInclusionProof",
            case!(|b, ids, seen| {
                use get_inclusion_proof_request::Leaf;
                let request = GetInclusionProofRequest {
                    leaf: Some(Leaf::RecordId(ids.record_id.clone())),
                    tree_size: 0,
                };
                let result = b.consent.get_inclusion_proof(request).await;
                seen.unary("record_id", result, |r| format!("{}", r.leaf_index));
                let request = GetInclusionProofRequest {
                    leaf: Some(Leaf::LeafIndex(0)),
                    tree_size: 0,
                };
                let result = b.consent.get_inclusion_proof(request).await;
                seen.unary("leaf_index", result, |r| r.record_id.clone());
            }),
        ),
        (
            "ConsentService/GetConsistencyProof",
            case!(|b, _ids, seen| {
                let request = GetConsistencyProofRequest {
                    old_size: 1,
                    new_size: 0,
                };
                let result = b.consent.get_consistency_proof(request).await;
                seen.unary("(no ids)", result, |r| format!("{:?}", r.hashes));
            }),
        ),
        (
            "PreferenceService/UpdatePreferences",
            case!(|b, ids, seen| {
                let result = b
                    .preference
                    .update_preferences(preferences(ids, "B's"))
                    .await;
                seen.unary("widget+user+request_id", result, |r| {
                    let state = r.state.as_ref().unwrap();
                    format!("{} topics, {} events", state.topics.len(), r.events.len())
                });
            }),
        ),
        (
            "PreferenceService/GetPreferences",
            case!(|b, ids, seen| {
                let request = GetPreferencesRequest {
                    as_of: None,
                    widget_id: ids.widget.clone(),
                    user_id: ids.user.clone(),
                };
                let result = b.preference.get_preferences(request).await;
                seen.unary("widget+user", result, |r| {
                    format!("{:?} topics", r.state.as_ref().map(|s| s.topics.len()))
                });
            }),
        ),
        (
            "PreferenceService/ListPreferenceHistory",
            case!(|b, ids, seen| {
                for (target, which) in TOKENS {
                    let result = b
                        .preference
                        .list_preference_history(history(ids, which))
                        .await;
                    seen.unary(target, result, |r| count(&r.events));
                }
            }),
        ),
        (
            "PreferenceService/ExportPreferenceHistory",
            case!(|b, ids, seen| {
                let request = ExportPreferenceHistoryRequest {
                    widget_id: ids.widget.clone(),
                    ..Default::default()
                };
                let result = b.preference.export_preference_history(request).await;
                seen.stream("widget", result, |m| m.events.len()).await;
            }),
        ),
        (
            "PreferenceService/ErasePreferences",
            case!(|b, ids, seen| {
                for (target, widget) in [("widget+user", true), ("user, every widget", false)] {
                    let request = ErasePreferencesRequest {
                        widget_id: if widget {
                            ids.widget.clone()
                        } else {
                            String::new()
                        },
                        user_id: ids.user.clone(),
                    };
                    let result = b.preference.erase_preferences(request).await;
                    seen.unary(target, result, |r| {
                        format!("erased {} + {}", r.erased_selections, r.erased_events)
                    });
                }
            }),
        ),
        (
            "AdminService/GetSiteSettings",
            case!(|b, ids, seen| {
                let request = GetSiteSettingsRequest {
                    site_id: ids.site.clone(),
                };
                let result = b.admin.get_site_settings(request).await;
                seen.unary("site", result, |r| format!("{:?}", r.settings));
            }),
        ),
        (
            "AdminService/UpdateSiteSettings",
            case!(|b, ids, seen| {
                let request = UpdateSiteSettingsRequest {
                    site_id: ids.site.clone(),
                    detailed_logging: Some(false),
                    consent_lifetime: days(3),
                    retention: None,
                    drop_query_strings: Some(false),
                    categories: Some(DeclaredCategories {
                        categories: vec![DeclaredCategory {
                            name: "necessary".into(),
                            necessary: true,
                            services: vec![],
                        }],
                        inherit: false,
                    }),
                };
                let result = b.admin.update_site_settings(request).await;
                seen.unary("site", result, |r| format!("{:?}", r.settings));
            }),
        ),
        (
            "AdminService/ListAuditEvents",
            case!(|b, ids, seen| {
                for (target, which) in TOKENS {
                    let request = ListAuditEventsRequest {
                        page_size: 100,
                        page_token: token(&ids.audit_tokens, which),
                        ..Default::default()
                    };
                    let result = b.admin.list_audit_events(request).await;
                    // B's own key creation is B's only event.
                    seen.unary(target, result, |r| count(&r.events));
                }
            }),
        ),
        (
            "AdminService/GetWidgetSettings",
            case!(|b, ids, seen| {
                let request = GetWidgetSettingsRequest {
                    widget_id: ids.widget.clone(),
                };
                let result = b.admin.get_widget_settings(request).await;
                seen.unary("widget", result, |r| format!("{:?}", r.settings));
            }),
        ),
        (
            "AdminService/UpdateWidgetSettings",
            case!(|b, ids, seen| {
                let request = UpdateWidgetSettingsRequest {
                    widget_id: ids.widget.clone(),
                    settings: Some(WidgetSettings {
                        selection_lifetime: days(2),
                    }),
                };
                let result = b.admin.update_widget_settings(request).await;
                seen.unary("widget", result, |r| format!("{:?}", r.settings));
            }),
        ),
    ])
}

#[test]
fn every_rpc_of_the_descriptors_has_an_isolation_case() {
    let described = described_rpcs();
    let cased: BTreeSet<String> = cases().keys().map(|name| name.to_string()).collect();
    let missing: Vec<_> = described.difference(&cased).collect();
    let stale: Vec<_> = cased.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "RPCs without an isolation case in tests/api/isolation.rs: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "cases of RPCs that no longer exist: {stale:?}"
    );
    assert!(described.len() >= 19, "{described:?}");
}

/// Tenant A's data: everything the cases aim at, and the texts of A's that
/// must never show up in an answer to B.
struct TenantA {
    tenant_id: Uuid,
    ids: Ids,
    secrets: Vec<String>,
}

async fn tenant_a(app: &TestApp) -> (TenantA, ConsentClient, PreferenceClient, AdminClient) {
    let created = app.store.create_key("tenant-a", &Scope::ALL).await.unwrap();
    let key = created.secret.expose().to_string();
    let mut consent = app.client(Some(&key)).await;
    let mut preference = app.preference_client(Some(&key)).await;
    let mut admin = app.admin_client(&key).await;
    let mut ids = Ids::missing();
    let notice_text = format!("A's secret notice {}", Uuid::now_v7());
    ids.notice_sha256 = consent
        .put_notice(PutNoticeRequest {
            text: notice_text.clone(),
            expected_sha256: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .sha256;
    let mut records = Vec::new();
    for i in 0..3 {
        let mut request = decision(&ids.site, &ids.subject);
        request.user_id = ids.user.clone();
        request.notice_sha256 = ids.notice_sha256.clone();
        request.banner_revision = "A-secret-revision".into();
        if i == 0 {
            request.request_id = ids.request_id.clone();
        }
        records.push(recorded(&mut consent, request).await);
    }
    ids.record_id = records[0].id.clone();
    let title = format!("A's secret title {}", Uuid::now_v7());
    preference
        .update_preferences(preferences(&ids, &title))
        .await
        .unwrap();
    admin
        .update_site_settings(UpdateSiteSettingsRequest {
            site_id: ids.site.clone(),
            detailed_logging: Some(true),
            consent_lifetime: days(17),
            retention: None,
            drop_query_strings: Some(true),
            categories: None,
        })
        .await
        .unwrap();
    admin
        .update_widget_settings(UpdateWidgetSettingsRequest {
            widget_id: ids.widget.clone(),
            settings: Some(WidgetSettings {
                selection_lifetime: days(11),
            }),
        })
        .await
        .unwrap();
    // An erasure of another of A's subjects, for an audit event B must not see.
    let gone = decision(&ids.site, "a-gone");
    recorded(&mut consent, gone).await;
    let erased = consent
        .erase_consents(EraseConsentsRequest {
            subject_id: "a-gone".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let page = consent
        .list_consents(list_consents(&ids, false, false, None))
        .await
        .unwrap()
        .into_inner();
    ids.consents_tokens = [page.next_page_token, page.resume_page_token];
    let page = preference
        .list_preference_history(history(&ids, None))
        .await
        .unwrap()
        .into_inner();
    ids.history_tokens = [page.next_page_token, page.resume_page_token];
    let page = admin
        .list_audit_events(ListAuditEventsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    ids.audit_tokens = [page.next_page_token, page.resume_page_token];
    for token in [&ids.consents_tokens, &ids.history_tokens, &ids.audit_tokens]
        .iter()
        .flat_map(|t| t.iter())
    {
        assert!(!token.is_empty(), "A's lists have a second page");
    }
    let mut secrets: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    secrets.extend([
        notice_text,
        title,
        "A-secret-revision".into(),
        erased.audit_id,
    ]);
    let a = TenantA {
        tenant_id: created.tenant_id,
        ids,
        secrets,
    };
    (a, consent, preference, admin)
}

/// What A itself sees of its data, to compare before and after B's calls.
async fn a_view(
    ids: &Ids,
    consent: &mut ConsentClient,
    preference: &mut PreferenceClient,
    admin: &mut AdminClient,
) -> String {
    let mut everything = list_consents(ids, false, false, None);
    everything.page_size = 1000;
    let records = consent
        .list_consents(everything)
        .await
        .unwrap()
        .into_inner();
    let state = preference
        .get_preferences(GetPreferencesRequest {
            as_of: None,
            widget_id: ids.widget.clone(),
            user_id: ids.user.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let site = admin
        .get_site_settings(GetSiteSettingsRequest {
            site_id: ids.site.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let widget = admin
        .get_widget_settings(GetWidgetSettingsRequest {
            widget_id: ids.widget.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    format!("{:?}\n{state:?}\n{site:?}\n{widget:?}", records.records)
}

async fn tenant_b(app: &TestApp, name: &str) -> B {
    let key = app.key(&format!("tenant-b-{name}"), &Scope::ALL).await;
    B {
        consent: app.client(Some(&key)).await,
        preference: app.preference_client(Some(&key)).await,
        admin: app.admin_client(&key).await,
    }
}

#[tokio::test]
async fn tenant_b_gets_counts_erases_and_changes_nothing_of_tenant_a() {
    let app = TestApp::spawn().await;
    let (a, mut consent, mut preference, mut admin) = tenant_a(&app).await;
    // A's log is complete first, so the sequencer adds no row of A's while
    // B's calls run.
    crate::tlog::log_caught_up(&app, a.tenant_id).await;
    let rows_before = rows_by_table(&app, Some(a.tenant_id)).await;
    let view_before = a_view(&a.ids, &mut consent, &mut preference, &mut admin).await;
    assert!(rows_before.values().sum::<i64>() > 0);

    let described = described_rpcs();
    let mut table = Vec::new();
    let mut leaks = Vec::new();
    for (rpc, case) in cases() {
        assert!(described.contains(rpc), "{rpc} is not in the descriptors");
        let mut b = tenant_b(&app, rpc).await;
        let (mut on_a, mut on_missing) = (Seen::default(), Seen::default());
        case(&mut b, &a.ids, &mut on_a).await;
        case(&mut b, &Ids::missing(), &mut on_missing).await;
        for secret in &a.secrets {
            if on_a.text.contains(secret.as_str()) {
                leaks.push(format!("{rpc}: {secret}"));
            }
        }
        assert_eq!(
            on_a.rows, on_missing.rows,
            "{rpc}: B on A's ids must see what it sees on ids that exist nowhere"
        );
        table.extend(
            on_a.rows.into_iter().map(|(target, code, summary)| {
                format!("| {rpc} | {target} | {code:?} | {summary} |")
            }),
        );
    }
    assert!(leaks.is_empty(), "A's data in answers to B: {leaks:?}");
    assert_eq!(
        rows_by_table(&app, Some(a.tenant_id)).await,
        rows_before,
        "A's rows by table"
    );
    assert_eq!(
        a_view(&a.ids, &mut consent, &mut preference, &mut admin).await,
        view_before,
        "what A sees of its own data"
    );
    println!(
        "isolation matrix: {} RPCs, {} cases (B on A's ids and on missing ids: same status, same answer)",
        described.len(),
        table.len()
    );
    println!("| RPC | A's id aimed at | status | answer |\n| --- | --- | --- | --- |");
    println!("{}", table.join("\n"));
}
