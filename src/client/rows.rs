//! What one exported record becomes: named cells, the same for CSV and
//! NDJSON, plus a consent's categories, which CSV spreads over one column
//! each.

use std::time::SystemTime;

use consentd::api::proto::{
    ConsentAction, ConsentRecord, ConsentStatus, PreferenceAuthorType, PreferenceChangeType,
    PreferenceEvent, Regime,
};
use prost_types::Timestamp;
use serde_json::{Map, Value};

/// One value as a person reads it.
pub enum Cell {
    Text(String),
    Flag(bool),
    /// ISO 8601 in UTC, to the microsecond; empty when absent.
    Time(Option<Timestamp>),
    /// Several values; CSV joins them with "; ".
    List(Vec<String>),
}

/// A record as rows are written.
pub struct Row {
    pub cells: Vec<(&'static str, Cell)>,
    /// A consent's categories, granted (true) or denied, in the record's
    /// order; empty for preference events.
    pub categories: Vec<(String, bool)>,
}

/// CSV and NDJSON spell an enum value as its proto name without the
/// type's prefix, in lower case: "accept_all", "partial", "gdpr".
fn name(proto_name: &str, prefix: &str) -> String {
    proto_name
        .strip_prefix(prefix)
        .unwrap_or(proto_name)
        .to_ascii_lowercase()
}

/// The type's prefix is what its zero value's name has before
/// "UNSPECIFIED": every enum of ours starts with `X_UNSPECIFIED = 0`
/// (buf's STANDARD lint holds the protos to it).
fn enum_cell<E>(value: i32, as_name: fn(&E) -> &'static str) -> Cell
where
    E: TryFrom<i32>,
{
    let zero = E::try_from(0).ok().map(|zero| as_name(&zero));
    let prefix = zero.and_then(|zero| zero.strip_suffix("UNSPECIFIED"));
    Cell::Text(match E::try_from(value) {
        Ok(known) => name(as_name(&known), prefix.unwrap_or_default()),
        Err(_) => value.to_string(),
    })
}

pub fn consent_row(r: ConsentRecord) -> Row {
    let services = r
        .services
        .iter()
        .map(|s| format!("{}/{}={}", s.category, s.service, s.decision_word()))
        .collect();
    let mut cells = vec![
        ("id", Cell::Text(r.id)),
        ("record_time", Cell::Time(r.record_time)),
        ("expire_time", Cell::Time(r.expire_time)),
        ("site_id", Cell::Text(r.site_id)),
        ("subject_id", Cell::Text(r.subject_id)),
        ("user_id", Cell::Text(r.user_id)),
        ("action", enum_cell(r.action, ConsentAction::as_str_name)),
        ("status", enum_cell(r.status, ConsentStatus::as_str_name)),
        ("regime", enum_cell(r.regime, Regime::as_str_name)),
        ("services", Cell::List(services)),
        ("banner_revision", Cell::Text(r.banner_revision)),
        ("notice_version", Cell::Text(r.notice_version)),
        ("notice_sha256", Cell::Text(r.notice_sha256)),
        ("gpc_detected", Cell::Flag(r.gpc_detected)),
        ("gpc_honoured", Cell::Flag(r.gpc_honoured)),
        ("ccpa_opt_out", Cell::Flag(r.ccpa_opt_out)),
        ("country_code", Cell::Text(r.country_code)),
        ("language_code", Cell::Text(r.language_code)),
        ("page_url", Cell::Text(r.page_url)),
        ("device_type", Cell::Text(r.device_type)),
        ("os", Cell::Text(r.os)),
        ("browser", Cell::Text(r.browser)),
        ("anonymized_ip", Cell::Text(r.anonymized_ip)),
        ("client_time", Cell::Time(r.client_time)),
        ("request_id", Cell::Text(r.request_id)),
        ("tcf_string", Cell::Text(r.tcf_string)),
        ("gpp_string", Cell::Text(r.gpp_string)),
        ("google_ac_string", Cell::Text(r.google_ac_string)),
        ("user_agent", Cell::Text(r.user_agent)),
    ];
    if let Some(receipt) = r.receipt {
        cells.push(("receipt", Cell::Text(receipt.token)));
    }
    let granted = r.granted_categories.into_iter().map(|c| (c, true));
    let denied = r.denied_categories.into_iter().map(|c| (c, false));
    Row {
        cells,
        categories: granted.chain(denied).collect(),
    }
}

pub fn event_row(e: PreferenceEvent) -> Row {
    let options = |title: fn(&consentd::api::proto::PreferenceOption) -> &String| {
        Cell::List(e.options.iter().map(|o| title(o).clone()).collect())
    };
    let (ids, titles_en, titles_translated) = (
        options(|o| &o.option_id),
        options(|o| &o.title_en),
        options(|o| &o.title_translated),
    );
    Row {
        cells: vec![
            ("id", Cell::Text(e.id)),
            ("event_time", Cell::Time(e.event_time)),
            ("widget_id", Cell::Text(e.widget_id)),
            ("user_id", Cell::Text(e.user_id)),
            ("topic_id", Cell::Text(e.topic_id)),
            (
                "type",
                enum_cell(e.r#type, PreferenceChangeType::as_str_name),
            ),
            (
                "author_type",
                enum_cell(e.author_type, PreferenceAuthorType::as_str_name),
            ),
            ("author_key_id", Cell::Text(e.author_key_id)),
            ("language_code", Cell::Text(e.language_code)),
            ("topic_title_en", Cell::Text(e.topic_title_en)),
            (
                "topic_title_translated",
                Cell::Text(e.topic_title_translated),
            ),
            ("option_ids", ids),
            ("option_titles_en", titles_en),
            ("option_titles_translated", titles_translated),
        ],
        categories: Vec::new(),
    }
}

fn iso(time: Option<Timestamp>) -> Option<String> {
    let time = SystemTime::try_from(time?).ok()?;
    Some(humantime::format_rfc3339_micros(time).to_string())
}

impl Cell {
    pub fn csv(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            Cell::Flag(flag) => flag.to_string(),
            Cell::Time(time) => iso(*time).unwrap_or_default(),
            Cell::List(values) => values.join("; "),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(text) => Value::String(text.clone()),
            Cell::Flag(flag) => Value::Bool(*flag),
            Cell::Time(time) => iso(*time).map_or(Value::Null, Value::String),
            Cell::List(values) => values.iter().cloned().map(Value::String).collect(),
        }
    }
}

impl Row {
    /// One NDJSON object: every cell, and a consent's categories as the two
    /// lists the record has.
    pub fn json(&self, with_categories: bool) -> Value {
        let mut object: Map<String, Value> = self
            .cells
            .iter()
            .map(|(name, cell)| (name.to_string(), cell.json()))
            .collect();
        if with_categories {
            for (key, granted) in [("granted_categories", true), ("denied_categories", false)] {
                let list = self
                    .categories
                    .iter()
                    .filter(|(_, g)| *g == granted)
                    .map(|(c, _)| Value::String(c.clone()))
                    .collect();
                object.insert(key.into(), Value::Array(list));
            }
        }
        Value::Object(object)
    }
}
