use consentd::api::proto::{ExportConsentsRequest, ListConsentsRequest};

use crate::helpers::{
    POOL_SIZE, TestApp, answer, first_column, record_many, record_many_ordered, shop_export,
    shop_list, streamed,
};

#[tokio::test]
async fn an_export_of_20000_records_arrives_complete_in_order_and_chunked() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let recorded = record_many_ordered(&client, "shop", 20_000, 32).await;

    let messages = streamed(client.export_consents(shop_export())).await;
    assert!(
        messages.len() > 1,
        "chunked into several messages, got {}",
        messages.len()
    );
    let exported: Vec<String> = messages
        .into_iter()
        .flat_map(|m| m.records.into_iter().map(|r| r.id))
        .collect();
    assert_eq!(
        exported,
        recorded.into_iter().map(|r| r.id).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn clients_that_leave_an_export_early_leave_the_pool_healthy() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    record_many(&client, "shop", 5_000, 16).await;

    // More abandoned exports than the pool has connections: a leaked
    // connection would make the calls below time out.
    for _ in 0..POOL_SIZE * 2 {
        let mut stream = answer(client.export_consents(shop_export())).await;
        let first = stream.message().await.unwrap().unwrap();
        assert!(!first.records.is_empty());
        drop(stream);
    }
    for _ in 0..POOL_SIZE * 2 {
        let page = answer(client.list_consents(shop_list(10))).await;
        assert_eq!(page.records.len(), 10);
    }
    // Every abandoned export's transaction ends soon after its client left
    // (the server learns of it asynchronously, from the stream reset).
    let sql = app.sql().await;
    let mut open: Vec<String> = Vec::new();
    for _ in 0..100 {
        open = first_column(
            &sql,
            "SELECT state || ': ' || query FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await;
        if open.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(open.is_empty(), "{open:?}");
}

#[tokio::test]
async fn lists_and_exports_carry_receipts_only_in_the_full_view() {
    use consentd::api::proto::ConsentView;
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let recorded = record_many(&client, "shop", 3, 1).await;
    assert!(recorded.iter().all(|r| r.receipt.is_some()));
    for (view, with_receipts) in [
        (ConsentView::Unspecified, false),
        (ConsentView::Basic, false),
        (ConsentView::Full, true),
    ] {
        let page = answer(client.list_consents(ListConsentsRequest {
            site_id: "shop".into(),
            view: view.into(),
            ..Default::default()
        }))
        .await;
        assert_eq!(page.records.len(), 3, "{view:?}");
        assert!(
            page.records
                .iter()
                .all(|r| r.receipt.is_some() == with_receipts),
            "{view:?}"
        );
        let exported = crate::round_trip::export_all(
            &mut client,
            ExportConsentsRequest {
                view: view.into(),
                ..shop_export()
            },
        )
        .await;
        assert_eq!(exported.len(), 3);
        assert!(
            exported
                .iter()
                .all(|r| r.receipt.is_some() == with_receipts),
            "{view:?}"
        );
        if with_receipts {
            let mut by_id: Vec<_> = exported
                .iter()
                .map(|r| (r.id.clone(), r.receipt.clone()))
                .collect();
            let mut expected: Vec<_> = recorded
                .iter()
                .map(|r| (r.id.clone(), r.receipt.clone()))
                .collect();
            by_id.sort_by(|a, b| a.0.cmp(&b.0));
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(by_id, expected, "the receipts issued");
        }
    }
    let bad = client
        .list_consents(ListConsentsRequest {
            site_id: "shop".into(),
            view: 9,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(crate::helpers::violated_fields(&bad), vec!["view"]);
}
