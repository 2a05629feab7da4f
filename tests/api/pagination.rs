use consentd::api::proto::{ConsentFilter, ConsentRecord, ListConsentsRequest};

use crate::helpers::{
    TestApp, answer, invalid_fields, record_many, record_many_ordered, shop_list,
};

#[tokio::test]
async fn pages_of_100_return_2500_records_exactly_once_in_order() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let recorded = record_many_ordered(&client, "shop", 2500, 16).await;

    let mut listed = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = answer(client.list_consents(ListConsentsRequest {
            site_id: "shop".into(),
            page_size: 100,
            page_token: page_token.clone(),
            filter: None,
            view: 0,
        }))
        .await;
        assert!(page.records.len() <= 100);
        listed.extend(page.records);
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert!(pages >= 25);
    let ids = |records: &[ConsentRecord]| records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&listed),
        ids(&recorded),
        "every record once, in record time order"
    );

    // A token is bound to the filter it was issued for.
    let first = answer(client.list_consents(shop_list(100))).await;
    let other_filter = client
        .list_consents(ListConsentsRequest {
            site_id: "shop".into(),
            page_size: 100,
            page_token: first.next_page_token.clone(),
            filter: Some(ConsentFilter {
                country_code: "FR".into(),
                ..Default::default()
            }),
            view: 0,
        })
        .await;
    assert_eq!(invalid_fields(other_filter), vec!["page_token"]);

    let negative = client.list_consents(shop_list(-1)).await;
    assert_eq!(invalid_fields(negative), vec!["page_size"]);

    let clamped = answer(client.list_consents(shop_list(5000))).await;
    assert_eq!(clamped.records.len(), 1000);
    assert!(!clamped.next_page_token.is_empty());
}

/// A page of up to 1000 of site "shop"'s records after `token`.
fn shop_page(token: String) -> ListConsentsRequest {
    ListConsentsRequest {
        site_id: "shop".into(),
        page_size: 1000,
        page_token: token,
        filter: None,
        view: 0,
    }
}

#[tokio::test]
async fn a_poller_resumes_and_sees_only_new_records() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    record_many(&client, "shop", 30, 4).await;

    let first = answer(client.list_consents(shop_page(String::new()))).await;
    assert_eq!(first.records.len(), 30);
    assert!(first.next_page_token.is_empty());
    assert!(!first.resume_page_token.is_empty());

    let nothing_new =
        answer(client.list_consents(shop_page(first.resume_page_token.clone()))).await;
    assert!(nothing_new.records.is_empty());
    assert_eq!(nothing_new.resume_page_token, first.resume_page_token);

    let later = record_many(&client, "shop", 5, 1).await;
    let resumed = answer(client.list_consents(shop_page(first.resume_page_token))).await;
    let mut expected: Vec<_> = later.iter().map(|r| r.id.clone()).collect();
    let mut got: Vec<_> = resumed.records.iter().map(|r| r.id.clone()).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
}

/// A record whose transaction commits after a later record became visible
/// must not fall behind a poller's cursor.
#[tokio::test]
async fn a_page_never_passes_a_record_still_being_written() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let first = record_many(&client, "shop", 1, 1).await.remove(0);

    // A writer that has started (and labelled itself as consentd's writer
    // does) but not committed yet: its record time is earlier than the next.
    let mut sql = app.sql().await;
    let slow_writer = sql.transaction().await.unwrap();
    slow_writer
        .batch_execute(include_str!("../../src/store/sql/mark_writer.sql"))
        .await
        .unwrap();
    slow_writer
        .execute(
            "INSERT INTO consent_records SELECT * FROM jsonb_populate_record(NULL::consent_records, \
             (SELECT to_jsonb(c) || jsonb_build_object('record_id', gen_random_uuid(), 'subject_id', 'slow', \
              'record_time', statement_timestamp()) FROM consent_records c))",
            &[],
        )
        .await
        .unwrap();
    let after = record_many(&client, "shop", 1, 1).await.remove(0);

    let page = answer(client.list_consents(shop_page(String::new()))).await;
    assert_eq!(
        page.records.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&first.id],
        "stops before the open writer"
    );

    slow_writer.commit().await.unwrap();
    let resumed = answer(client.list_consents(shop_page(page.resume_page_token))).await;
    let subjects: Vec<_> = resumed
        .records
        .iter()
        .map(|r| r.subject_id.as_str())
        .collect();
    assert_eq!(
        subjects,
        vec!["slow", after.subject_id.as_str()],
        "the late commit is not lost"
    );
}
