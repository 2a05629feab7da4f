//! Hostile input over the wire, sent as raw HTTP/2 frames: broken frames,
//! wrong content types, unnegotiated compression, oversized messages, huge
//! repeated fields and strings, NUL bytes, invalid UTF-8 and SQL
//! metacharacters in every string field of every RPC (found through the
//! compiled descriptors), changed and foreign page tokens, extreme page
//! sizes and timestamps. Each case has a clear status: INVALID_ARGUMENT
//! (RESOURCE_EXHAUSTED for size) for whatever decodes, INTERNAL only for a
//! frame that does not decode. The server stays up, a refused call writes
//! nothing, and no answer carries database text. The test prints the table
//! of cases and statuses (`-- --nocapture`).

use std::{collections::BTreeMap, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::{BufMut, Bytes, BytesMut};
use consentd::{api::proto::*, domain::auth::Scope};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::{
    Message,
    encoding::{decode_varint, encode_varint},
};
use prost_types::{DescriptorProto, FileDescriptorSet, Timestamp, field_descriptor_proto::Type};
use tokio::net::TcpStream;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    helpers::{TestApp, cluster_url, decision, settings},
    isolation::described_rpcs,
};

/// What the server answered to one raw call.
struct Answer {
    http: u16,
    code: Option<Code>,
    /// grpc-message, the decoded status details and the response body: all
    /// the text a client gets back.
    text: String,
}

/// Sends one request on a connection of its own, so a case that upsets
/// the connection cannot spoil the next.
async fn send(app: &TestApp, rpc: &str, headers: &[(&str, &str)], body: Bytes) -> Answer {
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
fn frame(compressed: bool, message: &[u8]) -> Bytes {
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
fn with_string(message: &[u8], path: &[u64], value: &[u8]) -> Vec<u8> {
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
fn string_fields(set: &FileDescriptorSet, message: &str) -> Vec<(String, Vec<u64>)> {
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
fn valid_requests(token: &str) -> BTreeMap<&'static str, Vec<u8>> {
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
                page_token: token.into(),
                view: ConsentView::Full.into(),
            }
            .encode_to_vec(),
        ),
        (
            "ConsentService/ExportConsents",
            ExportConsentsRequest {
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

/// Which statuses a case may get.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Decodes and is wrong: INVALID_ARGUMENT.
    Invalid,
    /// Too large: RESOURCE_EXHAUSTED.
    TooLarge,
    /// Does not decode as the request message: INTERNAL (gRPC's code for a
    /// request parse error).
    Undecodable,
    /// A compression nobody negotiated: UNIMPLEMENTED (gRPC's code for an
    /// unsupported encoding) or INTERNAL (a flag without an encoding).
    Unnegotiated,
    /// Not a gRPC request at all: HTTP 415, as the gRPC spec asks.
    NotGrpc,
    /// Decodes and is wrong, or is too large: INVALID_ARGUMENT or
    /// RESOURCE_EXHAUSTED (which one depends on the bytes per element).
    Refused,
    /// Valid: OK.
    Ok,
    /// Valid or refused, the answer to an allowed but odd value.
    OkOrInvalid,
}

impl Expect {
    fn allows(self, answer: &Answer) -> bool {
        let code = answer.code;
        match self {
            Expect::Invalid => code == Some(Code::InvalidArgument),
            Expect::TooLarge => code == Some(Code::ResourceExhausted),
            Expect::Refused => {
                matches!(code, Some(Code::InvalidArgument | Code::ResourceExhausted))
            }
            Expect::Undecodable => code == Some(Code::Internal),
            Expect::Unnegotiated => matches!(code, Some(Code::Unimplemented | Code::Internal)),
            Expect::NotGrpc => answer.http == 415,
            Expect::Ok => code == Some(Code::Ok),
            Expect::OkOrInvalid => matches!(code, Some(Code::Ok | Code::InvalidArgument)),
        }
    }
}

/// Words of PostgreSQL's errors that must never reach a client.
const DATABASE_TEXT: [&str; 8] = [
    "relation",
    "violates",
    "sqlstate",
    "syntax error",
    "postgres",
    "invalid byte sequence",
    "duplicate key",
    "db error",
];

/// Runs cases against one server and keeps the table.
struct Hostile<'a> {
    app: &'a TestApp,
    key: String,
    /// (case, RPC, status seen) rows, and the cases that went wrong.
    table: Vec<(String, String, String)>,
    failures: Vec<String>,
    /// While set, the rows every case must leave as they are.
    rows: Option<BTreeMap<String, i64>>,
}

impl Hostile<'_> {
    async fn case(
        &mut self,
        case: &str,
        rpc: &str,
        expect: Expect,
        headers: &[(&str, &str)],
        body: Bytes,
    ) {
        let key = self.key.clone();
        let mut all = vec![("x-api-key", key.as_str())];
        all.extend_from_slice(headers);
        let answer = send(self.app, rpc, &all, body).await;
        let seen = match (answer.http, answer.code) {
            (200, Some(code)) => format!("{code:?}"),
            (http, Some(code)) => format!("HTTP {http}, {code:?}"),
            (http, None) => format!("HTTP {http}"),
        };
        if !expect.allows(&answer) {
            let first_line = answer.text.lines().next().unwrap_or_default().to_string();
            self.failures.push(format!(
                "{case} on {rpc}: {seen} ({first_line}), expected {expect:?}"
            ));
        }
        let lower = answer.text.to_lowercase();
        if let Some(word) = DATABASE_TEXT.iter().find(|word| lower.contains(*word)) {
            self.failures.push(format!(
                "{case} on {rpc}: database text {word:?} in the answer"
            ));
        }
        // Valid calls may write (an export is audited): the rows they leave
        // are what the next refused case must not change.
        let refused = !matches!(expect, Expect::Ok | Expect::OkOrInvalid);
        if let Some(rows) = &self.rows {
            let now = all_rows(self.app).await;
            if !refused {
                self.rows = Some(now);
            } else if &now != rows {
                self.failures
                    .push(format!("{case} on {rpc}: {seen}, and rows were written"));
                self.rows = Some(now);
            }
        }
        self.table.push((case.to_string(), rpc.to_string(), seen));
    }

    async fn message(&mut self, case: &str, rpc: &str, expect: Expect, message: &[u8]) {
        self.case(case, rpc, expect, &[], frame(false, message))
            .await;
    }
}

/// Rows in every table of the database, so "nothing written" covers
/// tables added later.
async fn all_rows(app: &TestApp) -> BTreeMap<String, i64> {
    let sql = app.sql().await;
    let tables = sql
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .unwrap();
    let mut counts = BTreeMap::new();
    for table in tables {
        let name: String = table.get(0);
        let query = format!("SELECT count(*) FROM \"{name}\"");
        counts.insert(name, sql.query_one(&query, &[]).await.unwrap().get(0));
    }
    counts
}

fn time(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

/// The table, grouped: each case with the RPCs it was tried on and the
/// statuses seen.
fn summary(table: &[(String, String, String)]) -> String {
    let mut grouped: BTreeMap<&str, (usize, BTreeMap<&str, usize>)> = BTreeMap::new();
    for (case, _, seen) in table {
        let entry = grouped.entry(case).or_default();
        entry.0 += 1;
        *entry.1.entry(seen).or_default() += 1;
    }
    let mut out = String::from("| case | calls | statuses seen |\n| --- | --- | --- |\n");
    for (case, (calls, seen)) in grouped {
        let seen: Vec<_> = seen.iter().map(|(s, n)| format!("{s} ×{n}")).collect();
        out.push_str(&format!("| {case} | {calls} | {} |\n", seen.join(", ")));
    }
    out
}

#[tokio::test]
async fn hostile_requests_get_clear_statuses_write_nothing_and_leave_the_server_up() {
    let mut quiet = settings();
    // No background worker writes while rows are counted.
    quiet.expiry_interval = Duration::from_secs(3600);
    quiet.retention_interval = Duration::from_secs(3600);
    let app = TestApp::spawn_with(&cluster_url(), quiet).await;
    let created = app.store.create_key("hostile", &Scope::ALL).await.unwrap();
    let key = created.secret.expose().to_string();
    let other = app.store.create_key("other", &Scope::ALL).await.unwrap();
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();

    // Page tokens as the server seals them: this tenant's, and another's.
    let consents = ConsentFilter {
        subject_id: "visitor".into(),
        user_id: "user-1".into(),
        country_code: "DE".into(),
        ..Default::default()
    };
    let own = {
        let mut client = app.client(Some(&key)).await;
        for subject in ["visitor", "visitor"] {
            let mut request = decision("shop", subject);
            request.user_id = "user-1".into();
            client.record_consent(request).await.unwrap();
        }
        client
            .list_consents(ListConsentsRequest {
                site_id: "shop".into(),
                filter: Some(consents.clone()),
                page_size: 1,
                page_token: String::new(),
                view: ConsentView::Full.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .next_page_token
    };
    let foreign = {
        let mut client = app.client(Some(other.secret.expose())).await;
        client
            .list_consents(ListConsentsRequest {
                site_id: "shop".into(),
                filter: Some(consents),
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .resume_page_token
    };
    let requests = valid_requests("");
    let rpcs = described_rpcs();
    let listed: std::collections::BTreeSet<String> =
        requests.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        listed, rpcs,
        "a valid request of every RPC in the descriptors"
    );

    let before = all_rows(&app).await;
    let mut h = Hostile {
        app: &app,
        key,
        table: Vec::new(),
        failures: Vec::new(),
        rows: Some(before.clone()),
    };
    let record = "ConsentService/RecordConsent";
    let valid = requests[record].clone();

    // Broken frames and envelopes.
    h.case(
        "frame shorter than its length prefix",
        record,
        Expect::Undecodable,
        &[],
        {
            let mut f = frame(false, &valid).to_vec();
            f.truncate(f.len() / 2);
            Bytes::from(f)
        },
    )
    .await;
    h.message(
        "protobuf cut mid-field",
        record,
        Expect::Undecodable,
        &valid[..valid.len() - 7],
    )
    .await;
    h.message(
        "garbage protobuf (0xff ×64)",
        record,
        Expect::Undecodable,
        &[0xff; 64],
    )
    .await;
    h.message(
        "garbage protobuf (wire type 7)",
        record,
        Expect::Undecodable,
        &[0x0f, 1, 2, 3],
    )
    .await;
    h.case(
        "empty body, no message",
        record,
        Expect::Undecodable,
        &[],
        Bytes::new(),
    )
    .await;
    h.case(
        "half a frame header",
        record,
        Expect::Undecodable,
        &[],
        Bytes::from_static(&[0, 0, 0]),
    )
    .await;
    h.case(
        "content-type application/json",
        record,
        Expect::NotGrpc,
        &[("content-type", "application/json")],
        Bytes::from_static(b"{\"site_id\":\"shop\"}"),
    )
    .await;
    h.case(
        "content-type text/plain, gRPC frame",
        record,
        Expect::NotGrpc,
        &[("content-type", "text/plain")],
        frame(false, &valid),
    )
    .await;
    // tonic decodes the first message of a unary call and leaves the rest
    // unread: one call, served once.
    let twice = [frame(false, &valid), frame(false, &valid)].concat();
    h.case(
        "two messages for a unary call (one served)",
        record,
        Expect::Ok,
        &[],
        twice.into(),
    )
    .await;
    h.case(
        "compressed flag, no grpc-encoding",
        record,
        Expect::Unnegotiated,
        &[],
        frame(true, &valid),
    )
    .await;
    h.case(
        "grpc-encoding gzip, not negotiated",
        record,
        Expect::Unnegotiated,
        &[("grpc-encoding", "gzip")],
        frame(true, &valid),
    )
    .await;
    h.case(
        "length prefix of 4 GiB, no body",
        record,
        Expect::TooLarge,
        &[],
        Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff]),
    )
    .await;

    // Sizes.
    let ten_mb = "x".repeat(10 * 1024 * 1024);
    let three_mb = "x".repeat(3 * 1024 * 1024);
    for (rpc, path) in [
        (record, vec![3u64]),                                // subject_id
        ("ConsentService/PutNotice", vec![1]),               // text
        ("PreferenceService/UpdatePreferences", vec![5, 3]), // changes[0].topic_title_en
    ] {
        let body = with_string(&requests[rpc], &path, ten_mb.as_bytes());
        h.message("10 MB string", rpc, Expect::TooLarge, &body)
            .await;
        let body = with_string(&requests[rpc], &path, three_mb.as_bytes());
        h.message(
            "3 MB string (under the 4 MB limit)",
            rpc,
            Expect::Invalid,
            &body,
        )
        .await;
    }
    let many: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
    let mut big = decision("shop", "visitor");
    big.granted_categories = many.clone();
    h.message(
        "100,000 granted_categories",
        record,
        Expect::Refused,
        &big.encode_to_vec(),
    )
    .await;
    let mut big = decision("shop", "visitor");
    big.denied_categories = many.clone();
    h.message(
        "100,000 denied_categories",
        record,
        Expect::Refused,
        &big.encode_to_vec(),
    )
    .await;
    let mut big = decision("shop", "visitor");
    big.services = (0..100_000)
        .map(|i| ServiceDecision {
            category: "analytics".into(),
            service: format!("s{i}"),
            granted: true,
        })
        .collect();
    h.message(
        "100,000 services",
        record,
        Expect::Refused,
        &big.encode_to_vec(),
    )
    .await;
    let update =
        UpdatePreferencesRequest::decode(&requests["PreferenceService/UpdatePreferences"][..])
            .unwrap();
    let mut big = update.clone();
    big.changes = vec![big.changes[0].clone(); 100_000];
    h.message(
        "100,000 preference changes",
        "PreferenceService/UpdatePreferences",
        Expect::Refused,
        &big.encode_to_vec(),
    )
    .await;
    let mut big = update.clone();
    big.changes[0].options = (0..100_000)
        .map(|i| PreferenceOption {
            option_id: format!("o{i}"),
            ..Default::default()
        })
        .collect();
    h.message(
        "100,000 options in one change",
        "PreferenceService/UpdatePreferences",
        Expect::Refused,
        &big.encode_to_vec(),
    )
    .await;

    // NUL bytes and invalid UTF-8 in every string field of every RPC.
    for (rpc, body) in &requests {
        let input = rpc_input(&set, rpc);
        for (_, path) in string_fields(&set, &input) {
            let nul = with_string(body, &path, b"a\0b");
            h.message("NUL byte in a string field", rpc, Expect::Invalid, &nul)
                .await;
            let bad = with_string(body, &path, &[b'a', 0xff, 0xfe, b'b']);
            h.message(
                "invalid UTF-8 in a string field",
                rpc,
                Expect::Undecodable,
                &bad,
            )
            .await;
        }
    }

    // Page tokens.
    let raw = URL_SAFE_NO_PAD.decode(&own).unwrap();
    let mut tampered = raw.clone();
    tampered[5] ^= 0x40;
    let mut old = raw[..25].to_vec();
    old[0] = 1;
    old.extend_from_slice(&[0; 8]);
    let tokens = [
        (
            "page token: one bit changed",
            URL_SAFE_NO_PAD.encode(&tampered),
        ),
        ("page token: truncated", own[..own.len() - 4].to_string()),
        ("page token: another tenant's", foreign.clone()),
        ("page token: version 1 layout", URL_SAFE_NO_PAD.encode(&old)),
        ("page token: not base64", "%%%not-a-token%%%".to_string()),
        ("page token: 10 kB", "A".repeat(10_000)),
    ];
    for (case, token) in &tokens {
        for rpc in [
            "ConsentService/ListConsents",
            "PreferenceService/ListPreferenceHistory",
            "AdminService/ListAuditEvents",
        ] {
            let path = match rpc {
                "ConsentService/ListConsents" => 4,
                "PreferenceService/ListPreferenceHistory" => 6,
                _ => 4,
            };
            let body = with_string(&requests[rpc], &[path], token.as_bytes());
            h.message(case, rpc, Expect::Invalid, &body).await;
        }
    }
    // The token of another list: a consents token on the audit list.
    let body = with_string(
        &requests["AdminService/ListAuditEvents"],
        &[4],
        own.as_bytes(),
    );
    h.message(
        "page token: another list's",
        "AdminService/ListAuditEvents",
        Expect::Invalid,
        &body,
    )
    .await;
    let body = with_string(
        &requests["ConsentService/ListConsents"],
        &[4],
        own.as_bytes(),
    );
    h.message(
        "page token: own, same filter (control)",
        "ConsentService/ListConsents",
        Expect::Ok,
        &body,
    )
    .await;

    // Page sizes.
    for (size, expect) in [
        (0, Expect::Ok),
        (-1, Expect::Invalid),
        (i32::MAX, Expect::Ok),
        (i32::MIN, Expect::Invalid),
    ] {
        let case = format!("page_size {size}");
        let mut list =
            ListConsentsRequest::decode(&requests["ConsentService/ListConsents"][..]).unwrap();
        list.page_size = size;
        h.message(
            &case,
            "ConsentService/ListConsents",
            expect,
            &list.encode_to_vec(),
        )
        .await;
        let mut list = ListPreferenceHistoryRequest::decode(
            &requests["PreferenceService/ListPreferenceHistory"][..],
        )
        .unwrap();
        list.page_size = size;
        h.message(
            &case,
            "PreferenceService/ListPreferenceHistory",
            expect,
            &list.encode_to_vec(),
        )
        .await;
        let list = ListAuditEventsRequest {
            page_size: size,
            ..Default::default()
        };
        h.message(
            &case,
            "AdminService/ListAuditEvents",
            expect,
            &list.encode_to_vec(),
        )
        .await;
    }

    // Timestamps: before 1970 is a time like any other; after 9999, before
    // year 1 and nanos out of range are not timestamps.
    let times = [
        ("timestamp 1960-01-01", time(-315_619_200, 0), Expect::Ok),
        ("timestamp 0001-01-01", time(-62_135_596_800, 0), Expect::Ok),
        (
            "timestamp before year 1",
            time(-62_135_596_801, 0),
            Expect::Invalid,
        ),
        (
            "timestamp year 10000",
            time(253_402_300_800, 0),
            Expect::Invalid,
        ),
        (
            "timestamp i64::MAX seconds",
            time(i64::MAX, 0),
            Expect::Invalid,
        ),
        (
            "timestamp i64::MIN seconds",
            time(i64::MIN, 0),
            Expect::Invalid,
        ),
        (
            "timestamp nanos -1",
            time(1_700_000_000, -1),
            Expect::Invalid,
        ),
        (
            "timestamp nanos 1e9",
            time(1_700_000_000, 1_000_000_000),
            Expect::Invalid,
        ),
    ];
    for (case, at, expect) in &times {
        let mut list =
            ListConsentsRequest::decode(&requests["ConsentService/ListConsents"][..]).unwrap();
        list.filter.as_mut().unwrap().start_time = *at;
        h.message(
            case,
            "ConsentService/ListConsents",
            *expect,
            &list.encode_to_vec(),
        )
        .await;
        let export = ExportConsentsRequest {
            site_id: "shop".into(),
            filter: Some(ConsentFilter {
                end_time: *at,
                ..Default::default()
            }),
            ..Default::default()
        };
        // An end before every record is valid and matches nothing.
        h.message(
            case,
            "ConsentService/ExportConsents",
            *expect,
            &export.encode_to_vec(),
        )
        .await;
        let mut history = ListPreferenceHistoryRequest::decode(
            &requests["PreferenceService/ListPreferenceHistory"][..],
        )
        .unwrap();
        history.start_time = *at;
        h.message(
            case,
            "PreferenceService/ListPreferenceHistory",
            *expect,
            &history.encode_to_vec(),
        )
        .await;
        let audit = ListAuditEventsRequest {
            start_time: *at,
            ..Default::default()
        };
        h.message(
            case,
            "AdminService/ListAuditEvents",
            *expect,
            &audit.encode_to_vec(),
        )
        .await;
        if matches!(expect, Expect::Invalid) {
            let mut sent = decision("shop", "visitor");
            sent.client_time = *at;
            h.message(case, record, Expect::Invalid, &sent.encode_to_vec())
                .await;
        }
    }
    let huge = UpdateSiteSettingsRequest {
        site_id: "shop".into(),
        consent_lifetime: Some(prost_types::Duration {
            seconds: i64::MAX,
            nanos: 0,
        }),
        ..Default::default()
    };
    h.message(
        "duration i64::MAX seconds",
        "AdminService/UpdateSiteSettings",
        Expect::Invalid,
        &huge.encode_to_vec(),
    )
    .await;
    let negative = UpdateWidgetSettingsRequest {
        widget_id: "w".into(),
        settings: Some(WidgetSettings {
            selection_lifetime: Some(prost_types::Duration {
                seconds: -1,
                nanos: 0,
            }),
        }),
    };
    h.message(
        "duration -1 s",
        "AdminService/UpdateWidgetSettings",
        Expect::Invalid,
        &negative.encode_to_vec(),
    )
    .await;

    h.rows = None;

    // SQL metacharacters in every string field: bound values, so either
    // refused by a field's rules or stored as sent; never a database error.
    let sql_text = b"x'); DROP TABLE consent_records; -- \\ % _ $1 \"";
    for (rpc, body) in &requests {
        for (_, path) in string_fields(&set, &rpc_input(&set, rpc)) {
            let body = with_string(body, &path, sql_text);
            h.message(
                "SQL metacharacters in a string field",
                rpc,
                Expect::OkOrInvalid,
                &body,
            )
            .await;
        }
    }
    let mut old_client = decision("shop", "visitor");
    old_client.client_time = time(-315_619_200, 0);
    h.message(
        "client_time 1960-01-01",
        record,
        Expect::Ok,
        &old_client.encode_to_vec(),
    )
    .await;
    assert!(
        all_rows(&app).await.contains_key("consent_records"),
        "the table is still there"
    );

    let mut health = HealthClient::new(app.channel().await);
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(
        status,
        ServingStatus::Serving,
        "the server is up after every case"
    );

    println!(
        "hostile input: {} calls over {} RPCs",
        h.table.len(),
        rpcs.len()
    );
    println!("{}", summary(&h.table));
    assert!(
        h.failures.is_empty(),
        "{} cases went wrong:\n{}",
        h.failures.len(),
        h.failures.join("\n")
    );
}

/// The input message of `Service/Method`, from the descriptors.
fn rpc_input(set: &FileDescriptorSet, rpc: &str) -> String {
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
