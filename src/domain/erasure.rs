//! Erasure of a data subject (GDPR Art. 17) and the keyed digests that let the
//! audit trail name whom it erased without holding the identifier.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::ids::{SiteId, SubjectId, UserId};

/// Whose records to erase: at least one of subject and user, on one site or
/// (without a site) on every site of the tenant.
#[derive(Clone, Debug)]
pub struct EraseRequest {
    pub site_id: Option<SiteId>,
    pub subject_id: Option<SubjectId>,
    pub user_id: Option<UserId>,
}

/// The server's secret for audit digests. Without the key a digest cannot be
/// reversed by guessing identifiers; with it, an auditor can check whether a
/// given identifier was erased.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

pub const MIN_AUDIT_KEY_BYTES: usize = 32;

impl AuditKey {
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_AUDIT_KEY_BYTES {
            return Err(format!(
                "the audit key must be at least {MIN_AUDIT_KEY_BYTES} bytes"
            ));
        }
        Ok(Self(secret.to_vec()))
    }

    /// HMAC-SHA-256 of an identifier, domain-separated by its kind so a
    /// subject id and an equal user id give different digests.
    pub fn digest(&self, kind: &str, identifier: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(identifier.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}
