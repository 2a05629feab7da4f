//! Named 32-byte keys for rotation: receipt signing keys (Ed25519) and IP
//! data keys (AES-256-GCM). A keyring is written `ID=BASE64,ID=BASE64`, oldest
//! first; the last key is the active one, the others still verify or
//! decrypt what they made. Rotate by appending a key; drop a key only when
//! nothing made with it needs checking any more.

use std::{fmt, net::IpAddr};

use aes_gcm::{
    Aes256Gcm, KeyInit,
    aead::{Aead, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// Parses `ID=BASE64` entries separated by commas or newlines.
fn parse_entries(spec: &str) -> Result<Vec<(String, [u8; 32])>, String> {
    let mut entries: Vec<(String, [u8; 32])> = Vec::new();
    for entry in spec
        .split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (id, key) = entry
            .split_once('=')
            .ok_or_else(|| "each key must be written ID=BASE64".to_string())?;
        check_key_id(id)?;
        let bytes: [u8; 32] = STANDARD
            .decode(key.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| format!("key {id:?} must be 32 bytes in base64"))?;
        if entries.iter().any(|(known, _)| known == id) {
            return Err(format!("key id {id:?} appears twice"));
        }
        entries.push((id.to_string(), bytes));
    }
    if entries.is_empty() {
        return Err("no keys given".into());
    }
    Ok(entries)
}

/// A key id is 1-64 of [A-Za-z0-9_-], so an entry reads back unambiguously.
pub fn check_key_id(id: &str) -> Result<(), String> {
    let id_ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if !id_ok {
        return Err(format!("key id {id:?} must be 1-64 of [A-Za-z0-9_-]"));
    }
    Ok(())
}

/// A new random key entry, `ID=BASE64`, for an id [`check_key_id`] accepts.
pub fn generate_entry(id: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{id}={}", STANDARD.encode(bytes))
}

/// Ed25519 keys that sign receipts.
#[derive(Clone)]
pub struct SigningKeyring {
    keys: Vec<(String, SigningKey)>,
}

/// A public key as served to verifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub key_id: String,
    pub public_key: [u8; 32],
    pub active: bool,
}

impl SigningKeyring {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let keys = parse_entries(spec)?
            .into_iter()
            .map(|(id, seed)| (id, SigningKey::from_bytes(&seed)))
            .collect();
        Ok(Self { keys })
    }

    fn active(&self) -> &(String, SigningKey) {
        self.keys.last().expect("a keyring is never empty")
    }

    /// Signs with the active key: its id and the signature.
    pub fn sign(&self, message: &[u8]) -> (&str, [u8; 64]) {
        let (id, key) = self.active();
        (id, key.sign(message).to_bytes())
    }

    pub fn active_id(&self) -> &str {
        &self.active().0
    }

    pub fn public_keys(&self) -> Vec<PublicKey> {
        let active = self.active_id();
        self.keys
            .iter()
            .map(|(id, key)| PublicKey {
                key_id: id.clone(),
                public_key: VerifyingKey::from(key).to_bytes(),
                active: id == active,
            })
            .collect()
    }
}

impl fmt::Debug for SigningKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<_> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "SigningKeyring({ids:?})")
    }
}

/// AES-256-GCM data keys for full IP addresses.
#[derive(Clone)]
pub struct IpKeyring {
    keys: Vec<(String, Aes256Gcm)>,
}

/// A full IP, encrypted: `nonce || ciphertext` under the key `key_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedIp {
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

const NONCE_BYTES: usize = 12;

impl IpKeyring {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let keys = parse_entries(spec)?
            .into_iter()
            .map(|(id, key)| (id, Aes256Gcm::new(&key.into())))
            .collect();
        Ok(Self { keys })
    }

    /// Encrypts with the active key. `context` (tenant and record) is bound
    /// as associated data, so a ciphertext moved to another row fails.
    pub fn encrypt(&self, ip: IpAddr, context: &[u8]) -> EncryptedIp {
        let (key_id, cipher) = self.keys.last().expect("a keyring is never empty");
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let plaintext = ip.to_string();
        let sealed = cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context,
                },
            )
            .expect("AES-GCM encrypts any short message");
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&sealed);
        EncryptedIp {
            key_id: key_id.clone(),
            ciphertext,
        }
    }

    pub fn decrypt(&self, encrypted: &EncryptedIp, context: &[u8]) -> Result<IpAddr, String> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == encrypted.key_id)
            .ok_or_else(|| format!("no IP key with id {:?}", encrypted.key_id))?;
        if encrypted.ciphertext.len() <= NONCE_BYTES {
            return Err("ciphertext too short".into());
        }
        let (nonce, sealed) = encrypted.ciphertext.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().expect("split at the nonce length");
        let plaintext = cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: sealed,
                    aad: context,
                },
            )
            .map_err(|_| "decryption failed: wrong key, context or data".to_string())?;
        String::from_utf8(plaintext)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| "decrypted data is not an IP address".into())
    }
}

impl fmt::Debug for IpKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<_> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "IpKeyring({ids:?})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_round_trips_under_rotation_and_is_bound_to_its_context() {
        let old = generate_entry("k1");
        let new = generate_entry("k2");
        let before = IpKeyring::parse(&old).unwrap();
        let after = IpKeyring::parse(&format!("{old},{new}")).unwrap();
        let ip: IpAddr = "203.0.113.77".parse().unwrap();
        let sealed = before.encrypt(ip, b"row-1");
        assert_eq!(after.decrypt(&sealed, b"row-1"), Ok(ip));
        assert!(after.decrypt(&sealed, b"row-2").is_err());
        assert_eq!(after.encrypt(ip, b"row-1").key_id, "k2");
    }

    #[test]
    fn keyrings_refuse_bad_specs() {
        assert!(SigningKeyring::parse("").is_err());
        assert!(SigningKeyring::parse("k1=c2hvcnQ=").is_err());
        assert!(
            SigningKeyring::parse("bad.id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_err()
        );
    }
}

/// The keys a consent record is sealed with: its receipt is signed, its
/// full IP (detailed logging only) is encrypted when IP keys are configured,
/// and its log leaf is made and tagged when the log is kept.
#[derive(Clone, Debug)]
pub struct Sealing {
    pub signing: SigningKeyring,
    pub ip_keys: Option<IpKeyring>,
    pub leaf_tags: Option<super::tlog::LeafTags>,
}

/// The associated data binding an encrypted IP to its record.
pub fn record_context(tenant_id: uuid::Uuid, record_id: uuid::Uuid) -> [u8; 32] {
    let mut context = [0u8; 32];
    context[..16].copy_from_slice(tenant_id.as_bytes());
    context[16..].copy_from_slice(record_id.as_bytes());
    context
}

/// Receipts, encrypted IPs and audit digests that the service wrote before
/// its crypto crates moved a major version (aes-gcm 0.10, ed25519-dalek 2,
/// hmac 0.12, sha2 0.10): stored rows outlive any dependency, so every
/// later build must still verify, decrypt and recompute them.
#[cfg(test)]
mod written_by_an_earlier_build {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::Value;

    use super::*;
    use crate::domain::{erasure::AuditKey, receipt::Receipt};

    fn fixtures() -> Value {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/crypto-before-upgrade.json"
        ))
        .unwrap()
    }

    fn text<'a>(value: &'a Value, field: &str) -> &'a str {
        value[field].as_str().unwrap_or_else(|| panic!("{field}"))
    }

    #[test]
    fn the_signing_key_gives_the_same_public_key() {
        let f = fixtures();
        let keyring = SigningKeyring::parse(text(&f, "signing_keys")).unwrap();
        let served = keyring.public_keys();
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].key_id, "sig-1");
        assert_eq!(
            STANDARD.encode(served[0].public_key),
            text(&f["public_keys"], "sig-1")
        );
    }

    #[test]
    fn batch_receipts_still_verify_and_cover_their_claims() {
        let f = fixtures();
        let public: [u8; 32] = STANDARD
            .decode(text(&f["public_keys"], "sig-1"))
            .unwrap()
            .try_into()
            .unwrap();
        let receipts = f["receipts"].as_array().unwrap();
        assert!(
            receipts.iter().any(|r| {
                let inclusion = Receipt::parse(text(r, "token")).unwrap().inclusion;
                inclusion.is_some_and(|i| i.size > 1)
            }),
            "some receipt has a non-trivial audit path"
        );
        for fixture in receipts {
            let token = text(fixture, "token");
            let receipt = Receipt::parse(token).unwrap();
            assert!(token.starts_with("cr2.sig-1."));
            assert_eq!(receipt.claims_json, text(fixture, "claims").as_bytes());
            assert_eq!(receipt.verify(&public), Ok(()), "{token}");
            assert_eq!(receipt.token(), token);
            let mut other = receipt.clone();
            other.claims_json = b"{}".to_vec();
            assert!(other.verify(&public).is_err());
        }
    }

    #[test]
    fn a_cr1_receipt_still_verifies_and_signing_it_again_gives_the_same_signature() {
        let f = fixtures();
        let keyring = SigningKeyring::parse(text(&f, "signing_keys")).unwrap();
        let public = keyring.public_keys()[0].public_key;
        let fixture = &f["cr1_receipt"];
        let token = text(fixture, "token");
        let receipt = Receipt::parse(token).unwrap();
        assert_eq!(receipt.claims_json, text(fixture, "claims").as_bytes());
        assert_eq!(receipt.verify(&public), Ok(()));
        // Ed25519 signatures are deterministic (RFC 8032), so the same key
        // over the same bytes must give the very same signature.
        let (signed, _) = token.rsplit_once('.').unwrap();
        let (key_id, signature) = keyring.sign(signed.as_bytes());
        assert_eq!(key_id, "sig-1");
        assert_eq!(
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)),
            token
        );
    }

    #[test]
    fn encrypted_ips_still_decrypt_with_their_key_and_context_only() {
        let f = fixtures();
        let keyring = IpKeyring::parse(text(&f, "ip_keys")).unwrap();
        let claims_of = |record_id: &str| -> Value {
            f["receipts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| serde_json::from_str::<Value>(text(r, "claims")).unwrap())
                .find(|claims| claims["record_id"] == record_id)
                .expect("the record has a receipt fixture")
        };
        let fixtures = f["encrypted_ips"].as_array().unwrap();
        assert!(!fixtures.is_empty());
        for fixture in fixtures {
            let tenant_id = uuid::Uuid::parse_str(text(fixture, "tenant_id")).unwrap();
            let record_id = uuid::Uuid::parse_str(text(fixture, "record_id")).unwrap();
            let claims = claims_of(text(fixture, "record_id"));
            assert_eq!(claims["tenant_id"], text(fixture, "tenant_id"));
            assert_eq!(claims["anonymized_ip"], "203.0.113.0/24");
            let encrypted = EncryptedIp {
                key_id: text(fixture, "key_id").to_string(),
                ciphertext: STANDARD.decode(text(fixture, "ciphertext")).unwrap(),
            };
            let context = record_context(tenant_id, record_id);
            assert_eq!(
                keyring.decrypt(&encrypted, &context).unwrap().to_string(),
                text(fixture, "ip")
            );
            assert!(
                keyring
                    .decrypt(&encrypted, &record_context(record_id, tenant_id))
                    .is_err()
            );
        }
    }

    #[test]
    fn audit_digests_are_recomputed_bit_for_bit() {
        let f = fixtures();
        let key = AuditKey::new(text(&f, "audit_key").as_bytes()).unwrap();
        let digests = f["audit_digests"].as_array().unwrap();
        assert!(!digests.is_empty());
        for fixture in digests {
            let digest = key.digest(text(fixture, "kind"), text(fixture, "identifier"));
            assert_eq!(hex::encode(digest), text(fixture, "digest"));
        }
    }
}
