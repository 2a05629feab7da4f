use prost::Message;
use prost_types::FileDescriptorProto;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::helpers::{TestApp, answer};

async fn ask(app: &TestApp, request: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(app.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses =
        answer(client.server_reflection_info(futures::stream::iter(vec![request]))).await;
    responses
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test]
async fn reflection_lists_and_describes_our_services_and_health() {
    let app = TestApp::spawn().await;
    let MessageResponse::ListServicesResponse(list) =
        ask(&app, MessageRequest::ListServices(String::new())).await
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"consent.v1.ConsentService"), "{names:?}");
    assert!(names.contains(&"consent.v1.PreferenceService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    for (symbol, method) in [
        ("consent.v1.ConsentService", "ExportConsents"),
        ("grpc.health.v1.Health", "Check"),
    ] {
        let MessageResponse::FileDescriptorResponse(files) =
            ask(&app, MessageRequest::FileContainingSymbol(symbol.into())).await
        else {
            panic!("expected descriptors for {symbol}");
        };
        let files: Vec<FileDescriptorProto> = files
            .file_descriptor_proto
            .iter()
            .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()).unwrap())
            .collect();
        let (package, service) = symbol.rsplit_once('.').unwrap();
        let described = files
            .iter()
            .filter(|f| f.package() == package)
            .flat_map(|f| &f.service)
            .find(|s| s.name() == service)
            .unwrap_or_else(|| panic!("{symbol} not described"));
        assert!(described.method.iter().any(|m| m.name() == method));
        if package == "consent.v1" {
            // The descriptors served carry the documentation grpcurl users read.
            let documented = files
                .iter()
                .filter(|f| f.package() == package)
                .filter_map(|f| f.source_code_info.as_ref())
                .flat_map(|info| &info.location)
                .any(|l| {
                    l.leading_comments()
                        .contains("Streams every record of a site")
                });
            assert!(documented, "{symbol} is served without its comments");
        }
    }
}

#[tokio::test]
async fn the_v1alpha_reflection_service_lists_our_services_too() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn().await;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        answer(client.server_reflection_info(futures::stream::iter(vec![request]))).await;
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        "consent.v1.ConsentService",
        "consent.v1.PreferenceService",
        "consent.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&service), "{service} missing from {names:?}");
    }
}
