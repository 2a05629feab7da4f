//! What a decision becomes when it is stored: the sealing policy.
//!
//! A site without detailed logging keeps the minimal record (see
//! [`ConsentDecision::minimized`]): the decision, its times and the
//! visitor's subject id, nothing about the person or their browser. A record
//! expires its site's consent lifetime after its record time. A full IP is
//! kept only encrypted, bound to its tenant and record, and only when IP
//! keys are configured. The records of a batch are signed per tenant: one
//! signature over the Merkle root of that tenant's records, so no tenant's
//! receipt carries another's hashes. The store writes what this decides.

use std::time::SystemTime;

use uuid::Uuid;

use super::{
    consent::{ConsentDecision, ConsentRecord},
    keyring::{EncryptedIp, IpKeyring, Sealing, record_context},
    merkle::Hash,
    receipt::{self, Receipt},
    site::SiteSettings,
    tlog,
};

/// A decision on its way to storage, under its site's settings.
pub struct Pending {
    pub tenant_id: Uuid,
    pub decision: ConsentDecision,
    pub settings: SiteSettings,
}

/// A record as it is stored: signed, and its full IP only in encrypted form.
#[derive(Clone, Debug)]
pub struct Sealed {
    pub tenant_id: Uuid,
    /// Its seal is set; its full IP is not (see `encrypted_ip`).
    pub record: ConsentRecord,
    pub encrypted_ip: Option<EncryptedIp>,
    pub receipt: Receipt,
    /// The random salt of the record's leaf in its tenant's log (see
    /// `tlog`), stored with the record and erased with it.
    pub log_salt: [u8; tlog::SALT_BYTES],
    /// The record's leaf and its tag, when the log is kept: the sequencer
    /// takes them instead of rebuilding the claims from the stored row.
    pub log_leaf: Option<TaggedLeaf>,
}

/// A record's leaf, tagged by the writer that made it (see
/// [`tlog::LeafTags`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaggedLeaf {
    pub leaf: Hash,
    pub tag: [u8; tlog::LEAF_TAG_BYTES],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// A lifetime is at most 100 years when set through the API; a setting
    /// edited by hand can still put the expire time past what a clock holds.
    LifetimeOutOfRange,
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::LifetimeOutOfRange => f.write_str("consent lifetime out of range"),
        }
    }
}

impl std::error::Error for SealError {}

/// Seals the records of one batch, all recorded at `record_time`, in the
/// order given. One record that cannot be sealed fails the batch.
pub fn seal_batch(
    batch: Vec<Pending>,
    record_time: SystemTime,
    sealing: &Sealing,
) -> Result<Vec<Sealed>, SealError> {
    let unsigned = batch
        .into_iter()
        .map(|pending| stored_form(pending, record_time, sealing.ip_keys.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sign_per_tenant(unsigned, sealing))
}

struct Unsigned {
    tenant_id: Uuid,
    record: ConsentRecord,
    encrypted_ip: Option<EncryptedIp>,
}

/// The record a decision becomes under its site's settings, not signed yet.
fn stored_form(
    pending: Pending,
    record_time: SystemTime,
    ip_keys: Option<&IpKeyring>,
) -> Result<Unsigned, SealError> {
    let Pending {
        tenant_id,
        decision,
        settings,
    } = pending;
    let mut decision = if settings.detailed_logging {
        decision
    } else {
        decision.minimized()
    };
    if settings.drop_query_strings {
        decision.page_url = decision.page_url.map(|url| url.without_query());
    }
    let full_ip = decision.full_ip.take();
    let record = ConsentRecord {
        id: Uuid::now_v7(),
        status: decision.status(),
        record_time,
        expire_time: record_time
            .checked_add(settings.consent_lifetime)
            .ok_or(SealError::LifetimeOutOfRange)?,
        seal: None,
        decision,
    };
    let encrypted_ip = match (full_ip, ip_keys) {
        (Some(ip), Some(keys)) => {
            Some(keys.encrypt(ip.addr(), &record_context(tenant_id, record.id)))
        }
        _ => None,
    };
    Ok(Unsigned {
        tenant_id,
        record,
        encrypted_ip,
    })
}

/// One signature per tenant over the Merkle root of its records, leaves in
/// the order given.
fn sign_per_tenant(batch: Vec<Unsigned>, sealing: &Sealing) -> Vec<Sealed> {
    // Stable: each tenant's records keep their order.
    let mut by_tenant: Vec<usize> = (0..batch.len()).collect();
    by_tenant.sort_by_key(|&i| batch[i].tenant_id);
    let mut receipts: Vec<Option<Receipt>> = vec![None; batch.len()];
    for members in by_tenant.chunk_by(|&a, &b| batch[a].tenant_id == batch[b].tenant_id) {
        let tenant_id = batch[members[0]].tenant_id;
        let records: Vec<&ConsentRecord> = members.iter().map(|&i| &batch[i].record).collect();
        let signed = receipt::sign_batch(&sealing.signing, tenant_id, &records);
        for (&i, receipt) in members.iter().zip(signed) {
            receipts[i] = Some(receipt);
        }
    }
    batch
        .into_iter()
        .zip(receipts)
        .map(|(unsigned, receipt)| {
            let receipt = receipt.expect("every record is in its tenant's group");
            let mut record = unsigned.record;
            record.seal = Some(receipt.to_seal());
            let log_salt = tlog::new_salt();
            let log_leaf = sealing.leaf_tags.as_ref().map(|tags| {
                let leaf = tlog::record_leaf(&log_salt, &receipt.claims_json);
                let tagged = tlog::TaggedRecord {
                    tenant_id: unsigned.tenant_id,
                    record_id: record.id,
                    record_time: record.record_time,
                    leaf,
                };
                TaggedLeaf {
                    leaf,
                    tag: tags.tag(&tagged),
                }
            });
            Sealed {
                tenant_id: unsigned.tenant_id,
                record,
                encrypted_ip: unsigned.encrypted_ip,
                receipt,
                log_salt,
                log_leaf,
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{
        consent::{Action, Choices, Name, NoticeHash, Regime, ServiceDecision, Status},
        erasure::AuditKey,
        ids::{RequestId, SiteId, SubjectId, UserId},
        keyring::{SigningKeyring, generate_entry},
        network::FullIp,
        tlog::LeafTags,
        web::{CountryCode, LanguageTag, PageUrl, UserAgent},
    };

    /// A decision with every field set, those a minimal record drops too.
    pub(crate) fn decision(subject: &str, request_id: Option<&str>) -> ConsentDecision {
        let (full_ip, anonymized_ip) = FullIp::parse("203.0.113.77").unwrap();
        let name = |name: &str| Name::parse(name.into()).unwrap();
        ConsentDecision {
            request_id: request_id.map(|r| RequestId::parse(r.into()).unwrap()),
            site_id: SiteId::parse("shop".into()).unwrap(),
            subject_id: SubjectId::parse(subject.into()).unwrap(),
            user_id: Some(UserId::parse("user-1".into()).unwrap()),
            action: Action::Custom,
            choices: Choices::from_stored(
                vec!["analytics".into()],
                vec!["ads".into()],
                vec![ServiceDecision {
                    category: name("analytics"),
                    service: name("matomo"),
                    granted: true,
                }],
            ),
            banner_revision: Some("r1".into()),
            regime: Regime::Gdpr,
            gpc_detected: true,
            gpc_honoured: true,
            ccpa_opt_out: true,
            tcf_string: Some("CPzHq4APzHq4AAHABBENC-CgAP_AAH_AAAAAJNNf".into()),
            gpp_string: Some("DBABMA~CPzHq4APzHq4AAHABBENC".into()),
            google_ac_string: Some("2~1.35.41.101~dv.9.21.81".into()),
            country: Some(CountryCode::parse("DE".into()).unwrap()),
            language: Some(LanguageTag::parse("de-DE".into()).unwrap()),
            page_url: Some(PageUrl::parse("https://shop.example/".into()).unwrap()),
            // Not parsed: parsing goes through a process-wide cache that
            // another test counts.
            user_agent: Some(UserAgent::from_stored(
                "Mozilla/5.0 (X11; Linux x86_64)".into(),
                "pc".into(),
                "Linux".into(),
                "Firefox".into(),
            )),
            anonymized_ip: Some(anonymized_ip),
            full_ip: Some(full_ip),
            notice_version: Some("v3".into()),
            notice_sha256: Some(NoticeHash::of_text("We use cookies.")),
            client_time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000)),
        }
    }

    const LIFETIME: Duration = Duration::from_secs(86_400);

    fn settings(detailed_logging: bool) -> SiteSettings {
        SiteSettings {
            detailed_logging,
            consent_lifetime: LIFETIME,
            retention: Duration::from_secs(3600),
            drop_query_strings: false,
        }
    }

    fn sealing(with_ip_keys: bool) -> Sealing {
        Sealing {
            signing: SigningKeyring::parse(&generate_entry("sig-1")).unwrap(),
            ip_keys: with_ip_keys.then(|| IpKeyring::parse(&generate_entry("ip-1")).unwrap()),
            leaf_tags: Some(LeafTags::new(&AuditKey::new(&[6; 32]).unwrap())),
        }
    }

    fn pending(tenant_id: Uuid, subject: &str, detailed_logging: bool) -> Pending {
        Pending {
            tenant_id,
            decision: decision(subject, None),
            settings: settings(detailed_logging),
        }
    }

    fn seal_one(detailed_logging: bool, with_ip_keys: bool) -> (Sealed, Sealing) {
        let sealing = sealing(with_ip_keys);
        let mut sealed = seal_batch(
            vec![pending(Uuid::now_v7(), "v", detailed_logging)],
            SystemTime::now(),
            &sealing,
        )
        .unwrap();
        (sealed.remove(0), sealing)
    }

    #[test]
    fn minimal_logging_keeps_no_user_agent_page_or_ip_of_any_form() {
        let (sealed, _) = seal_one(false, true);
        let d = &sealed.record.decision;
        assert_eq!(
            (&d.user_agent, &d.page_url, d.anonymized_ip),
            (&None, &None, None)
        );
        assert!(d.full_ip.is_none());
        assert_eq!(sealed.encrypted_ip, None, "no IP to encrypt");
        assert_eq!(d.banner_revision.as_deref(), Some("r1"), "the rest is kept");
    }

    #[test]
    fn minimal_logging_keeps_the_decision_its_times_and_the_visitor_id_only() {
        let sent = decision("visitor", Some("req-1"));
        let sealing = sealing(true);
        let sealed = seal_batch(
            vec![Pending {
                tenant_id: Uuid::now_v7(),
                decision: sent.clone(),
                settings: settings(false),
            }],
            SystemTime::now(),
            &sealing,
        )
        .unwrap()
        .remove(0);
        let kept = ConsentDecision {
            request_id: sent.request_id.clone(),
            site_id: sent.site_id.clone(),
            subject_id: sent.subject_id.clone(),
            user_id: None,
            action: sent.action,
            choices: sent.choices.clone(),
            banner_revision: sent.banner_revision.clone(),
            regime: sent.regime,
            gpc_detected: sent.gpc_detected,
            gpc_honoured: sent.gpc_honoured,
            ccpa_opt_out: sent.ccpa_opt_out,
            tcf_string: None,
            gpp_string: None,
            google_ac_string: None,
            country: None,
            language: None,
            page_url: None,
            user_agent: None,
            anonymized_ip: None,
            full_ip: None,
            notice_version: sent.notice_version.clone(),
            notice_sha256: sent.notice_sha256,
            client_time: sent.client_time,
        };
        assert_eq!(sealed.record.decision, kept);
        assert_eq!(sealed.encrypted_ip, None);
        // The receipt signs what is stored, nothing of what was dropped.
        let claims: serde_json::Value =
            serde_json::from_slice(&sealed.receipt.claims_json).unwrap();
        for dropped in [
            "tcf_string",
            "gpp_string",
            "google_ac_string",
            "country_code",
            "language_code",
            "anonymized_ip",
        ] {
            assert_eq!(claims[dropped], serde_json::Value::Null, "{dropped}");
        }
        assert_eq!(claims["subject_id"], "visitor");
        assert_eq!(claims["notice_version"], "v3");
    }

    #[test]
    fn detailed_logging_keeps_the_details_and_only_an_encrypted_full_ip() {
        let (sealed, sealing) = seal_one(true, true);
        let d = &sealed.record.decision;
        let mut sent = decision("v", None);
        sent.full_ip = None;
        assert_eq!(*d, sent, "everything but the full IP, as sent");
        assert!(d.user_agent.is_some() && d.page_url.is_some());
        assert_eq!(
            d.anonymized_ip.map(|ip| ip.to_string()).as_deref(),
            Some("203.0.113.0/24")
        );
        assert!(d.full_ip.is_none(), "the record holds no full IP");
        let encrypted = sealed.encrypted_ip.expect("encrypted with IP keys");
        let context = record_context(sealed.tenant_id, sealed.record.id);
        let keys = sealing.ip_keys.unwrap();
        assert_eq!(
            keys.decrypt(&encrypted, &context),
            Ok("203.0.113.77".parse().unwrap())
        );
        let elsewhere = record_context(sealed.tenant_id, Uuid::now_v7());
        assert!(keys.decrypt(&encrypted, &elsewhere).is_err());
    }

    #[test]
    fn without_ip_keys_the_full_ip_is_dropped_not_kept() {
        let (sealed, _) = seal_one(true, false);
        assert_eq!(sealed.encrypted_ip, None);
        assert!(sealed.record.decision.full_ip.is_none());
        assert!(sealed.record.decision.anonymized_ip.is_some());
    }

    #[test]
    fn the_writer_tags_the_leaf_of_the_stored_claims_only_when_the_log_is_kept() {
        let (sealed, keys) = seal_one(false, false);
        let tagged = sealed.log_leaf.expect("a leaf when the log is kept");
        assert_eq!(
            tagged.leaf,
            tlog::record_leaf(&sealed.log_salt, &sealed.receipt.claims_json)
        );
        let tags = keys.leaf_tags.unwrap();
        let bound = tlog::TaggedRecord {
            tenant_id: sealed.tenant_id,
            record_id: sealed.record.id,
            record_time: sealed.record.record_time,
            leaf: tagged.leaf,
        };
        assert!(tags.verifies(&bound, &tagged.tag));
        let without_log = Sealing {
            leaf_tags: None,
            ..sealing(false)
        };
        let sealed = seal_batch(
            vec![pending(Uuid::now_v7(), "v", false)],
            SystemTime::now(),
            &without_log,
        )
        .unwrap();
        assert_eq!(sealed[0].log_leaf, None);
    }

    #[test]
    fn a_record_expires_its_sites_lifetime_after_its_record_time() {
        let record_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let sealed = seal_batch(
            vec![pending(Uuid::now_v7(), "v", false)],
            record_time,
            &sealing(false),
        )
        .unwrap();
        let record = &sealed[0].record;
        assert_eq!(record.record_time, record_time);
        assert_eq!(record.expire_time, record_time + LIFETIME);
        assert_eq!(record.status, Status::Partial);
    }

    #[test]
    fn a_lifetime_past_any_clock_is_an_error_not_a_panic() {
        let mut broken = pending(Uuid::now_v7(), "v", false);
        broken.settings.consent_lifetime = Duration::MAX;
        let batch = vec![pending(Uuid::now_v7(), "fine", false), broken];
        assert_eq!(
            seal_batch(batch, SystemTime::now(), &sealing(false)).unwrap_err(),
            SealError::LifetimeOutOfRange
        );
    }

    #[test]
    fn every_record_gets_a_receipt_that_verifies_and_tenants_never_share_a_tree() {
        let sealing = sealing(false);
        let public = sealing.signing.public_keys()[0].public_key;
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let tenants = [a, b, a, a, b];
        let batch = tenants
            .iter()
            .enumerate()
            .map(|(i, &tenant)| pending(tenant, &format!("v{i}"), true))
            .collect();
        let sealed = seal_batch(batch, SystemTime::now(), &sealing).unwrap();
        assert_eq!(sealed.len(), tenants.len());
        for (s, &tenant) in sealed.iter().zip(&tenants) {
            assert_eq!(s.tenant_id, tenant, "in the order given");
            assert_eq!(s.receipt.verify(&public), Ok(()));
            assert_eq!(s.record.seal, Some(s.receipt.to_seal()));
            let claims: serde_json::Value = serde_json::from_slice(&s.receipt.claims_json).unwrap();
            assert_eq!(claims["record_id"], s.record.id.to_string());
            assert_eq!(claims["tenant_id"], tenant.to_string());
        }
        for tenant in [a, b] {
            let own: Vec<&Sealed> = sealed.iter().filter(|s| s.tenant_id == tenant).collect();
            // The tenant's tree holds its own records and nothing else: signing
            // them alone gives the very same receipts.
            let records: Vec<&ConsentRecord> = own.iter().map(|s| &s.record).collect();
            let alone = receipt::sign_batch(&sealing.signing, tenant, &records);
            for (s, alone) in own.iter().zip(&alone) {
                assert_eq!(s.receipt.signature, alone.signature);
                assert_eq!(s.receipt.inclusion, alone.inclusion);
                assert_eq!(
                    s.receipt.inclusion.as_ref().unwrap().size as usize,
                    own.len()
                );
            }
        }
        let signature_of = |tenant| {
            sealed
                .iter()
                .find(|s| s.tenant_id == tenant)
                .unwrap()
                .receipt
                .signature
        };
        assert_ne!(signature_of(a), signature_of(b));
    }
}
