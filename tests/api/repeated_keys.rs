//! A request carrying `x-api-key` more than once is UNAUTHENTICATED,
//! whatever the values and in whichever order they come.

use consentd::{api::proto::consent_service_client::ConsentServiceClient, domain::auth::Scope};
use tonic::{Code, Request, metadata::MetadataValue};

use crate::helpers::{TestApp, decision};

#[tokio::test]
async fn a_request_with_two_api_keys_is_unauthenticated_in_either_order() {
    let app = TestApp::spawn().await;
    let valid = app.key("acme", &[Scope::ConsentWrite]).await;
    let other_valid = app.key("globex", &[Scope::ConsentWrite]).await;
    let invalid = "cdk_not-a-key".to_string();

    for (first, second) in [
        (&valid, &valid),
        (&valid, &other_valid),
        (&valid, &invalid),
        (&invalid, &valid),
    ] {
        let (first, second) = (first.clone(), second.clone());
        let mut client = ConsentServiceClient::with_interceptor(
            app.channel().await,
            move |mut request: Request<()>| {
                let metadata = request.metadata_mut();
                metadata.append("x-api-key", MetadataValue::try_from(&first).unwrap());
                metadata.append("x-api-key", MetadataValue::try_from(&second).unwrap());
                Ok(request)
            },
        );
        let status = client
            .record_consent(decision("shop", "visitor"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    assert_eq!(app.stored_records().await, 0, "nothing is written");

    // Either key alone is accepted: the refusal is for the pair.
    let mut alone = app.client(Some(&valid)).await;
    alone
        .record_consent(decision("shop", "visitor"))
        .await
        .unwrap();
    assert_eq!(app.stored_records().await, 1);
}
