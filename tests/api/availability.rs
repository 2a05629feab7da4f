use std::time::Duration;

use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{OwnCluster, TestApp, answer, consent_status, decision, recorded};

async fn health(app: &TestApp, service: &str) -> ServingStatus {
    let mut client = HealthClient::new(app.channel().await);
    let response = answer(client.check(HealthCheckRequest {
        service: service.into(),
    }))
    .await;
    ServingStatus::try_from(response.status).unwrap()
}

async fn wait_for_health(app: &TestApp, wanted: ServingStatus) {
    for _ in 0..200 {
        if health(app, "").await == wanted
            && health(app, "consent.v1.ConsentService").await == wanted
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("health never became {wanted:?}");
}

#[tokio::test]
async fn postgres_down_means_unavailable_and_not_serving_until_it_returns() {
    let cluster = OwnCluster::start();
    let app = TestApp::spawn_on(&cluster.url).await;
    let mut client = app.tenant_client("acme").await;
    wait_for_health(&app, ServingStatus::Serving).await;
    let acknowledged = recorded(&mut client, decision("shop", "before")).await;

    cluster.stop();
    wait_for_health(&app, ServingStatus::NotServing).await;
    let status = client
        .record_consent(decision("shop", "during"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = consent_status(&mut client, "shop", "before")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    cluster.restart();
    wait_for_health(&app, ServingStatus::Serving).await;
    recorded(&mut client, decision("shop", "after")).await;
    let before = consent_status(&mut client, "shop", "before").await.unwrap();
    assert_eq!(
        before, acknowledged,
        "the acknowledged record survived the restart"
    );
    app.stop().await;
}

#[tokio::test]
async fn health_needs_no_key_and_knows_only_our_services() {
    let app = TestApp::spawn().await;
    wait_for_health(&app, ServingStatus::Serving).await;
    let mut client = HealthClient::new(app.channel().await);
    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn liveness_stays_serving_while_postgres_is_down_and_readiness_does_not() {
    let cluster = OwnCluster::start();
    let app = TestApp::spawn_on(&cluster.url).await;
    wait_for_health(&app, ServingStatus::Serving).await;
    assert_eq!(health(&app, "liveness").await, ServingStatus::Serving);

    cluster.stop();
    wait_for_health(&app, ServingStatus::NotServing).await;
    // Several health checks later, liveness has not followed readiness.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(health(&app, "").await, ServingStatus::NotServing);
    assert_eq!(
        health(&app, "liveness").await,
        ServingStatus::Serving,
        "a database outage must not restart the pod"
    );

    cluster.restart();
    wait_for_health(&app, ServingStatus::Serving).await;
    assert_eq!(health(&app, "liveness").await, ServingStatus::Serving);
    app.stop().await;
}
