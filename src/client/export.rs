//! `consentd export` and `consentd export-preferences`: a running consentd's
//! export stream, written to a CSV or NDJSON file for people.
//!
//! Rows go to `FILE.part`; after each chunk the file is synced and
//! `FILE.resume` records its length, the chunk's resume token and the
//! categories seen, so `--resume` cuts off a half-written chunk and asks
//! the server to continue after the last whole one: every record lands
//! exactly once. `FILE` appears only when the export is complete (a CSV
//! gets its header then, once every category column is known).

use std::{path::PathBuf, time::SystemTime};

use clap::{Args, ValueEnum};
use consentd::api::proto::{
    ConsentFilter, ConsentView, ExportConsentsRequest, ExportPreferenceHistoryRequest,
    consent_service_client::ConsentServiceClient,
    preference_service_client::PreferenceServiceClient,
};
use serde::{Deserialize, Serialize};

use super::{
    Server,
    rows::{consent_row, event_row},
    sink::Sink,
};

/// Export messages may carry 1000 records with receipts.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// `consentd export`: a site's consent records.
#[derive(Args)]
pub struct ConsentExport {
    /// The site whose records to export.
    #[arg(long)]
    site: String,
    /// Adds each record's signed receipt token (a `receipt` column).
    #[arg(long)]
    receipts: bool,
    #[command(flatten)]
    common: Common,
}

/// `consentd export-preferences`: a widget's preference history.
#[derive(Args)]
pub struct PreferenceExport {
    /// The widget whose history to export.
    #[arg(long)]
    widget: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct Common {
    #[command(flatten)]
    pub(super) server: Server,
    /// From this instant on (RFC 3339, e.g. 2026-03-01T00:00:00Z, or a
    /// date, meaning its midnight UTC).
    #[arg(long, value_parser = instant)]
    pub(super) from: Option<SystemTime>,
    /// Before this instant (same forms as --from).
    #[arg(long, value_parser = instant)]
    pub(super) to: Option<SystemTime>,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub(super) format: Format,
    /// The file to write; FILE.part and FILE.resume sit beside it until
    /// the export is complete.
    #[arg(long)]
    pub(super) out: PathBuf,
    /// Continues the interrupted export of FILE (same site and times).
    #[arg(long)]
    pub(super) resume: bool,
    /// Tests only: stops after this many records, as if killed.
    #[arg(long, hide = true)]
    pub(super) stop_after: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One row per record; each category a column, granted or denied.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

fn instant(text: &str) -> Result<SystemTime, String> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .map_err(|e| format!("{e}; expected e.g. 2026-03-01T00:00:00Z"))
}

pub async fn consents(export: ConsentExport) -> Result<(), String> {
    let c = &export.common;
    let Some(sink) = Sink::open(c, "consents", export.receipts)? else {
        return Ok(());
    };
    let request = ExportConsentsRequest {
        site_id: export.site.clone(),
        filter: Some(ConsentFilter {
            start_time: c.from.map(Into::into),
            end_time: c.to.map(Into::into),
            ..Default::default()
        }),
        view: if export.receipts {
            ConsentView::Full
        } else {
            ConsentView::Basic
        }
        .into(),
        page_token: sink.saved.token.clone(),
    };
    let mut client = ConsentServiceClient::new(c.server.connect().await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let call = client.export_consents(c.server.request(request)?).await;
    sink.drain(call, |m| {
        (
            m.records.into_iter().map(consent_row).collect(),
            m.resume_page_token,
        )
    })
    .await
}

pub async fn preferences(export: PreferenceExport) -> Result<(), String> {
    let c = &export.common;
    let Some(sink) = Sink::open(c, "preferences", false)? else {
        return Ok(());
    };
    let request = ExportPreferenceHistoryRequest {
        widget_id: export.widget.clone(),
        start_time: c.from.map(Into::into),
        end_time: c.to.map(Into::into),
        page_token: sink.saved.token.clone(),
    };
    let mut client = PreferenceServiceClient::new(c.server.connect().await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let call = client
        .export_preference_history(c.server.request(request)?)
        .await;
    sink.drain(call, |m| {
        (
            m.events.into_iter().map(event_row).collect(),
            m.resume_page_token,
        )
    })
    .await
}
