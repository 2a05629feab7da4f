//! The proof of one record as a PDF an auditor reads: what GetConsentProof
//! returns, laid out in lines of an embedded monospace font (DejaVu Sans
//! Mono), with how to check it. Rendered from the response message, so it
//! shows nothing the response does not: the IP only masked, the user agent
//! only where the site logs in detail, never a key.

use std::{sync::Arc, time::SystemTime};

use base64::{Engine, engine::general_purpose::STANDARD};

use krilla::{
    Document,
    geom::Point,
    page::PageSettings,
    text::{Font, TextDirection},
};

use tonic::{Code, Status};
use uuid::Uuid;

use super::{
    ConsentApi,
    proto::{
        ConsentAction, ConsentRecord, ConsentStatus, GetConsentProofResponse,
        GetInclusionProofResponse, Regime,
    },
};
use crate::domain::tlog::{GetInclusionProof, LeafRef};

/// A4 in points.
const PAGE: (f32, f32) = (595.0, 842.0);
const MARGIN: f32 = 48.0;
const FONT_SIZE: f32 = 8.5;
const LINE: f32 = 11.5;
/// A monospace glyph is 0.6 em wide: this many fit between the margins.
const COLUMNS: usize = ((PAGE.0 - 2.0 * MARGIN) / (0.6 * FONT_SIZE)) as usize;

impl ConsentApi {
    /// The record's inclusion proof against the tenant's latest checkpoint;
    /// None while no checkpoint covers it (not sequenced yet, the log off).
    pub(super) async fn logged_inclusion(
        &self,
        tenant_id: Uuid,
        record_id: Uuid,
    ) -> Result<Option<GetInclusionProofResponse>, Status> {
        let get = GetInclusionProof {
            leaf: LeafRef::Record(record_id),
            size: None,
        };
        match self.inclusion(tenant_id, get).await {
            Ok(proof) => Ok(Some(proof)),
            // No leaf or no checkpoint yet, or a leaf past the latest
            // checkpoint: the request itself is ours and valid.
            Err(status) if matches!(status.code(), Code::NotFound | Code::InvalidArgument) => {
                Ok(None)
            }
            Err(status) => Err(status),
        }
    }
}

pub fn render(
    proof: &GetConsentProofResponse,
    inclusion: Option<&GetInclusionProofResponse>,
) -> Result<Vec<u8>, String> {
    let mut lines = Vec::new();
    let blank = ConsentRecord::default();
    let record = proof.record.as_ref().unwrap_or(&blank);
    lines.push("PROOF OF CONSENT".to_string());
    lines.push(String::new());
    section(&mut lines, "The record", &record_fields(record));
    let notice_on_file = if proof.notice_on_file {
        "yes (GetNotice returns the text)"
    } else {
        "no"
    };
    section(
        &mut lines,
        "The notice shown",
        &[
            ("version", record.notice_version.clone()),
            ("SHA-256", proof.notice_sha256.clone()),
            ("text on file", notice_on_file.into()),
        ],
    );
    let receipt = record.receipt.clone().unwrap_or_default();
    section(
        &mut lines,
        "The signed receipt",
        &[
            ("signing key id", receipt.key_id.clone()),
            ("token", receipt.token.clone()),
            ("signed claims", receipt.claims_json.clone()),
        ],
    );
    inclusion_section(&mut lines, inclusion);
    lines.push("How to verify".into());
    for step in [
        "1. Save the token above, exactly, to receipt.txt.",
        "2. Fetch the public key of the signing key id from ListSigningKeys (consent.v1) \
         and save it, base64, to key.pub.",
        "3. Run: consentd verify receipt.txt --public-key key.pub. It exits 0 when the \
         signature holds and prints the signed claims.",
        "4. Check that the claims match the record above: record_id, site_id, subject_id, \
         the decision and the times (microseconds since 1970-01-01 UTC).",
        "5. Where the notice text is on file, GetNotice returns it: its SHA-256 must be \
         the hash above.",
        "6. Where the log holds the record: save the inclusion proof as the section above \
         fetches it to proof.json and run the consentd verify --inclusion command it \
         gives. It exits 0 when the checkpoint's signature holds, the record's claims and \
         salt make the leaf, the audit path leads from the leaf to the root above, and \
         the receipt's claims are the leaf's.",
        "Without consentd: the README's section \"Verify without consentd\" gives every \
         format (the receipt, the claims, the leaf, the checkpoint note) and the RFC 9162 \
         steps.",
    ] {
        wrap(&mut lines, step, "   ");
    }
    lines.push(String::new());
    lines.push(format!(
        "Generated {} by consentd {}.",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        env!("CARGO_PKG_VERSION")
    ));
    typeset(&lines)
}

/// The inclusion proof against the latest checkpoint, or why there is none.
fn inclusion_section(lines: &mut Vec<String>, inclusion: Option<&GetInclusionProofResponse>) {
    let heading = "Inclusion in the tenant's log";
    let Some(proof) = inclusion else {
        let pending = "Not in the log yet: no signed checkpoint covers this record (the log \
                       gives committed records their leaves within seconds, when the \
                       service keeps it). The receipt above is signed over the Merkle tree \
                       of the record's committed batch.";
        return section(lines, heading, &[("inclusion proof", pending.into())]);
    };
    let note = proof
        .checkpoint
        .as_ref()
        .map(|checkpoint| checkpoint.note.as_str())
        .unwrap_or_default();
    let root = proof
        .checkpoint
        .as_ref()
        .map(|checkpoint| STANDARD.encode(&checkpoint.root_hash))
        .unwrap_or_default();
    section(
        lines,
        heading,
        &[
            ("leaf index", proof.leaf_index.to_string()),
            ("tree size", proof.tree_size.to_string()),
            ("root hash", root),
            ("leaf hash", STANDARD.encode(&proof.leaf_hash)),
            ("leaf salt", STANDARD.encode(&proof.salt)),
        ],
    );
    // Under the same heading: the last line `section` ends with is blank.
    lines.pop();
    lines.push("  audit path (RFC 9162 2.1.3, from the leaf's sibling up):".into());
    for (i, hash) in proof.hashes.iter().enumerate() {
        lines.push(format!("    {i}: {}", STANDARD.encode(hash)));
    }
    lines.push("  checkpoint (a C2SP signed note):".into());
    for line in note.lines() {
        wrap(lines, line, "    ");
    }
    lines.push(String::new());
    lines.push("  to fetch the proof again and verify it:".into());
    for command in [
        format!(
            "grpcurl -H \"x-api-key: $KEY\" -d '{{\"record_id\":\"{}\",\"tree_size\":\"{}\"}}' \
             HOST:50051 consent.v1.ConsentService/GetInclusionProof > proof.json",
            proof.record_id, proof.tree_size
        ),
        "consentd verify --inclusion proof.json --public-key key.pub receipt.txt".into(),
    ] {
        wrap(lines, &command, "    ");
    }
    lines.push(String::new());
}

fn iso(time: Option<prost_types::Timestamp>) -> String {
    time.and_then(|t| SystemTime::try_from(t).ok())
        .map(|t| humantime::format_rfc3339_micros(t).to_string())
        .unwrap_or_default()
}

fn record_fields(r: &ConsentRecord) -> Vec<(&'static str, String)> {
    let services = r
        .services
        .iter()
        .map(|s| format!("{}/{} {}", s.category, s.service, s.decision_word()))
        .collect::<Vec<_>>()
        .join(", ");
    // "CONSENT_ACTION_ACCEPT_ALL" reads "accept all".
    let name = |value: Option<&'static str>, prefix: &str| {
        value.map_or("unknown".into(), |n| {
            n.trim_start_matches(prefix)
                .to_lowercase()
                .replace('_', " ")
        })
    };
    let action = ConsentAction::try_from(r.action)
        .ok()
        .map(|a| a.as_str_name());
    let status = ConsentStatus::try_from(r.status)
        .ok()
        .map(|s| s.as_str_name());
    let regime = Regime::try_from(r.regime).ok().map(|g| g.as_str_name());
    vec![
        ("record id", r.id.clone()),
        ("site", r.site_id.clone()),
        ("subject id", r.subject_id.clone()),
        ("user id", r.user_id.clone()),
        ("action", name(action, "CONSENT_ACTION_")),
        ("status", name(status, "CONSENT_STATUS_")),
        ("categories granted", r.granted_categories.join(", ")),
        ("categories denied", r.denied_categories.join(", ")),
        ("services", services),
        ("regime", name(regime, "REGIME_")),
        ("banner revision", r.banner_revision.clone()),
        ("GPC detected", r.gpc_detected.to_string()),
        ("GPC honoured", r.gpc_honoured.to_string()),
        ("CCPA opt-out", r.ccpa_opt_out.to_string()),
        ("TCF string", r.tcf_string.clone()),
        ("GPP string", r.gpp_string.clone()),
        ("Google AC string", r.google_ac_string.clone()),
        ("country", r.country_code.clone()),
        ("language", r.language_code.clone()),
        ("page URL", r.page_url.clone()),
        ("IP address (masked)", r.anonymized_ip.clone()),
        ("device", r.device_type.clone()),
        ("operating system", r.os.clone()),
        ("browser", r.browser.clone()),
        // Stored only where the site logs in detail.
        ("user agent", r.user_agent.clone()),
        ("client time", iso(r.client_time)),
        ("record time", iso(r.record_time)),
        ("expire time", iso(r.expire_time)),
    ]
}

/// A heading, then `label: value` lines; empty values read "(none)".
fn section(lines: &mut Vec<String>, heading: &str, fields: &[(&str, String)]) {
    lines.push(heading.to_string());
    for (label, value) in fields {
        let value = if value.is_empty() { "(none)" } else { value };
        let head = format!("  {label}: ");
        // Long values (tokens, claims) go on lines of their own.
        if head.len() + value.len() <= COLUMNS {
            lines.push(format!("{head}{value}"));
        } else {
            lines.push(head.trim_end().to_string());
            wrap(lines, value, "    ");
        }
    }
    lines.push(String::new());
}

/// Breaks `text` into lines of at most COLUMNS characters, at spaces where
/// it has some, else anywhere (tokens have none).
fn wrap(lines: &mut Vec<String>, text: &str, indent: &str) {
    let width = COLUMNS - indent.len();
    let mut current = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        if !current.is_empty() && current.chars().count() + 1 + word.len() > width {
            lines.push(format!("{indent}{current}"));
            current.clear();
        }
        while current.is_empty() && word.len() > width {
            lines.push(format!(
                "{indent}{}",
                word[..width].iter().collect::<String>()
            ));
            word.drain(..width);
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.extend(word);
    }
    if !current.is_empty() {
        lines.push(format!("{indent}{current}"));
    }
}

/// Lays the lines out on as many pages as they need.
fn typeset(lines: &[String]) -> Result<Vec<u8>, String> {
    let data: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(dejavu::sans_mono::regular());
    let font = Font::new(data.into(), 0).ok_or("the embedded font does not load")?;
    let per_page = ((PAGE.1 - 2.0 * MARGIN) / LINE) as usize;
    let mut document = Document::new();
    for page_lines in lines.chunks(per_page) {
        let settings = PageSettings::from_wh(PAGE.0, PAGE.1).ok_or("bad page size")?;
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        for (i, line) in page_lines.iter().enumerate() {
            if line.is_empty() {
                continue;
            }
            let y = MARGIN + (i as f32 + 1.0) * LINE;
            surface.draw_text(
                Point::from_xy(MARGIN, y),
                font.clone(),
                FONT_SIZE,
                line,
                false,
                TextDirection::Auto,
            );
        }
        surface.finish();
        page.finish();
    }
    document
        .finish()
        .map_err(|error| format!("cannot render the proof: {error:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_words_and_sentences_wrap_within_the_columns() {
        let mut lines = Vec::new();
        let token = "x".repeat(COLUMNS * 2 + 5);
        wrap(&mut lines, &format!("a few words {token} end"), "  ");
        assert!(lines.iter().all(|l| l.chars().count() <= COLUMNS));
        assert_eq!(
            lines.concat().replace([' '], ""),
            format!("afewwords{token}end")
        );
    }

    #[test]
    fn a_proof_renders_as_a_pdf() {
        let pdf = render(&GetConsentProofResponse::default(), None).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
    }
}
