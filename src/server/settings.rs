//! What the server runs with: [`ServerSettings`], and how `consentd serve`'s
//! configuration becomes them (keys read and parsed, errors naming the
//! setting at fault).

use std::{path::PathBuf, time::Duration};

use super::{Drain, Limits, LogSettings, TlsFiles};
use crate::{
    api::ApiContext,
    config::{DefaultsConfig, ServeConfig, setting_name},
    domain::{
        clock::system_clock,
        erasure::AuditKey,
        keyring::{IpKeyring, Sealing, SigningKeyring},
        site::ServerDefaults,
        tlog::LeafTags,
    },
    public::PublicSettings,
    store::WriterConfig,
};

/// What the server needs beyond the store and the socket.
#[derive(Clone)]
pub struct ServerSettings {
    pub api: ApiContext,
    pub health_check_interval: Duration,
    /// How often expired preference selections are removed.
    pub expiry_interval: Duration,
    /// How often records past their retention are deleted.
    pub retention_interval: Duration,
    /// How long a request id is remembered (AIP-155); forgotten by the
    /// expiry worker once this has passed.
    pub request_id_ttl: Duration,
    /// How RecordConsent batches its writes.
    pub writer: WriterConfig,
    /// What one call and one connection may take.
    pub limits: Limits,
    /// TLS from these files; plain TCP without them.
    pub tls: Option<TlsFiles>,
    /// How shutdown drains.
    pub drain: Drain,
    /// The public listener for browsers, when on.
    pub public: Option<PublicSettings>,
    /// Each tenant's append-only log.
    pub log: LogSettings,
}

impl ServerSettings {
    /// What `consentd serve` was configured with, keys parsed; an error
    /// names the setting at fault.
    pub fn from_config(config: &ServeConfig) -> Result<Self, String> {
        let signing = keyring(
            "signing-keys",
            &config.signing_keys,
            &config.signing_keys_file,
        )?
        .ok_or_else(|| {
            format!(
                "signing keys are required: set {} or {}",
                setting_name("signing-keys"),
                setting_name("signing-keys-file")
            )
        })?;
        let signing =
            SigningKeyring::parse(&signing.1).map_err(|e| format!("{}: {e}", signing.0))?;
        let ip_keys = keyring("ip-keys", &config.ip_keys, &config.ip_keys_file)?
            .map(|(name, spec)| IpKeyring::parse(&spec).map_err(|e| format!("{name}: {e}")))
            .transpose()?;
        let audit_key = AuditKey::new(config.audit_key.as_bytes())
            .map_err(|e| format!("{}: {e}", setting_name("audit-key")))?;
        // Only a sequencer reads the leaves writers make.
        let leaf_tags = config
            .log
            .transparency_log
            .then(|| LeafTags::new(&audit_key));
        Ok(Self {
            api: ApiContext {
                audit_key,
                defaults: site_defaults(&config.defaults),
                sealing: Sealing {
                    signing,
                    ip_keys,
                    leaf_tags,
                },
                clock: system_clock(),
                auth_cache_ttl: config.auth_cache_ttl,
            },
            health_check_interval: config.health_check_interval,
            expiry_interval: config.expiry_interval,
            retention_interval: config.retention_interval,
            request_id_ttl: config.request_id_ttl,
            writer: WriterConfig {
                writers: config.writers,
                max_batch: config.max_batch,
            },
            limits: Limits::from_config(&config.limits),
            tls: TlsFiles::from_config(&config.limits)?,
            drain: Drain::from_config(&config.shutdown),
            public: PublicSettings::from_config(&config.public)?,
            log: LogSettings::from_config(&config.log)?,
        })
    }
}

/// The defaults sites inherit, as configured.
pub fn site_defaults(config: &DefaultsConfig) -> ServerDefaults {
    ServerDefaults {
        consent_lifetime: config.consent_lifetime,
        retention: config.retention,
    }
}

/// A keyring given inline (`--FLAG`) or in a file (`--FLAG-file`), with the
/// name of the setting it came from.
fn keyring(
    flag: &str,
    inline: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<(String, String)>, String> {
    match (inline, file) {
        (Some(spec), _) => Ok(Some((setting_name(flag), spec.clone()))),
        (None, Some(path)) => {
            let name = setting_name(&format!("{flag}-file"));
            std::fs::read_to_string(path)
                .map(|spec| Some((name.clone(), spec)))
                .map_err(|error| format!("{name}: cannot read {}: {error}", path.display()))
        }
        (None, None) => Ok(None),
    }
}
