//! Raw gRPC calls over HTTP/2, a small protobuf wire editor, and a valid
//! request of every RPC to edit.

use std::{collections::BTreeMap, time::Duration};

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use consentd::api::proto::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::{
    Message,
    encoding::{decode_varint, encode_varint},
};
use prost_types::{DescriptorProto, FileDescriptorSet, field_descriptor_proto::Type};
use tokio::net::TcpStream;
use tonic::Code;

use crate::helpers::{TestApp, decision};

/// What the server answered to one raw call.
pub struct Answer {
    pub http: u16,
    pub code: Option<Code>,
    /// grpc-message, the decoded status details and the response body: all
    /// the text a client gets back.
    pub text: String,
}

/// Sends one request on a connection of its own, so a case that upsets
/// the connection cannot spoil the next.
pub async fn send(app: &TestApp, rpc: &str, headers: &[(&str, &str)], body: Bytes) -> Answer {
    let socket = TcpStream::connect(app.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(socket))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::post(format!("http://consentd.test/consent.v1.{rpc}"))
        .header("te", "trailers")
        .header("content-type", "application/grpc");
    for (name, value) in headers {
        request.headers_mut().unwrap().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let response = sender
        .send_request(request.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let http = response.status().as_u16();
    let head = response.headers().clone();
    let collected = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .expect("an answer within 30 s");
    let (body, trailers) = match collected {
        Ok(collected) => {
            let trailers = collected.trailers().cloned().unwrap_or_default();
            (collected.to_bytes(), trailers)
        }
        Err(error) => (
            Bytes::from(format!("body error: {error}")),
            Default::default(),
        ),
    };
    let field = |name: &str| {
        trailers
            .get(name)
            .or_else(|| head.get(name))
            .map(|v| v.to_str().unwrap_or_default().to_string())
    };
    let code = field("grpc-status").map(|s| Code::from(s.parse::<i32>().unwrap()));
    let details = field("grpc-status-details-bin")
        .and_then(|d| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(d.trim_end_matches('='))
                .ok()
        })
        .unwrap_or_default();
    let text = format!(
        "{}\n{}\n{}",
        field("grpc-message").unwrap_or_default(),
        String::from_utf8_lossy(&details),
        String::from_utf8_lossy(&body)
    );
    Answer { http, code, text }
}

/// A gRPC frame: the compressed flag, the length, the message.
pub fn frame(compressed: bool, message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(u8::from(compressed));
    framed.put_u32(message.len() as u32);
    framed.put_slice(message);
    framed.freeze()
}

// A minimal protobuf wire editor: it sets one string field anywhere in an
// encoded message, so every string field of every request can be reached
// from the descriptors without a setter per field.

/// The fields of an encoded message: number, wire type, value bytes.
fn wire_fields(mut bytes: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = decode_varint(&mut bytes).unwrap();
        let (number, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => {
                let before = bytes;
                decode_varint(&mut bytes).unwrap();
                before[..before.len() - bytes.len()].to_vec()
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                let (value, rest) = bytes.split_at(n);
                bytes = rest;
                value.to_vec()
            }
            2 => {
                let len = decode_varint(&mut bytes).unwrap() as usize;
                let (value, rest) = bytes.split_at(len);
                bytes = rest;
                value.to_vec()
            }
            other => panic!("wire type {other}"),
        };
        fields.push((number, wire, value));
    }
    fields
}

fn encode_fields(fields: &[(u64, u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (number, wire, value) in fields {
        encode_varint(number << 3 | wire, &mut out);
        if *wire == 2 {
            encode_varint(value.len() as u64, &mut out);
        }
        out.extend_from_slice(value);
    }
    out
}

/// `message` with the string at `path` (field numbers) set to `value`,
/// whatever its bytes; in a repeated message the first element is changed.
pub fn with_string(message: &[u8], path: &[u64], value: &[u8]) -> Vec<u8> {
    let mut fields = wire_fields(message);
    let (first, rest) = path.split_first().unwrap();
    if rest.is_empty() {
        fields.retain(|(number, _, _)| number != first);
        fields.push((*first, 2, value.to_vec()));
    } else if let Some(at) = fields.iter().position(|(number, _, _)| number == first) {
        fields[at].2 = with_string(&fields[at].2, rest, value);
    } else {
        fields.push((*first, 2, with_string(&[], rest, value)));
    }
    encode_fields(&fields)
}

/// Every string field of a consent.v1 message, nested ones included, as
/// (`a.b` name, field-number path).
pub fn string_fields(set: &FileDescriptorSet, message: &str) -> Vec<(String, Vec<u64>)> {
    let find = |name: &str| -> &DescriptorProto {
        set.file
            .iter()
            .filter(|f| f.package() == "consent.v1")
            .flat_map(|f| &f.message_type)
            .find(|m| m.name() == name.trim_start_matches(".consent.v1."))
            .unwrap()
    };
    let mut found = Vec::new();
    for field in &find(message).field {
        let number = field.number() as u64;
        if field.r#type() == Type::String {
            found.push((field.name().to_string(), vec![number]));
        } else if field.r#type() == Type::Message && field.type_name().starts_with(".consent.v1.") {
            for (name, path) in string_fields(set, field.type_name()) {
                let path = [vec![number], path].concat();
                found.push((format!("{}.{name}", field.name()), path));
            }
        }
    }
    found
}

/// A valid request of every RPC, encoded, by `Service/Method`.
pub fn valid_requests() -> BTreeMap<&'static str, Vec<u8>> {
    let filter = Some(ConsentFilter {
        subject_id: "visitor".into(),
        user_id: "user-1".into(),
        country_code: "DE".into(),
        ..Default::default()
    });
    let change = PreferenceChange {
        r#type: PreferenceChangeType::Added.into(),
        topic_id: "letters".into(),
        topic_title_en: "Letters".into(),
        topic_title_translated: "Briefe".into(),
        options: vec![PreferenceOption {
            option_id: "news".into(),
            title_en: "News".into(),
            title_translated: "Neuigkeiten".into(),
        }],
    };
    let mut record = decision("shop", "visitor");
    record.request_id = "req-1".into();
    record.user_id = "user-1".into();
    record.notice_version = "v1".into();
    BTreeMap::from([
        ("ConsentService/RecordConsent", record.encode_to_vec()),
        (
            "ConsentService/GetConsentStatus",
            GetConsentStatusRequest {
                as_of: None,
                site_id: "shop".into(),
                subject_id: "visitor".into(),
            }
            .encode_to_vec(),
        ),
        (
            "ConsentService/ListConsents",
            ListConsentsRequest {
                site_id: "shop".into(),
                filter: filter.clone(),
                page_size: 10,
                page_token: String::new(),
                view: ConsentView::Full.into(),
            }
            .encode_to_vec(),
        ),
        (
            "ConsentService/ExportConsents",
            ExportConsentsRequest {
                page_token: String::new(),
                site_id: "shop".into(),
                filter,
                view: ConsentView::Basic.into(),
            }
            .encode_to_vec(),
        ),
        (
            "ConsentService/EraseConsents",
            EraseConsentsRequest {
                site_id: "shop".into(),
                subject_id: "visitor".into(),
                user_id: "user-1".into(),
            }
            .encode_to_vec(),
        ),
        (
            "ConsentService/GetConsentProof",
            GetConsentProofRequest {
                include_document: false,
                record_id: uuid::Uuid::now_v7().to_string(),
            }
            .encode_to_vec(),
        ),
        (
            "ConsentService/PutNotice",
            PutNoticeRequest {
                text: "We use cookies.".into(),
                expected_sha256: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "ConsentService/GetNotice",
            GetNoticeRequest {
                sha256: "ab".repeat(32),
            }
            .encode_to_vec(),
        ),
        ("ConsentService/ListSigningKeys", Vec::new()),
        (
            "ConsentService/GetCheckpoint",
            GetCheckpointRequest { tree_size: 1 }.encode_to_vec(),
        ),
        (
            "ConsentService/GetInclusionProof",
            GetInclusionProofRequest {
                leaf: Some(get_inclusion_proof_request::Leaf::RecordId(
                    uuid::Uuid::now_v7().to_string(),
                )),
                tree_size: 0,
            }
            .encode_to_vec(),
        ),
        (
            "ConsentService/GetConsistencyProof",
            GetConsistencyProofRequest {
                old_size: 1,
                new_size: 0,
            }
            .encode_to_vec(),
        ),
        (
            "PreferenceService/UpdatePreferences",
            UpdatePreferencesRequest {
                request_id: "preq-1".into(),
                widget_id: "w".into(),
                user_id: "user-1".into(),
                language_code: "de".into(),
                changes: vec![change],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "PreferenceService/GetPreferences",
            GetPreferencesRequest {
                as_of: None,
                widget_id: "w".into(),
                user_id: "user-1".into(),
            }
            .encode_to_vec(),
        ),
        (
            "PreferenceService/ListPreferenceHistory",
            ListPreferenceHistoryRequest {
                widget_id: "w".into(),
                user_id: "user-1".into(),
                page_size: 10,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "PreferenceService/ExportPreferenceHistory",
            ExportPreferenceHistoryRequest {
                widget_id: "w".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "PreferenceService/ErasePreferences",
            ErasePreferencesRequest {
                widget_id: "w".into(),
                user_id: "user-1".into(),
            }
            .encode_to_vec(),
        ),
        (
            "AdminService/GetSiteSettings",
            GetSiteSettingsRequest {
                site_id: "shop".into(),
            }
            .encode_to_vec(),
        ),
        (
            "AdminService/UpdateSiteSettings",
            UpdateSiteSettingsRequest {
                site_id: "shop".into(),
                detailed_logging: Some(false),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "AdminService/ListAuditEvents",
            ListAuditEventsRequest {
                page_size: 10,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "AdminService/GetWidgetSettings",
            GetWidgetSettingsRequest {
                widget_id: "w".into(),
            }
            .encode_to_vec(),
        ),
        (
            "AdminService/UpdateWidgetSettings",
            UpdateWidgetSettingsRequest {
                widget_id: "w".into(),
                settings: Some(WidgetSettings {
                    selection_lifetime: None,
                }),
            }
            .encode_to_vec(),
        ),
    ])
}

/// The input message of `Service/Method`, from the descriptors.
pub fn rpc_input(set: &FileDescriptorSet, rpc: &str) -> String {
    let (service, method) = rpc.split_once('/').unwrap();
    set.file
        .iter()
        .flat_map(|f| &f.service)
        .filter(|s| s.name() == service)
        .flat_map(|s| &s.method)
        .find(|m| m.name() == method)
        .unwrap()
        .input_type()
        .trim_start_matches(".consent.v1.")
        .to_string()
}
