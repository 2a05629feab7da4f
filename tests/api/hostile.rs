//! Hostile input over the wire, sent as raw HTTP/2 frames: broken frames,
//! wrong content types, unnegotiated compression, oversized messages, huge
//! repeated fields and strings, NUL bytes, invalid UTF-8 and SQL
//! metacharacters in every string field of every RPC (found through the
//! compiled descriptors), changed and foreign page tokens, extreme page
//! sizes and timestamps. Each case has a clear status: INVALID_ARGUMENT
//! (RESOURCE_EXHAUSTED for size) for whatever decodes, INTERNAL only for a
//! frame that does not decode. The server stays up, a refused call writes
//! nothing, and no answer or log line carries database text. The test
//! prints the table of cases and statuses (`-- --nocapture`).

mod wire;

use std::{
    collections::BTreeMap,
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use consentd::{api::proto::*, domain::auth::Scope, telemetry::get_subscriber};
use prost::Message;
use prost_types::{FileDescriptorSet, Timestamp};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use self::wire::{Answer, frame, rpc_input, send, string_fields, valid_requests, with_string};
use crate::{
    helpers::{TestApp, cluster_url, decision, rows_by_table, settings},
    isolation::described_rpcs,
};

/// A case sent as it is: name, expectation, extra headers, body.
type RawCase = (
    &'static str,
    Expect,
    &'static [(&'static str, &'static str)],
    Bytes,
);

const RECORD: &str = "ConsentService/RecordConsent";
const UPDATE: &str = "PreferenceService/UpdatePreferences";
/// The three lists, with the field number of their `page_token`.
const LISTS: [(&str, u64); 3] = [
    ("ConsentService/ListConsents", 4),
    ("PreferenceService/ListPreferenceHistory", 6),
    ("AdminService/ListAuditEvents", 4),
];

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
            let now = rows_by_table(self.app, None).await;
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

/// The cases, phase by phase, on the valid request of each RPC.
impl Hostile<'_> {
    async fn broken_frames(&mut self, valid: &[u8]) {
        let mut short = frame(false, valid).to_vec();
        short.truncate(short.len() / 2);
        let cases: [RawCase; 8] = [
            (
                "frame shorter than its length prefix",
                Expect::Undecodable,
                &[],
                short.into(),
            ),
            (
                "empty body, no message",
                Expect::Undecodable,
                &[],
                Bytes::new(),
            ),
            (
                "half a frame header",
                Expect::Undecodable,
                &[],
                Bytes::from_static(&[0, 0, 0]),
            ),
            (
                "content-type application/json",
                Expect::NotGrpc,
                &[("content-type", "application/json")],
                Bytes::from_static(b"{\"site_id\":\"shop\"}"),
            ),
            (
                "content-type text/plain, gRPC frame",
                Expect::NotGrpc,
                &[("content-type", "text/plain")],
                frame(false, valid),
            ),
            (
                "compressed flag, no grpc-encoding",
                Expect::Unnegotiated,
                &[],
                frame(true, valid),
            ),
            (
                "grpc-encoding gzip, not negotiated",
                Expect::Unnegotiated,
                &[("grpc-encoding", "gzip")],
                frame(true, valid),
            ),
            (
                "length prefix of 4 GiB, no body",
                Expect::TooLarge,
                &[],
                Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff]),
            ),
        ];
        for (case, expect, headers, body) in cases {
            self.case(case, RECORD, expect, headers, body).await;
        }
        let cut = &valid[..valid.len() - 7];
        self.message("protobuf cut mid-field", RECORD, Expect::Undecodable, cut)
            .await;
        let garbage = [0xff; 64];
        self.message(
            "garbage protobuf (0xff ×64)",
            RECORD,
            Expect::Undecodable,
            &garbage,
        )
        .await;
        let wire_type_7 = [0x0f, 1, 2, 3];
        self.message(
            "garbage protobuf (wire type 7)",
            RECORD,
            Expect::Undecodable,
            &wire_type_7,
        )
        .await;
    }

    async fn sizes(&mut self, requests: &BTreeMap<&str, Vec<u8>>) {
        let ten_mb = "x".repeat(10 * 1024 * 1024);
        let three_mb = "x".repeat(3 * 1024 * 1024);
        // subject_id, the notice's text, changes[0].topic_title_en.
        for (rpc, path) in [
            (RECORD, &[3][..]),
            ("ConsentService/PutNotice", &[1]),
            (UPDATE, &[5, 3]),
        ] {
            let body = with_string(&requests[rpc], path, ten_mb.as_bytes());
            self.message("10 MB string", rpc, Expect::TooLarge, &body)
                .await;
            let body = with_string(&requests[rpc], path, three_mb.as_bytes());
            self.message(
                "3 MB string (under the 4 MB limit)",
                rpc,
                Expect::Invalid,
                &body,
            )
            .await;
        }
        let many: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
        let services = (0..100_000)
            .map(|i| ServiceDecision {
                category: "analytics".into(),
                service: format!("s{i}"),
                granted: true,
            })
            .collect();
        let mut granted = decision("shop", "visitor");
        granted.granted_categories = many.clone();
        let mut denied = decision("shop", "visitor");
        denied.denied_categories = many;
        let mut listed = decision("shop", "visitor");
        listed.services = services;
        for (case, request) in [
            ("100,000 granted_categories", granted),
            ("100,000 denied_categories", denied),
            ("100,000 services", listed),
        ] {
            self.message(case, RECORD, Expect::Refused, &request.encode_to_vec())
                .await;
        }
        let update: UpdatePreferencesRequest = valid(requests, UPDATE);
        let mut changes = update.clone();
        changes.changes = vec![changes.changes[0].clone(); 100_000];
        let mut options = update;
        options.changes[0].options = (0..100_000)
            .map(|i| PreferenceOption {
                option_id: format!("o{i}"),
                ..Default::default()
            })
            .collect();
        for (case, request) in [
            ("100,000 preference changes", changes),
            ("100,000 options in one change", options),
        ] {
            self.message(case, UPDATE, Expect::Refused, &request.encode_to_vec())
                .await;
        }
    }

    /// `value` in each string field of each RPC, one call per field.
    async fn in_every_string_field(
        &mut self,
        requests: &BTreeMap<&str, Vec<u8>>,
        case: &str,
        value: &[u8],
        expect: Expect,
    ) {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
        for (rpc, body) in requests {
            for (_, path) in string_fields(&set, &rpc_input(&set, rpc)) {
                self.message(case, rpc, expect, &with_string(body, &path, value))
                    .await;
            }
        }
    }

    async fn page_tokens(&mut self, requests: &BTreeMap<&str, Vec<u8>>, own: &str, foreign: &str) {
        let raw = URL_SAFE_NO_PAD.decode(own).unwrap();
        let mut changed = raw.clone();
        changed[5] ^= 0x40;
        let mut old = raw[..25].to_vec();
        old[0] = 1;
        old.extend_from_slice(&[0; 8]);
        let tokens = [
            (
                "page token: one bit changed",
                URL_SAFE_NO_PAD.encode(&changed),
            ),
            ("page token: truncated", own[..own.len() - 4].to_string()),
            ("page token: another tenant's", foreign.to_string()),
            ("page token: version 1 layout", URL_SAFE_NO_PAD.encode(&old)),
            ("page token: not base64", "%%%not-a-token%%%".to_string()),
            ("page token: 10 kB", "A".repeat(10_000)),
        ];
        for (case, token) in &tokens {
            for (rpc, field) in LISTS {
                let body = with_string(&requests[rpc], &[field], token.as_bytes());
                self.message(case, rpc, Expect::Invalid, &body).await;
            }
        }
        let (consents, audit) = (LISTS[0], LISTS[2]);
        let body = with_string(&requests[audit.0], &[audit.1], own.as_bytes());
        self.message(
            "page token: another list's",
            audit.0,
            Expect::Invalid,
            &body,
        )
        .await;
        let body = with_string(&requests[consents.0], &[consents.1], own.as_bytes());
        self.message(
            "page token: own, same filter (control)",
            consents.0,
            Expect::Ok,
            &body,
        )
        .await;
    }

    async fn page_sizes(&mut self, requests: &BTreeMap<&str, Vec<u8>>) {
        for (size, expect) in [
            (0, Expect::Ok),
            (-1, Expect::Invalid),
            (i32::MAX, Expect::Ok),
            (i32::MIN, Expect::Invalid),
        ] {
            let case = format!("page_size {size}");
            let mut consents: ListConsentsRequest = valid(requests, LISTS[0].0);
            consents.page_size = size;
            let mut history: ListPreferenceHistoryRequest = valid(requests, LISTS[1].0);
            history.page_size = size;
            let audit = ListAuditEventsRequest {
                page_size: size,
                ..Default::default()
            };
            let bodies = [
                consents.encode_to_vec(),
                history.encode_to_vec(),
                audit.encode_to_vec(),
            ];
            for ((rpc, _), body) in LISTS.into_iter().zip(bodies) {
                self.message(&case, rpc, expect, &body).await;
            }
        }
    }

    /// Before 1970 is a time like any other; after 9999, before year 1 and
    /// nanos out of range are not timestamps.
    async fn timestamps(&mut self, requests: &BTreeMap<&str, Vec<u8>>) {
        let time = |seconds, nanos| Some(Timestamp { seconds, nanos });
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
        for (case, at, expect) in times {
            let mut consents: ListConsentsRequest = valid(requests, LISTS[0].0);
            consents.filter.as_mut().unwrap().start_time = at;
            // An end before every record is valid and matches nothing.
            let export = ExportConsentsRequest {
                site_id: "shop".into(),
                filter: Some(ConsentFilter {
                    end_time: at,
                    ..Default::default()
                }),
                ..Default::default()
            };
            let mut history: ListPreferenceHistoryRequest = valid(requests, LISTS[1].0);
            history.start_time = at;
            let audit = ListAuditEventsRequest {
                start_time: at,
                ..Default::default()
            };
            let mut calls = vec![
                (LISTS[0].0, consents.encode_to_vec()),
                ("ConsentService/ExportConsents", export.encode_to_vec()),
                (LISTS[1].0, history.encode_to_vec()),
                (LISTS[2].0, audit.encode_to_vec()),
            ];
            // A valid client time is stored: only the invalid ones here.
            if matches!(expect, Expect::Invalid) {
                let mut sent = decision("shop", "visitor");
                sent.client_time = at;
                calls.push((RECORD, sent.encode_to_vec()));
            }
            for (rpc, body) in calls {
                self.message(case, rpc, expect, &body).await;
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
        let rpc = "AdminService/UpdateSiteSettings";
        self.message(
            "duration i64::MAX seconds",
            rpc,
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
        let rpc = "AdminService/UpdateWidgetSettings";
        self.message(
            "duration -1 s",
            rpc,
            Expect::Invalid,
            &negative.encode_to_vec(),
        )
        .await;
    }
}

/// A next page token of the tenant of `key`, and a resume token of
/// another tenant, for the same site and filter.
async fn sealed_tokens(app: &TestApp, key: &str) -> (String, String) {
    let list = ListConsentsRequest::decode(&valid_requests()[LISTS[0].0][..]).unwrap();
    let mut client = app.client(Some(key)).await;
    for _ in 0..2 {
        let mut request = decision("shop", "visitor");
        request.user_id = "user-1".into();
        client.record_consent(request).await.unwrap();
    }
    let first_page = ListConsentsRequest {
        page_size: 1,
        ..list.clone()
    };
    let page = client.list_consents(first_page.clone()).await.unwrap();
    let own = page.into_inner().next_page_token;
    let other = app.key("other", &Scope::ALL).await;
    let mut client = app.client(Some(&other)).await;
    let page = client.list_consents(first_page).await.unwrap();
    (own, page.into_inner().resume_page_token)
}

/// The server's log lines, as `consentd serve` writes them (JSON).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for Logs {
    type Writer = Logs;

    fn make_writer(&self) -> Logs {
        self.clone()
    }
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
    // The test's runtime has one thread, which serves the calls too: its
    // subscriber hears what the handlers and the error mapping log.
    let logs = Logs::default();
    let subscriber = get_subscriber("info", logs.clone(), None).unwrap();
    let _logging = tracing::subscriber::set_default(subscriber);
    let mut quiet = settings();
    // No background worker writes while rows are counted.
    quiet.expiry_interval = Duration::from_secs(3600);
    quiet.retention_interval = Duration::from_secs(3600);
    quiet.log.interval = Duration::from_secs(3600);
    let app = TestApp::spawn_with(&cluster_url(), quiet).await;
    let key = app.key("hostile", &Scope::ALL).await;
    let (own, foreign) = sealed_tokens(&app, &key).await;
    let requests = valid_requests();
    let rpcs = described_rpcs();
    let listed: std::collections::BTreeSet<String> =
        requests.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        listed, rpcs,
        "a valid request of every RPC in the descriptors"
    );

    let mut h = Hostile {
        app: &app,
        key,
        table: Vec::new(),
        failures: Vec::new(),
        rows: Some(rows_by_table(&app, None).await),
    };
    h.broken_frames(&requests[RECORD]).await;
    // tonic decodes the first message of a unary call and leaves the rest
    // unread: one call, served once.
    let twice = [
        frame(false, &requests[RECORD]),
        frame(false, &requests[RECORD]),
    ]
    .concat();
    h.case(
        "two messages for a unary call (one served)",
        RECORD,
        Expect::Ok,
        &[],
        twice.into(),
    )
    .await;
    h.sizes(&requests).await;
    h.in_every_string_field(
        &requests,
        "NUL byte in a string field",
        b"a\0b",
        Expect::Invalid,
    )
    .await;
    let not_utf8 = [b'a', 0xff, 0xfe, b'b'];
    let case = "invalid UTF-8 in a string field";
    h.in_every_string_field(&requests, case, &not_utf8, Expect::Undecodable)
        .await;
    h.page_tokens(&requests, &own, &foreign).await;
    h.page_sizes(&requests).await;
    h.timestamps(&requests).await;

    // From here on, valid calls write: SQL metacharacters are bound
    // values, so either refused by a field's rules or stored as sent.
    h.rows = None;
    let sql_text = b"x'); DROP TABLE consent_records; -- \\ % _ $1 \"";
    let case = "SQL metacharacters in a string field";
    h.in_every_string_field(&requests, case, sql_text, Expect::OkOrInvalid)
        .await;
    let mut old_client = decision("shop", "visitor");
    old_client.client_time = Some(Timestamp {
        seconds: -315_619_200,
        nanos: 0,
    });
    h.message(
        "client_time 1960-01-01",
        RECORD,
        Expect::Ok,
        &old_client.encode_to_vec(),
    )
    .await;
    let rows = rows_by_table(&app, None).await;
    assert!(
        rows["consent_records"] > 0,
        "the table is still there: {rows:?}"
    );

    let mut health = HealthClient::new(app.channel().await);
    let check = HealthCheckRequest {
        service: String::new(),
    };
    let status = health.check(check).await.unwrap().into_inner().status();
    assert_eq!(
        status,
        ServingStatus::Serving,
        "the server is up after every case"
    );

    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_lowercase();
    for word in DATABASE_TEXT {
        if let Some(line) = logged.lines().find(|line| line.contains(word)) {
            h.failures
                .push(format!("database text {word:?} in a log line: {line}"));
        }
    }
    println!(
        "hostile input: {} calls over {} RPCs; {} log lines, none with database text",
        h.table.len(),
        rpcs.len(),
        logged.lines().count()
    );
    println!("{}", summary(&h.table));
    assert!(
        h.failures.is_empty(),
        "{} cases went wrong:\n{}",
        h.failures.len(),
        h.failures.join("\n")
    );
}

/// The valid request of `rpc`, decoded to be changed.
fn valid<M: Message + Default>(requests: &BTreeMap<&str, Vec<u8>>, rpc: &str) -> M {
    M::decode(&requests[rpc][..]).unwrap()
}
