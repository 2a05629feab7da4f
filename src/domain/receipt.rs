//! Signed consent receipts that a third party verifies offline.
//!
//! Records are signed a batch at a time: one Ed25519 signature covers the
//! Merkle tree (RFC 9162, section 2.1) of the claims a writer signs for one
//! tenant in one transaction, and each receipt carries the audit path from
//! its claims to that root. Only records the batch stores are in the tree:
//! the tree is built once the writer knows which records it stores (a
//! request id stored before gets that record's receipt, a repeat within
//! the batch shares the first call's leaf, and a batch that a concurrent
//! one beat to a request id stores nothing and is built again).
//! One signature per batch instead of one per record is what lets the write
//! path keep up under load.
//!
//! A receipt is the token `cr2.KEY_ID.PAYLOAD.PROOF.SIGNATURE`:
//! - `cr2` names this format, version 2;
//! - `KEY_ID` names the Ed25519 key (served by ListSigningKeys);
//! - `PAYLOAD` is base64url (no padding) of the canonical claims: UTF-8 JSON,
//!   no whitespace, the keys in exactly the order of `Claims`, absent
//!   values as `null`, times as integer microseconds since the Unix epoch,
//!   hashes in lower-case hex;
//! - `PROOF` is base64url (no padding) of the leaf index (u16, big-endian),
//!   the tree size (u16, big-endian) and the audit path (32-byte SHA-256
//!   hashes, from the leaf's sibling up). The leaf is SHA-256(0x00 ||
//!   claims), an inner node SHA-256(0x01 || left || right); verification
//!   follows RFC 9162, section 2.1.3.2;
//! - `SIGNATURE` is base64url (no padding) of the Ed25519 signature of the
//!   ASCII bytes `cr2.KEY_ID.SIZE.ROOT`: SIZE in decimal, ROOT the tree root
//!   in base64url (no padding).
//!
//! Version 1 (`cr1.KEY_ID.PAYLOAD.SIGNATURE`, the signature over the ASCII
//! bytes `cr1.KEY_ID.PAYLOAD`) signed each record alone. Records written
//! then keep their cr1 receipts, which still verify.
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

pub use super::merkle::Inclusion;
use super::merkle::{MerkleTree, leaf_hash};

use super::{
    consent::{Action, ConsentRecord, ReceiptSeal, Regime, Status},
    keyring::SigningKeyring,
    time::micros_since_epoch,
};

const SINGLE: &str = "cr1";
const BATCH: &str = "cr2";

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

/// Signs the records one writer commits for one tenant in one batch: one
/// signature over the Merkle root of their claims. Receipts come back in
/// the order of `records`.
pub fn sign_batch(
    keyring: &SigningKeyring,
    tenant_id: Uuid,
    records: &[&ConsentRecord],
) -> Vec<Receipt> {
    let claims = records
        .iter()
        .map(|record| canonical_claims(tenant_id, record))
        .collect();
    sign_claims(keyring, claims)
}

fn sign_claims(keyring: &SigningKeyring, claims: Vec<Vec<u8>>) -> Vec<Receipt> {
    let size = u16::try_from(claims.len()).expect("a batch holds at most 4096 records");
    let tree = MerkleTree::new(claims.iter().map(|c| leaf_hash(c)).collect());
    let (key_id, signature) =
        keyring.sign(root_message(keyring.active_id(), size, &tree.root()).as_bytes());
    claims
        .into_iter()
        .enumerate()
        .map(|(index, claims_json)| {
            let inclusion = Inclusion {
                index: index as u16,
                size,
                path: tree.path(index),
            };
            assemble(key_id, signature, claims_json, Some(inclusion))
        })
        .collect()
}

/// The receipt of a sealed record (none for an unsealed one): its claims
/// are rebuilt from the record, so a stored record needs only its seal.
pub fn receipt(tenant_id: Uuid, record: &ConsentRecord) -> Option<Receipt> {
    let seal = record.seal.as_ref()?;
    Some(assemble(
        &seal.key_id,
        seal.signature,
        canonical_claims(tenant_id, record),
        seal.inclusion.clone(),
    ))
}

fn assemble(
    key_id: &str,
    signature: [u8; 64],
    claims_json: Vec<u8>,
    inclusion: Option<Inclusion>,
) -> Receipt {
    Receipt {
        key_id: key_id.to_string(),
        claims_json,
        signature,
        inclusion,
    }
}

/// What the signature of a batch covers: its size and Merkle root.
fn root_message(key_id: &str, size: u16, root: &[u8; 32]) -> String {
    format!("{BATCH}.{key_id}.{size}.{}", URL_SAFE_NO_PAD.encode(root))
}

/// Checks an Ed25519 signature of `message` by `public_key`.
pub fn verify_signed(
    message: &str,
    signature: &[u8; 64],
    public_key: &[u8; 32],
) -> Result<(), String> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| "not an Ed25519 public key")?;
    key.verify_strict(message.as_bytes(), &Signature::from_bytes(signature))
        .map_err(|_| "the signature does not match".to_string())
}

/// A receipt token taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub key_id: String,
    pub claims_json: Vec<u8>,
    /// Over the claims alone (cr1) or over the batch's root (cr2).
    pub signature: [u8; 64],
    /// For cr2: the way from the claims to the signed root.
    pub inclusion: Option<Inclusion>,
}

impl Receipt {
    pub fn parse(token: &str) -> Result<Self, String> {
        let token = token.trim();
        let parts: Vec<&str> = token.split('.').collect();
        let (key_id, payload, inclusion, signature) = match parts[..] {
            [SINGLE, key_id, payload, signature] => (key_id, payload, None, signature),
            [BATCH, key_id, payload, proof, signature] => {
                let proof = URL_SAFE_NO_PAD
                    .decode(proof)
                    .map_err(|_| "the proof is not base64url")?;
                (
                    key_id,
                    payload,
                    Some(Inclusion::from_bytes(&proof)?),
                    signature,
                )
            }
            [format, ..] if format != SINGLE && format != BATCH => {
                return Err(format!("unknown receipt format {format:?}"));
            }
            _ => return Err("a receipt has four (cr1) or five (cr2) dot-separated parts".into()),
        };
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
            inclusion,
        })
    }

    /// Checks the signature with `public_key`.
    pub fn verify(&self, public_key: &[u8; 32]) -> Result<(), String> {
        verify_signed(&self.signed_message()?, &self.signature, public_key)
    }

    /// What the signature covers: the claims (cr1), or the size and root
    /// of the batch's tree the path leads to (cr2). The receipts of one
    /// batch share it, so a verifier of many checks each signature once.
    pub fn signed_message(&self) -> Result<String, String> {
        Ok(match &self.inclusion {
            None => {
                let payload = URL_SAFE_NO_PAD.encode(&self.claims_json);
                format!("{SINGLE}.{}.{payload}", self.key_id)
            }
            Some(inclusion) => {
                let root = inclusion
                    .root_from(leaf_hash(&self.claims_json))
                    .ok_or("the proof does not fit its tree")?;
                root_message(&self.key_id, inclusion.size, &root)
            }
        })
    }

    /// The receipt as one token. Built when asked for, not when signed:
    /// the writer signs while its batch's callers wait, and encoding is
    /// work the server's workers can do as they answer.
    pub fn token(&self) -> String {
        let (key_id, signature) = (&self.key_id, URL_SAFE_NO_PAD.encode(self.signature));
        let payload = URL_SAFE_NO_PAD.encode(&self.claims_json);
        match &self.inclusion {
            None => format!("{SINGLE}.{key_id}.{payload}.{signature}"),
            Some(inclusion) => format!(
                "{BATCH}.{key_id}.{payload}.{}.{signature}",
                URL_SAFE_NO_PAD.encode(inclusion.to_bytes())
            ),
        }
    }

    /// What a stored record keeps of its receipt: the token is rebuilt from
    /// it and the record's fields.
    pub fn to_seal(&self) -> ReceiptSeal {
        ReceiptSeal {
            key_id: self.key_id.clone(),
            signature: self.signature,
            inclusion: self.inclusion.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keyring::generate_entry;

    fn assert_no_flipped_byte_verifies(token: &str, public: &[u8; 32]) {
        for i in 0..token.len() {
            let mut bytes = token.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            let verdict = Receipt::parse(&tampered).and_then(|r| r.verify(public));
            assert!(verdict.is_err(), "byte {i} changed and still verified");
        }
    }

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
        assert_no_flipped_byte_verifies(&token, &public);
    }

    fn claims(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!(r#"{{"record":{i}}}"#).into_bytes())
            .collect()
    }

    #[test]
    fn every_receipt_of_a_batch_verifies() {
        let keyring = SigningKeyring::parse(&generate_entry("k1")).unwrap();
        let public = keyring.public_keys()[0].public_key;
        for size in 1..=20 {
            let claims = claims(size);
            let receipts = sign_claims(&keyring, claims);
            assert!(
                receipts
                    .iter()
                    .all(|r| r.signature == receipts[0].signature)
            );
            for (i, receipt) in receipts.iter().enumerate() {
                let token = receipt.token();
                let parsed = Receipt::parse(&token).unwrap();
                assert_eq!(&parsed, receipt);
                assert_eq!(parsed.token(), token);
                assert_eq!(parsed.verify(&public), Ok(()), "leaf {i} of {size}");
            }
        }
    }

    #[test]
    fn a_path_proves_only_its_own_leaf() {
        let keyring = SigningKeyring::parse(&generate_entry("k1")).unwrap();
        let public = keyring.public_keys()[0].public_key;
        let receipts = sign_claims(&keyring, claims(7));
        for (i, receipt) in receipts.iter().enumerate() {
            for (j, other) in receipts.iter().enumerate().filter(|(j, _)| *j != i) {
                let mut swapped = receipt.clone();
                swapped.claims_json = other.claims_json.clone();
                assert!(
                    swapped.verify(&public).is_err(),
                    "leaf {j} with the path of {i}"
                );
                let mut moved = receipt.clone();
                moved.inclusion.as_mut().unwrap().index = j as u16;
                assert!(moved.verify(&public).is_err(), "leaf {i} claimed at {j}");
            }
        }
    }

    #[test]
    fn a_flipped_byte_anywhere_in_a_batch_receipt_fails_verification() {
        let keyring = SigningKeyring::parse(&generate_entry("k1")).unwrap();
        let public = keyring.public_keys()[0].public_key;
        let token = sign_claims(&keyring, claims(5))[2].token();
        assert!(token.starts_with("cr2.k1."));
        assert_no_flipped_byte_verifies(&token, &public);
    }
}
