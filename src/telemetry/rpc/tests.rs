use std::convert::Infallible;

use http::HeaderValue;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Bytes;
use prost_types::{
    FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
};
use tower::ServiceExt;

use tonic::Status;

use super::*;

/// The one layer of these tests: the method table is process-wide.
fn layer() -> RpcLayer {
    let method = |name: &str| MethodDescriptorProto {
        name: Some(name.into()),
        ..Default::default()
    };
    let set = FileDescriptorSet {
        file: vec![FileDescriptorProto {
            package: Some("test.v1".into()),
            service: vec![ServiceDescriptorProto {
                name: Some("LayerService".into()),
                method: vec![
                    method("Unary"),
                    method("Stream"),
                    method("Fails"),
                    method("Slow"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    RpcLayer::new(&[&set.encode_to_vec()])
}

fn handled(service: &str, method: &str, code: &str) -> Option<u64> {
    let series = format!(
        r#"grpc_server_handled_total{{grpc_service="{service}",grpc_method="{method}",grpc_code="{code}"}} "#
    );
    let text = metrics().encode();
    let line = text.lines().find(|line| line.starts_with(&series))?;
    line[series.len()..].parse().ok()
}

fn frames(frames: Vec<Frame<Bytes>>) -> Body {
    Body::new(StreamBody::new(tokio_stream::iter(
        frames.into_iter().map(Ok::<_, Status>),
    )))
}

fn trailers(code: &str) -> Frame<Bytes> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_str(code).unwrap());
    Frame::trailers(trailers)
}

async fn call(path: &str, response: impl FnOnce() -> Response<Body>) -> Response<RpcBody> {
    let mut response = Some(response);
    let service = tower::service_fn(move |_: Request<Body>| {
        let response = response.take().expect("one call")();
        async move { Ok::<_, Infallible>(response) }
    });
    let request = Request::builder().uri(path).body(Body::empty()).unwrap();
    layer().layer(service).oneshot(request).await.unwrap()
}

#[tokio::test]
async fn a_unary_call_is_counted_with_the_code_of_its_trailers() {
    let response = call("/test.v1.LayerService/Unary", || {
        Response::new(frames(vec![
            Frame::data(Bytes::from_static(b"x")),
            trailers("0"),
        ]))
    })
    .await;
    assert_eq!(
        handled("test.v1.LayerService", "Unary", "OK"),
        None,
        "not before its end"
    );
    response.into_body().collect().await.unwrap();
    assert_eq!(handled("test.v1.LayerService", "Unary", "OK"), Some(1));
}

#[tokio::test]
async fn an_error_is_counted_from_the_headers() {
    let mut response = Response::new(Body::empty());
    response
        .headers_mut()
        .insert("grpc-status", HeaderValue::from_static("3"));
    let response = call("/test.v1.LayerService/Fails", || response).await;
    assert_eq!(
        handled("test.v1.LayerService", "Fails", "InvalidArgument"),
        Some(1)
    );
    drop(response);
    assert_eq!(handled("test.v1.LayerService", "Fails", "Canceled"), None);
}

#[tokio::test]
async fn a_stream_the_client_leaves_is_canceled() {
    let response = call("/test.v1.LayerService/Stream", || {
        Response::new(frames(vec![
            Frame::data(Bytes::from_static(b"1")),
            Frame::data(Bytes::from_static(b"2")),
            trailers("0"),
        ]))
    })
    .await;
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert_eq!(
        handled("test.v1.LayerService", "Stream", "Canceled"),
        Some(1)
    );
    assert_eq!(handled("test.v1.LayerService", "Stream", "OK"), None);
}

#[tokio::test]
async fn a_call_dropped_before_its_answer_is_canceled_or_past_its_deadline() {
    let service = tower::service_fn(|_: Request<Body>| {
        std::future::pending::<Result<Response<Body>, Infallible>>()
    });
    let mut service = layer().layer(service);
    let request = |timeout: Option<&'static str>| {
        let mut request = Request::builder().uri("/test.v1.LayerService/Slow");
        if let Some(timeout) = timeout {
            request = request.header("grpc-timeout", timeout);
        }
        request.body(Body::empty()).unwrap()
    };
    let before = |code| handled("test.v1.LayerService", "Slow", code).unwrap_or(0);
    let (canceled, exceeded) = (before("Canceled"), before("DeadlineExceeded"));
    drop(service.call(request(Some("1H"))));
    let late = service.call(request(Some("1m")));
    tokio::time::sleep(Duration::from_millis(5)).await;
    drop(late);
    assert_eq!(before("Canceled"), canceled + 1);
    assert_eq!(before("DeadlineExceeded"), exceeded + 1);
}

#[test]
fn grpc_timeouts_parse_as_the_spec_writes_them() {
    assert_eq!(grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
    assert_eq!(grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
    assert_eq!(
        grpc_timeout(b"99999999n"),
        Some(Duration::from_nanos(99_999_999))
    );
    assert_eq!(grpc_timeout(b"123456789S"), None, "at most 8 digits");
    assert_eq!(grpc_timeout(b"S"), None);
    assert_eq!(grpc_timeout(b"5x"), None);
    assert_eq!(grpc_timeout(b""), None);
}

#[tokio::test]
async fn a_path_the_server_does_not_know_adds_no_series() {
    let path = format!("/made.up.Service{}/Method", Uuid::new_v4().simple());
    let mut response = Response::new(Body::empty());
    response
        .headers_mut()
        .insert("grpc-status", HeaderValue::from_static("12"));
    drop(call(&path, || response).await);
    assert!(handled("unknown", "unknown", "Unimplemented").is_some_and(|n| n >= 1));
    assert!(!metrics().encode().contains("made.up"));
}
