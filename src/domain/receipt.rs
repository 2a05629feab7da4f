//! Signed consent receipts that a third party verifies offline.
//!
//! A receipt is the token `cr1.KEY_ID.PAYLOAD.SIGNATURE`:
//! - `cr1` names this format, version 1;
//! - `KEY_ID` names the Ed25519 key (served by ListSigningKeys);
//! - `PAYLOAD` is base64url (no padding) of the canonical claims: UTF-8 JSON,
//!   no whitespace, the keys in exactly the order of [`Claims`], absent
//!   values as `null`, times as integer microseconds since the Unix epoch,
//!   hashes in lower-case hex;
//! - `SIGNATURE` is base64url of the Ed25519 signature of the ASCII bytes
//!   `cr1.KEY_ID.PAYLOAD`, so version and key id are signed too.
//!
//! Mapping to Kantara Consent Receipt v1.1 / ISO/IEC TS 27560: `record_id`
//! is the receipt id (consentReceiptID), `record_time_us` the consent
//! timestamp, `tenant_id` and `site_id` the controller and the service,
//! `subject_id` the PII principal id (a pseudonymous consent id),
//! `granted_categories`/`denied_categories`/`services` the purposes and
//! their processing, `notice_version`/`notice_sha256` the notice (policy
//! URL / privacy notice), `regime` the jurisdiction, `expire_time_us` the
//! termination, `country_code`/`language_code` the collection context, and
//! `key_id` with the signature the receipt's proof.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;
use uuid::Uuid;

use super::{
    consent::{Action, ConsentRecord, ReceiptSeal, Regime, Status},
    keyring::SigningKeyring,
    page::micros_since_epoch,
};

const FORMAT: &str = "cr1";

/// The signed fields, in canonical order.
#[derive(Serialize)]
struct Claims<'a> {
    receipt_version: u32,
    receipt_type: &'static str,
    record_id: String,
    tenant_id: String,
    site_id: &'a str,
    subject_id: &'a str,
    action: &'static str,
    status: &'static str,
    granted_categories: Vec<&'a str>,
    denied_categories: Vec<&'a str>,
    services: Vec<ServiceClaim<'a>>,
    banner_revision: Option<&'a str>,
    notice_version: Option<&'a str>,
    notice_sha256: Option<String>,
    regime: &'static str,
    gpc_detected: bool,
    gpc_honoured: bool,
    ccpa_opt_out: bool,
    tcf_string: Option<&'a str>,
    gpp_string: Option<&'a str>,
    google_ac_string: Option<&'a str>,
    country_code: Option<&'a str>,
    language_code: Option<&'a str>,
    anonymized_ip: Option<String>,
    client_time_us: Option<i64>,
    record_time_us: i64,
    expire_time_us: i64,
}

#[derive(Serialize)]
struct ServiceClaim<'a> {
    category: &'a str,
    service: &'a str,
    granted: bool,
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::AcceptAll => "ACCEPT_ALL",
        Action::RejectAll => "REJECT_ALL",
        Action::Custom => "CUSTOM",
    }
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Accepted => "ACCEPTED",
        Status::Partial => "PARTIAL",
        Status::Rejected => "REJECTED",
    }
}

fn regime_name(regime: Regime) -> &'static str {
    match regime {
        Regime::Gdpr => "GDPR",
        Regime::Ccpa => "CCPA",
        Regime::IabTcf => "IAB_TCF",
        Regime::Basic => "BASIC",
    }
}

/// The canonical claims of a record, as signed.
pub fn canonical_claims(tenant_id: Uuid, record: &ConsentRecord) -> Vec<u8> {
    let d = &record.decision;
    fn text(value: &Option<String>) -> Option<&str> {
        value.as_deref()
    }
    // Sorted, so the claims do not depend on the order the store keeps
    // services in.
    let mut services: Vec<ServiceClaim> = d
        .choices
        .services()
        .iter()
        .map(|s| ServiceClaim {
            category: s.category.as_ref(),
            service: s.service.as_ref(),
            granted: s.granted,
        })
        .collect();
    services.sort_by_key(|s| (s.category, s.service));
    let claims = Claims {
        receipt_version: 1,
        receipt_type: "consentd.consent_receipt",
        record_id: record.id.to_string(),
        tenant_id: tenant_id.to_string(),
        site_id: d.site_id.as_ref(),
        subject_id: d.subject_id.as_ref(),
        action: action_name(d.action),
        status: status_name(record.status),
        granted_categories: d.choices.granted().iter().map(AsRef::as_ref).collect(),
        denied_categories: d.choices.denied().iter().map(AsRef::as_ref).collect(),
        services,
        banner_revision: text(&d.banner_revision),
        notice_version: text(&d.notice_version),
        notice_sha256: d.notice_sha256.map(|hash| hash.to_hex()),
        regime: regime_name(d.regime),
        gpc_detected: d.gpc_detected,
        gpc_honoured: d.gpc_honoured,
        ccpa_opt_out: d.ccpa_opt_out,
        tcf_string: text(&d.tcf_string),
        gpp_string: text(&d.gpp_string),
        google_ac_string: text(&d.google_ac_string),
        country_code: d.country.as_ref().map(AsRef::as_ref),
        language_code: d.language.as_ref().map(AsRef::as_ref),
        anonymized_ip: d.anonymized_ip.map(|ip| ip.to_string()),
        client_time_us: d.client_time.map(micros_since_epoch),
        record_time_us: micros_since_epoch(record.record_time),
        expire_time_us: micros_since_epoch(record.expire_time),
    };
    serde_json::to_vec(&claims).expect("claims serialize")
}

fn signing_input(key_id: &str, claims_json: &[u8]) -> String {
    format!("{FORMAT}.{key_id}.{}", URL_SAFE_NO_PAD.encode(claims_json))
}

/// Signs a record's claims with the active key: the receipt to hand out
/// now, and its seal to store.
pub fn sign(keyring: &SigningKeyring, tenant_id: Uuid, record: &ConsentRecord) -> Receipt {
    let claims_json = canonical_claims(tenant_id, record);
    let input = signing_input(keyring.active_id(), &claims_json);
    let (key_id, signature) = keyring.sign(input.as_bytes());
    assemble(key_id, signature, input, claims_json)
}

/// The receipt of a sealed record: its claims are rebuilt from the record,
/// so a stored record needs only its seal.
pub fn receipt(seal: &ReceiptSeal, tenant_id: Uuid, record: &ConsentRecord) -> Receipt {
    let claims_json = canonical_claims(tenant_id, record);
    let input = signing_input(&seal.key_id, &claims_json);
    assemble(&seal.key_id, seal.signature, input, claims_json)
}

fn assemble(
    key_id: &str,
    signature: [u8; 64],
    signing_input: String,
    claims_json: Vec<u8>,
) -> Receipt {
    Receipt {
        key_id: key_id.to_string(),
        signature,
        signing_input_len: signing_input.len(),
        token: format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)),
        claims_json,
    }
}

/// A receipt token taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub key_id: String,
    pub claims_json: Vec<u8>,
    pub signature: [u8; 64],
    signing_input_len: usize,
    token: String,
}

impl Receipt {
    pub fn parse(token: &str) -> Result<Self, String> {
        let token = token.trim();
        let parts: Vec<&str> = token.split('.').collect();
        let [format, key_id, payload, signature] = parts[..] else {
            return Err("a receipt has four dot-separated parts".into());
        };
        if format != FORMAT {
            return Err(format!("unknown receipt format {format:?}"));
        }
        let claims_json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| "the payload is not base64url")?;
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or("the signature is not 64 bytes of base64url")?;
        Ok(Self {
            key_id: key_id.to_string(),
            claims_json,
            signature,
            signing_input_len: token.len() - token.rsplit('.').next().map_or(0, str::len) - 1,
            token: token.to_string(),
        })
    }

    /// Checks the signature with `public_key`.
    pub fn verify(&self, public_key: &[u8; 32]) -> Result<(), String> {
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| "not an Ed25519 public key")?;
        key.verify_strict(
            &self.token.as_bytes()[..self.signing_input_len],
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| "the signature does not match".to_string())
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// What a stored record keeps of its receipt.
    pub fn seal(&self) -> ReceiptSeal {
        ReceiptSeal {
            key_id: self.key_id.clone(),
            signature: self.signature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keyring::generate_entry;

    #[test]
    fn a_flipped_byte_anywhere_fails_verification() {
        let keyring = SigningKeyring::parse(&generate_entry("k1")).unwrap();
        let public = keyring.public_keys()[0].public_key;
        let payload = URL_SAFE_NO_PAD.encode(br#"{"receipt_version":1}"#);
        let input = format!("cr1.k1.{payload}");
        let token = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(keyring.sign(input.as_bytes()).1)
        );
        assert_eq!(Receipt::parse(&token).unwrap().verify(&public), Ok(()));
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            let verdict = Receipt::parse(&tampered).and_then(|r| r.verify(&public));
            assert!(verdict.is_err(), "byte {i} changed and still verified");
        }
    }
}
