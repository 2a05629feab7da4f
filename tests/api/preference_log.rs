//! Preference events in the tenant's log: each is a leaf beside the
//! records, provable against a signed checkpoint, recomputable from its
//! stored row by the README's claims format, and a tombstone once erased.

use consentd::{
    api::proto::{
        ErasePreferencesRequest, GetInclusionProofResponse, LogLeafKind, LogLeafState,
        PreferenceAuthorType, PreferenceChangeType, PreferenceEvent,
        get_inclusion_proof_request::Leaf,
    },
    domain::auth::Scope,
};
use sha2::{Digest, Sha256};
use tonic::Code;
use uuid::Uuid;

use crate::{
    helpers::{ConsentClient, PreferenceClient, TestApp, answer, record_many, violated_fields},
    preferences::{change, preference_client, update},
    tlog::{
        all_consistent, assert_tombstone, checkpoint_of_at_least, inclusion, leaf_verifies,
        log_caught_up, nothing_left_of_the_erased, opened,
    },
};

async fn tenant_id(app: &TestApp, tenant: &str) -> Uuid {
    app.sql()
        .await
        .query_one("SELECT tenant_id FROM tenants WHERE name = $1", &[&tenant])
        .await
        .unwrap()
        .get(0)
}

/// The events of a few saves by `user`: an add of two options, a removal,
/// and (by a service with its API key, no language) a remove-all.
async fn saves(client: &mut PreferenceClient, user: &str) -> Vec<PreferenceEvent> {
    use PreferenceChangeType::*;
    let mut by_service = update(user, vec![change(RemovedAll, "frequency", &[])]);
    by_service.author_type = PreferenceAuthorType::ApiKey.into();
    by_service.language_code = String::new();
    let mut events = Vec::new();
    for request in [
        update(user, vec![change(Added, "frequency", &["weekly", "daily"])]),
        update(user, vec![change(Removed, "frequency", &["daily"])]),
        by_service,
    ] {
        events.extend(answer(client.update_preferences(request)).await.events);
    }
    assert_eq!(events.len(), 3);
    events
}

/// The event's claims and salt rebuilt from its stored row by the README's
/// format alone, as a third party holding a copy of the row would.
async fn claims_of_row(app: &TestApp, event_id: &str) -> (String, Vec<u8>) {
    let row = app
        .sql()
        .await
        .query_one(
            "SELECT tenant_id::text, event_id::text, widget_id, user_id, topic_id,
                    change_type, author_type, author_key_id::text, language_code,
                    topic_title_en, topic_title_translated,
                    option_ids, option_titles_en, option_titles_translated,
                    (extract(epoch FROM event_time) * 1000000)::bigint, log_salt
             FROM preference_events WHERE event_id = $1::text::uuid",
            &[&event_id],
        )
        .await
        .unwrap();
    let text = |i: usize| serde_json::to_string(&row.get::<_, String>(i)).unwrap();
    let nullable = |i: usize| serde_json::to_string(&row.get::<_, Option<String>>(i)).unwrap();
    let change = ["ADDED", "REMOVED", "REMOVED_ALL", "EXPIRED"][row.get::<_, i16>(5) as usize - 1];
    let author = ["END_USER", "API_KEY", "SYSTEM"][row.get::<_, i16>(6) as usize - 1];
    let columns: [Vec<String>; 3] = [row.get(11), row.get(12), row.get(13)];
    let mut options: Vec<(String, String, String)> = (0..columns[0].len())
        .map(|i| {
            let [ids, en, translated] = &columns;
            (ids[i].clone(), en[i].clone(), translated[i].clone())
        })
        .collect();
    options.sort();
    let options: Vec<String> = options
        .iter()
        .map(|(id, en, translated)| {
            format!(
                r#"{{"option_id":{},"title_en":{},"title_translated":{}}}"#,
                serde_json::to_string(id).unwrap(),
                serde_json::to_string(en).unwrap(),
                serde_json::to_string(translated).unwrap()
            )
        })
        .collect();
    let claims = format!(
        concat!(
            r#"{{"type":"consentd.preference_event","version":1,"event_id":{},"tenant_id":{},"#,
            r#""widget_id":{},"user_id":{},"topic_id":{},"change_type":"{}","author_type":"{}","#,
            r#""author_key_id":{},"language_code":{},"topic_title_en":{},"#,
            r#""topic_title_translated":{},"options":[{}],"event_time_us":{}}}"#
        ),
        text(1),
        text(0),
        text(2),
        text(3),
        text(4),
        change,
        author,
        nullable(7),
        nullable(8),
        text(9),
        text(10),
        options.join(","),
        row.get::<_, i64>(14),
    );
    (claims, row.get(15))
}

fn leaf_of(claims: &str, salt: &[u8]) -> Vec<u8> {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(salt)
        .chain_update(claims.as_bytes())
        .finalize()
        .to_vec()
}

/// The proof of event `id` in the latest checkpoint's tree.
async fn event_proof(client: &mut ConsentClient, id: &str) -> GetInclusionProofResponse {
    inclusion(client, Leaf::PreferenceEventId(id.into()), 0)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_preference_event_is_a_leaf_beside_the_records_proven_by_a_signed_checkpoint() {
    let app = TestApp::spawn().await;
    let mut consent = app.tenant_client("acme").await;
    let mut preferences = preference_client(&app, "acme").await;
    let records = record_many(&consent, "shop", 4, 4).await;
    let events = saves(&mut preferences, "ann").await;
    log_caught_up(&app, tenant_id(&app, "acme").await).await;
    let checkpoint = checkpoint_of_at_least(&mut consent, 7).await;
    assert_eq!(checkpoint.tree_size, 7, "one leaf per record and per event");
    let signed = opened(&mut consent, &checkpoint).await;

    let mut leaves = Vec::new();
    for event in &events {
        let proof = event_proof(&mut consent, &event.id).await;
        assert_eq!(proof.leaf_kind(), LogLeafKind::PreferenceEvent);
        assert_eq!(proof.state(), LogLeafState::Present);
        assert_eq!(proof.preference_event_id, event.id);
        assert_eq!(proof.record_id, "", "an event's leaf names no record");
        assert!(
            proof
                .claims_json
                .starts_with(r#"{"type":"consentd.preference_event","#),
            "{}",
            proof.claims_json
        );
        assert_eq!(leaf_verifies(&proof, &signed), Ok(()));
        // A third party recomputes the leaf from the stored row.
        let (claims, salt) = claims_of_row(&app, &event.id).await;
        assert_eq!(proof.claims_json, claims);
        assert_eq!(proof.salt, salt);
        assert_eq!(proof.leaf_hash, leaf_of(&claims, &salt));
        let by_index = inclusion(&mut consent, Leaf::LeafIndex(proof.leaf_index), 0)
            .await
            .unwrap();
        assert_eq!(by_index, proof);
        leaves.push(proof.leaf_index);
    }
    for record in &records {
        let proof = inclusion(&mut consent, Leaf::RecordId(record.id.clone()), 0)
            .await
            .unwrap();
        assert_eq!(proof.leaf_kind(), LogLeafKind::ConsentRecord);
        assert_eq!(proof.preference_event_id, "");
        leaves.push(proof.leaf_index);
    }
    leaves.sort();
    assert_eq!(
        leaves,
        (0..7).collect::<Vec<_>>(),
        "every leaf is one of them"
    );
    // Every event has a salt of its own.
    let salts: i64 = app
        .sql()
        .await
        .query_one(
            "SELECT count(DISTINCT log_salt) FROM preference_events",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(salts, 3);
}

#[tokio::test]
async fn an_event_altered_or_deleted_behind_consentds_back_fails_its_proof() {
    let app = TestApp::spawn().await;
    let mut consent = app.tenant_client("acme").await;
    let mut preferences = preference_client(&app, "acme").await;
    let events = saves(&mut preferences, "ann").await;
    let signed = checkpoint_of_at_least(&mut consent, 3).await;
    let signed = opened(&mut consent, &signed).await;
    let sql = app.sql().await;
    let behind_consentds_back = async |statement: &str, event: &PreferenceEvent| {
        let event_id: Uuid = event.id.parse().unwrap();
        sql.execute(statement, &[&event_id]).await.unwrap();
    };
    behind_consentds_back(
        "UPDATE preference_events SET topic_title_en = 'forged' WHERE event_id = $1",
        &events[0],
    )
    .await;
    let proof = event_proof(&mut consent, &events[0].id).await;
    assert!(leaf_verifies(&proof, &signed).is_err(), "altered");
    behind_consentds_back(
        "DELETE FROM preference_events WHERE event_id = $1",
        &events[1],
    )
    .await;
    let proof = event_proof(&mut consent, &events[1].id).await;
    assert_eq!(proof.state(), LogLeafState::Missing);
}

#[tokio::test]
async fn erasing_a_user_keeps_every_checkpoint_consistent_and_tombstones_their_events() {
    let app = TestApp::spawn().await;
    let mut consent = app.tenant_client("acme").await;
    let mut preferences = preference_client(&app, "acme").await;
    let mut checkpoints = Vec::new();
    let mut erased = Vec::new();
    let mut kept = Vec::new();
    for round in 0..3 {
        erased.extend(saves(&mut preferences, &format!("erased-{round}")).await);
        kept.extend(saves(&mut preferences, &format!("kept-{round}")).await);
        let checkpoint = checkpoint_of_at_least(&mut consent, 6 * (round + 1)).await;
        checkpoints.push(opened(&mut consent, &checkpoint).await);
        let done = answer(preferences.erase_preferences(ErasePreferencesRequest {
            user_id: format!("erased-{round}"),
            ..Default::default()
        }))
        .await;
        assert_eq!(done.erased_events, 3);
    }
    log_caught_up(&app, tenant_id(&app, "acme").await).await;
    let last = checkpoint_of_at_least(&mut consent, 18).await;
    let last = opened(&mut consent, &last).await;
    assert_eq!(last.size, 18, "an erasure removes no leaf");
    all_consistent(&mut consent, &checkpoints, &last).await;
    for event in &erased {
        let leaf = Leaf::PreferenceEventId(event.id.clone());
        assert_tombstone(&mut consent, leaf, &last).await;
    }
    for event in &kept {
        let proof = event_proof(&mut consent, &event.id).await;
        assert_eq!(leaf_verifies(&proof, &last), Ok(()));
    }
    nothing_left_of_the_erased(&app, "preference_events", "user_id").await;
}

#[tokio::test]
async fn an_event_leaf_is_its_tenants_and_its_readers_only() {
    let app = TestApp::spawn().await;
    let mut acme = app.tenant_client("acme").await;
    let mut theirs = preference_client(&app, "other").await;
    let mut ours = preference_client(&app, "acme").await;
    let other_events = saves(&mut theirs, "ann").await;
    let our_events = saves(&mut ours, "ann").await;
    log_caught_up(&app, tenant_id(&app, "other").await).await;
    log_caught_up(&app, tenant_id(&app, "acme").await).await;

    let status = inclusion(
        &mut acme,
        Leaf::PreferenceEventId(other_events[0].id.clone()),
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "another tenant's event");
    // An event id is not a record id: the kinds are apart.
    let status = inclusion(&mut acme, Leaf::RecordId(our_events[0].id.clone()), 0)
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "an event asked for as a record"
    );
    for bad in ["nope", ""] {
        let status = inclusion(&mut acme, Leaf::PreferenceEventId(bad.into()), 0)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(violated_fields(&status), ["preference_event_id"]);
    }

    // An event's claims are for preference readers: by its id, that scope
    // alone; by its index, a consent reader without it is refused.
    let preference_reader = app.scoped_client("acme", &[Scope::PreferenceRead]).await;
    let consent_reader = app.scoped_client("acme", &[Scope::ConsentRead]).await;
    let by_id = inclusion(
        &mut preference_reader.clone(),
        Leaf::PreferenceEventId(our_events[0].id.clone()),
        0,
    )
    .await
    .unwrap();
    assert_eq!(by_id.state(), LogLeafState::Present);
    for (mut client, leaf) in [
        (consent_reader.clone(), Leaf::LeafIndex(by_id.leaf_index)),
        (
            consent_reader,
            Leaf::PreferenceEventId(our_events[0].id.clone()),
        ),
    ] {
        let status = inclusion(&mut client, leaf, 0).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
}
