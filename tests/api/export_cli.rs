//! `consentd export` and `consentd export-preferences` against a running
//! consentd: the files parse back to what the gRPC export streams, and an
//! interrupted export resumed holds every record exactly once.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Output,
    time::{Duration, Instant, SystemTime},
};

use consentd::api::proto::{
    ConsentRecord, ExportPreferenceHistoryRequest, PreferenceChange, PreferenceChangeType,
    PreferenceEvent, PreferenceOption, UpdatePreferencesRequest,
};
use prost_types::Timestamp;
use serde_json::{Value, json};

use crate::helpers::{TestApp, copy_record, decision, recorded, shop_export, streamed};

const RECORDS: i64 = 100_000;

/// Runs the binary off the runtime's thread: the server under test runs on
/// that thread.
pub async fn consentd(app: &TestApp, key: &str, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (addr, key) = (format!("http://{}", app.addr), key.to_string());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_consentd"))
            .args(&args)
            .env("CONSENTD_ADDR", addr)
            .env("CONSENTD_KEY", key)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn succeeded(output: &Output) {
    let stdout = crate::cli::stdout(output);
    assert!(stdout.is_empty(), "quiet when not a terminal");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("consentd-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

fn iso(time: Option<Timestamp>) -> Value {
    time.map_or(Value::Null, |t| {
        let time = SystemTime::try_from(t).unwrap();
        Value::String(humantime::format_rfc3339_micros(time).to_string())
    })
}

/// A record as the export documents it, from the gRPC message.
fn expected_record(r: &ConsentRecord) -> Value {
    let services: Vec<String> = r
        .services
        .iter()
        .map(|s| {
            let decision = if s.granted { "granted" } else { "denied" };
            format!("{}/{}={decision}", s.category, s.service)
        })
        .collect();
    let lower = |name: &str, prefix: &str| name.strip_prefix(prefix).unwrap().to_lowercase();
    json!({
        "id": r.id, "record_time": iso(r.record_time), "expire_time": iso(r.expire_time),
        "site_id": r.site_id, "subject_id": r.subject_id, "user_id": r.user_id,
        "action": lower(r.action().as_str_name(), "CONSENT_ACTION_"),
        "status": lower(r.status().as_str_name(), "CONSENT_STATUS_"),
        "regime": lower(r.regime().as_str_name(), "REGIME_"),
        "services": services, "banner_revision": r.banner_revision,
        "notice_version": r.notice_version, "notice_sha256": r.notice_sha256,
        "gpc_detected": r.gpc_detected, "gpc_honoured": r.gpc_honoured,
        "ccpa_opt_out": r.ccpa_opt_out, "country_code": r.country_code,
        "language_code": r.language_code, "page_url": r.page_url,
        "device_type": r.device_type, "os": r.os, "browser": r.browser,
        "anonymized_ip": r.anonymized_ip, "client_time": iso(r.client_time),
        "request_id": r.request_id, "tcf_string": r.tcf_string, "gpp_string": r.gpp_string,
        "google_ac_string": r.google_ac_string, "user_agent": r.user_agent,
        "granted_categories": r.granted_categories, "denied_categories": r.denied_categories,
    })
}

/// The CSV row of an expected NDJSON object: lists joined with "; ",
/// absent times empty, and each category of `categories` a column.
fn expected_csv(object: &Value, categories: &[String]) -> BTreeMap<String, String> {
    let mut row = BTreeMap::new();
    for (key, value) in object.as_object().unwrap() {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("; "),
            other => panic!("unexpected {other}"),
        };
        if !key.ends_with("_categories") {
            row.insert(key.clone(), text);
        }
    }
    let listed = |key: &str, category: &str| {
        object.get(key).is_some_and(|list| {
            list.as_array()
                .unwrap()
                .iter()
                .any(|c| c.as_str() == Some(category))
        })
    };
    for category in categories {
        let cell = if listed("granted_categories", category) {
            "granted"
        } else if listed("denied_categories", category) {
            "denied"
        } else {
            ""
        };
        row.insert(format!("category:{category}"), cell.into());
    }
    row
}

fn read_ndjson(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The header and the rows, each as column -> cell.
fn read_csv(path: &Path) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            assert_eq!(record.len(), header.len(), "every row has every column");
            header
                .iter()
                .cloned()
                .zip(record.iter().map(String::from))
                .collect()
        })
        .collect();
    (header, rows)
}

async fn grpc_export(app: &TestApp, key: &str) -> Vec<ConsentRecord> {
    let mut client = app.client(Some(key)).await;
    crate::round_trip::export_all(&mut client, shop_export()).await
}

fn category_columns(header: &[String]) -> Vec<String> {
    header
        .iter()
        .filter_map(|h| h.strip_prefix("category:").map(String::from))
        .collect()
}

#[tokio::test]
async fn cli_exports_of_100000_records_parse_back_and_resume_exactly_once() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    let mut client = app.client(Some(&key)).await;
    let template = recorded(&mut client, decision("shop", "template")).await;
    copy_record(&app.sql().await, &template.id, RECORDS - 3).await;
    // Categories first seen at the end still get a column on every row.
    tokio::time::sleep(Duration::from_millis(5)).await;
    for (granted, denied) in [("ads", "video"), ("video", "chat")] {
        let mut late = decision("shop", "late");
        late.granted_categories.push(granted.into());
        late.denied_categories.push(denied.into());
        recorded(&mut client, late).await;
    }
    let streamed = grpc_export(&app, &key).await;
    assert_eq!(streamed.len() as i64, RECORDS);
    let expected: Vec<Value> = streamed.iter().map(expected_record).collect();

    let ndjson = scratch("consents.ndjson");
    let started = Instant::now();
    succeeded(
        &consentd(
            &app,
            &key,
            &[
                "export",
                "--site",
                "shop",
                "--format",
                "ndjson",
                "--out",
                ndjson.to_str().unwrap(),
            ],
        )
        .await,
    );
    let elapsed = started.elapsed();
    eprintln!(
        "consentd export --format ndjson: {RECORDS} records in {:.2} s, {:.0} records/s",
        elapsed.as_secs_f64(),
        RECORDS as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(read_ndjson(&ndjson), expected);
    assert!(!beside(&ndjson, ".resume").exists() && !beside(&ndjson, ".part").exists());

    // CSV, interrupted mid-chunk as a kill would leave it, then resumed.
    // (Each export of 100,000 records takes seconds in a debug build, so
    // the resumed file is the one checked against the gRPC export.)
    let resumed = scratch("resumed.csv");
    let out = resumed.to_str().unwrap();
    let stopped = consentd(
        &app,
        &key,
        &[
            "export",
            "--site",
            "shop",
            "--out",
            out,
            "--stop-after",
            "45500",
        ],
    )
    .await;
    assert!(!stopped.status.success());
    assert!(!resumed.exists(), "no FILE until the export is complete");
    assert!(beside(&resumed, ".resume").exists());
    let again = consentd(&app, &key, &["export", "--site", "shop", "--out", out]).await;
    assert!(
        !again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--resume"),
        "an interrupted export is not overwritten without --resume"
    );
    let resume = ["export", "--site", "shop", "--out", out, "--resume"];
    let changed = consentd(
        &app,
        &key,
        &[
            "export", "--site", "shop", "--out", out, "--resume", "--format", "ndjson",
        ],
    )
    .await;
    assert!(
        !changed.status.success(),
        "a resume with another format is refused"
    );
    succeeded(&consentd(&app, &key, &resume).await);
    let (header, rows) = read_csv(&resumed);
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
    let streamed_ids: Vec<&str> = streamed.iter().map(|r| r.id.as_str()).collect();
    assert!(ids == streamed_ids, "every record exactly once, in order");
    let categories = category_columns(&header);
    assert_eq!(
        categories,
        [
            "ads",
            "analytics",
            "chat",
            "marketing",
            "necessary",
            "video"
        ]
    );
    let expected_rows: Vec<_> = expected
        .iter()
        .map(|e| expected_csv(e, &categories))
        .collect();
    assert!(
        rows == expected_rows,
        "CSV rows differ from the gRPC export"
    );
    assert_eq!(rows[0]["category:analytics"], "granted");
    assert_eq!(rows[0]["category:marketing"], "denied");
    assert_eq!(rows[0]["category:ads"], "");
    // Resuming a complete export does nothing.
    succeeded(&consentd(&app, &key, &resume).await);
    assert_eq!(read_csv(&resumed).1.len() as i64, RECORDS);
}

fn expected_event(e: &PreferenceEvent) -> Value {
    let options = |f: fn(&PreferenceOption) -> &String| -> Vec<String> {
        e.options.iter().map(|o| f(o).clone()).collect()
    };
    let lower = |name: &str, prefix: &str| name.strip_prefix(prefix).unwrap().to_lowercase();
    json!({
        "id": e.id, "event_time": iso(e.event_time), "widget_id": e.widget_id,
        "user_id": e.user_id, "topic_id": e.topic_id,
        "type": lower(e.r#type().as_str_name(), "PREFERENCE_CHANGE_TYPE_"),
        "author_type": lower(e.author_type().as_str_name(), "PREFERENCE_AUTHOR_TYPE_"),
        "author_key_id": e.author_key_id, "language_code": e.language_code,
        "topic_title_en": e.topic_title_en, "topic_title_translated": e.topic_title_translated,
        "option_ids": options(|o| &o.option_id), "option_titles_en": options(|o| &o.title_en),
        "option_titles_translated": options(|o| &o.title_translated),
    })
}

#[tokio::test]
async fn cli_exports_preference_history_as_the_grpc_export_streams_it() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    let mut client = app.preference_client(Some(&key)).await;
    let change = |kind: PreferenceChangeType, options: &[&str]| PreferenceChange {
        r#type: kind.into(),
        topic_id: "news".into(),
        topic_title_en: "News, weekly".into(),
        topic_title_translated: "Nachrichten".into(),
        options: options
            .iter()
            .map(|id| PreferenceOption {
                option_id: id.to_string(),
                title_en: format!("{id}, \"quoted\""),
                title_translated: format!("{id} (de)"),
            })
            .collect(),
    };
    for user in ["u1", "u2", "u3"] {
        for changes in [
            vec![change(PreferenceChangeType::Added, &["daily", "weekly"])],
            vec![change(PreferenceChangeType::Removed, &["daily"])],
        ] {
            client
                .update_preferences(UpdatePreferencesRequest {
                    widget_id: "centre".into(),
                    user_id: user.into(),
                    language_code: "de".into(),
                    changes,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }
    let messages = streamed(
        client.export_preference_history(ExportPreferenceHistoryRequest {
            widget_id: "centre".into(),
            ..Default::default()
        }),
    )
    .await;
    let expected: Vec<Value> = messages
        .iter()
        .flat_map(|m| m.events.iter().map(expected_event))
        .collect();
    assert_eq!(expected.len(), 6);

    let ndjson = scratch("history.ndjson");
    let args = ["export-preferences", "--widget", "centre", "--out"];
    succeeded(
        &consentd(
            &app,
            &key,
            &[&args[..], &[ndjson.to_str().unwrap(), "--format", "ndjson"]].concat(),
        )
        .await,
    );
    assert_eq!(read_ndjson(&ndjson), expected);

    let csv = scratch("history.csv");
    succeeded(&consentd(&app, &key, &[&args[..], &[csv.to_str().unwrap()]].concat()).await);
    let (header, rows) = read_csv(&csv);
    assert!(category_columns(&header).is_empty());
    let expected_rows: Vec<_> = expected.iter().map(|e| expected_csv(e, &[])).collect();
    assert_eq!(rows, expected_rows);
    assert_eq!(
        rows[0]["option_titles_en"],
        "daily, \"quoted\"; weekly, \"quoted\""
    );
}
