//! What consentd forgets, checked on the whole database: an erased subject
//! leaves nothing behind in any table (only the audit rows' digests), and
//! records deleted on schedule leave an audit event with counts only.

use std::{path::PathBuf, process::Command, time::Duration};

use consentd::{
    api::proto::{
        AuditEvent, EraseConsentsRequest, ErasePreferencesRequest, ListAuditEventsRequest,
        PreferenceChange, PreferenceChangeType, PreferenceOption, UpdatePreferencesRequest,
        UpdatePreferencesResponse,
    },
    domain::{auth::Scope, erasure::AuditKey},
};
use uuid::Uuid;

use crate::helpers::{
    AUDIT_KEY, AdminClient, ConsentClient, PreferenceClient, TestApp, answer, cluster_url,
    decision, recorded, settings_with_clock, short_lived_site,
};

const WIDGET: &str = "preference-centre";

/// A string no other test or fixture holds, so finding it anywhere in a
/// dump means it is this test's.
fn unique(kind: &str) -> String {
    format!("{kind}-{}", Uuid::new_v4().simple())
}

/// The directory of the PostgreSQL binaries, found the way scripts/pg finds
/// initdb.
fn pg_bindir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .filter(|dir| dir.join("pg_dump").is_file());
    from_pg_config.unwrap_or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"))
            .filter(|dir| dir.join("pg_dump").is_file())
            .collect();
        dirs.sort_by_key(|dir| {
            let version = dir.parent().and_then(|d| d.file_name()).unwrap_or_default();
            version.to_string_lossy().parse::<u32>().unwrap_or(0)
        });
        dirs.pop().expect("pg_dump not found: install PostgreSQL")
    })
}

/// Every row of every table of the database, as `pg_dump --data-only`
/// writes it.
fn dump(database_url: &str) -> String {
    let output = Command::new(pg_bindir().join("pg_dump"))
        .args(["--data-only", "--dbname", database_url])
        .output()
        .unwrap();
    crate::cli::stdout(&output)
}

/// Where `value` shows in a dump: as text, or inside a bytea column (which
/// pg_dump writes in hex), such as an encoded response.
fn traces<'a>(dump: &'a str, value: &str) -> Vec<&'a str> {
    let hex = hex::encode(value);
    dump.lines()
        .filter(|line| line.contains(value) || line.contains(&hex))
        .collect()
}

/// A data subject with everything consentd may store about them.
struct Person {
    subject_id: String,
    user_id: String,
    consent_request_ids: [String; 2],
    preference_request_ids: [String; 3],
    topic_id: String,
    topic_titles: [String; 2],
    /// Added, added then removed, and removed without ever being selected
    /// (so its id is only in the stored response of its request, which
    /// lists it as unchanged, without its titles).
    options: [PreferenceOption; 3],
}

impl Person {
    fn new(name: &str) -> Self {
        let option = |kind: &str| PreferenceOption {
            option_id: unique(&format!("{name}-{kind}")),
            title_en: unique(&format!("{name}-{kind}-title-en")),
            title_translated: unique(&format!("{name}-{kind}-title-de")),
        };
        Self {
            subject_id: unique(&format!("{name}-subject")),
            user_id: unique(&format!("{name}-user")),
            consent_request_ids: [(); 2].map(|()| unique(&format!("{name}-consent-request"))),
            preference_request_ids: [(); 3].map(|()| unique(&format!("{name}-pref-request"))),
            topic_id: unique(&format!("{name}-topic")),
            topic_titles: [
                unique(&format!("{name}-topic-title-en")),
                unique(&format!("{name}-topic-title-de")),
            ],
            options: [option("kept"), option("removed"), option("never")],
        }
    }

    /// Every string of this person's that erasure must leave nowhere.
    fn strings(&self) -> Vec<&str> {
        let mut strings = vec![
            self.subject_id.as_str(),
            &self.user_id,
            &self.topic_id,
            &self.topic_titles[0],
            &self.topic_titles[1],
        ];
        strings.extend(self.consent_request_ids.iter().map(String::as_str));
        strings.extend(self.preference_request_ids.iter().map(String::as_str));
        for option in &self.options[..2] {
            strings.extend([
                option.option_id.as_str(),
                &option.title_en,
                &option.title_translated,
            ]);
        }
        strings.push(&self.options[2].option_id);
        strings
    }

    /// Two decisions with every field set, on two sites.
    async fn record(&self, client: &mut ConsentClient) {
        for (site, request_id) in ["shop", "blog"].iter().zip(&self.consent_request_ids) {
            let mut request = decision(site, &self.subject_id);
            request.user_id = self.user_id.clone();
            request.request_id = request_id.clone();
            recorded(client, request).await;
        }
    }

    fn change(&self, kind: PreferenceChangeType, options: &[usize]) -> PreferenceChange {
        PreferenceChange {
            r#type: kind.into(),
            topic_id: self.topic_id.clone(),
            topic_title_en: self.topic_titles[0].clone(),
            topic_title_translated: self.topic_titles[1].clone(),
            options: options.iter().map(|&i| self.options[i].clone()).collect(),
        }
    }

    fn update(&self, request: usize, change: PreferenceChange) -> UpdatePreferencesRequest {
        UpdatePreferencesRequest {
            request_id: self.preference_request_ids[request].clone(),
            widget_id: WIDGET.into(),
            user_id: self.user_id.clone(),
            language_code: "de".into(),
            changes: vec![change],
            ..Default::default()
        }
    }

    /// Three saves, each with a request id; returns the first response.
    async fn choose(&self, client: &mut PreferenceClient) -> UpdatePreferencesResponse {
        let first =
            answer(client.update_preferences(
                self.update(0, self.change(PreferenceChangeType::Added, &[0, 1])),
            ))
            .await;
        for (request, change) in [
            (1, self.change(PreferenceChangeType::Removed, &[1])),
            (2, self.change(PreferenceChangeType::Removed, &[2])),
        ] {
            client
                .update_preferences(self.update(request, change))
                .await
                .unwrap();
        }
        first
    }
}

#[tokio::test]
async fn erasure_leaves_nothing_of_the_subject_in_any_table() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    let mut consents = app.client(Some(&key)).await;
    let mut preferences = app.preference_client(Some(&key)).await;
    let (gone, kept) = (Person::new("gone"), Person::new("kept"));
    let mut first_saves = Vec::new();
    for person in [&gone, &kept] {
        person.record(&mut consents).await;
        first_saves.push(person.choose(&mut preferences).await);
    }
    let before = dump(&app.database_url);
    for value in gone.strings() {
        assert!(
            !traces(&before, value).is_empty(),
            "{value} is not in the dump before erasure: the check would prove nothing"
        );
    }

    consents
        .erase_consents(EraseConsentsRequest {
            site_id: String::new(),
            subject_id: gone.subject_id.clone(),
            user_id: gone.user_id.clone(),
        })
        .await
        .unwrap();
    preferences
        .erase_preferences(ErasePreferencesRequest {
            widget_id: String::new(),
            user_id: gone.user_id.clone(),
        })
        .await
        .unwrap();

    let after = dump(&app.database_url);
    // Each value with the start of the rows holding it (their table is
    // the COPY line above them in the dump).
    let left: Vec<(&str, Vec<String>)> = gone
        .strings()
        .into_iter()
        .map(|value| {
            let lines = traces(&after, value);
            (
                value,
                lines
                    .iter()
                    .map(|l| l.chars().take(120).collect())
                    .collect(),
            )
        })
        .filter(|(_, lines): &(&str, Vec<String>)| !lines.is_empty())
        .collect();
    assert!(
        left.is_empty(),
        "left after erasure ({} of {} values):\n{left:#?}",
        left.len(),
        gone.strings().len()
    );
    for value in kept.strings() {
        assert!(
            !traces(&after, value).is_empty(),
            "{value} of another user went too"
        );
    }
    // What stays is the audit rows' keyed digests: one per erasure naming
    // the identifier.
    let audit_key = AuditKey::new(AUDIT_KEY).unwrap();
    let digest = |kind, id| hex::encode(audit_key.digest(kind, id));
    assert_eq!(
        after
            .matches(&digest("subject_id", &gone.subject_id))
            .count(),
        1
    );
    assert_eq!(after.matches(&digest("user_id", &gone.user_id)).count(), 2);

    // A retry of an erased save is a new request: it never answers with
    // what was erased.
    let retried = answer(
        preferences
            .update_preferences(gone.update(0, gone.change(PreferenceChangeType::Added, &[0, 1]))),
    )
    .await;
    let first_ids: Vec<&str> = first_saves[0]
        .events
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(retried.events.len(), 1, "applied again: {retried:?}");
    assert!(
        retried
            .events
            .iter()
            .all(|e| !first_ids.contains(&e.id.as_str())),
        "the erased response came back: {retried:?}"
    );
}

async fn purges(admin: &mut AdminClient) -> Vec<AuditEvent> {
    answer(admin.list_audit_events(ListAuditEventsRequest::default()))
        .await
        .events
        .into_iter()
        .filter(|event| event.action == "consent.purge")
        .collect()
}

#[tokio::test]
async fn retention_purges_are_audited_per_tenant_and_site_with_counts_only() {
    let (settings, clock) = settings_with_clock();
    let app = TestApp::spawn_with(&cluster_url(), settings).await;
    let mut tenants = Vec::new();
    for (tenant, records) in [("acme", 3), ("globex", 1)] {
        let key = app.key(tenant, &Scope::ALL).await;
        let mut client = app.site_client(&key, short_lived_site()).await;
        let mut subjects = Vec::new();
        for _ in 0..records {
            let subject = unique("purged-subject");
            let mut request = decision("short", &subject);
            request.user_id = unique("purged-user");
            subjects.push(subject);
            subjects.push(request.user_id.clone());
            recorded(&mut client, request).await;
        }
        // Kept: the server's default retention is years.
        recorded(&mut client, decision("shop", "kept")).await;
        tenants.push((app.admin_client(&key).await, records, subjects));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (admin, _, _) in &mut tenants {
        assert!(purges(admin).await.is_empty(), "nothing is due yet");
    }

    clock.advance(Duration::from_secs(2 * 86_400 + 60));
    for (admin, records, subjects) in &mut tenants {
        let mut events = Vec::new();
        for _ in 0..100 {
            events = purges(admin).await;
            if events.iter().map(|e| e.item_count).sum::<i64>() >= *records {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            events.iter().map(|e| e.item_count).sum::<i64>(),
            *records,
            "each tenant sees its own purge: {events:?}"
        );
        for event in &events {
            assert_eq!(event.target, "short");
            assert_eq!(event.actor_key_id, "", "done by the server");
            assert!(event.subject_digest.is_empty() && event.user_digest.is_empty());
            let shown = format!("{event:?}");
            assert!(
                subjects.iter().all(|id| !shown.contains(id.as_str())),
                "{shown}"
            );
        }
    }
    assert_eq!(
        app.stored_records().await,
        2,
        "each tenant's record on the default site stays"
    );
}
