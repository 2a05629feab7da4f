//! Settings, from flags with environment equivalents (12-factor). Secrets
//! come from the environment or files in practice; clap never echoes their
//! values.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::{
    api::ApiContext,
    domain::{
        clock::system_clock,
        erasure::AuditKey,
        keyring::{IpKeyring, Sealing, SigningKeyring},
        site::ServerDefaults,
    },
    server::ServerSettings,
    store::WriterConfig,
};

#[derive(clap::Args, Clone)]
pub struct DatabaseConfig {
    /// Postgres connection URL, e.g. postgres://user:pass@host:5432/consentd.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Most connections the pool opens (the RecordConsent writers and the
    /// health probe have their own).
    #[arg(long, env = "CONSENTD_POOL_SIZE", default_value_t = 16)]
    pub pool_size: usize,
}

/// The defaults sites inherit unless they or their tenant set their own.
#[derive(clap::Args, Clone)]
pub struct DefaultsConfig {
    /// Default consent lifetime, in days: expire time = record time + this.
    #[arg(long, env = "CONSENTD_CONSENT_LIFETIME_DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub consent_lifetime_days: u32,
    /// Default retention, in days: how long a record is kept after it expires.
    #[arg(long, env = "CONSENTD_RETENTION_DAYS", default_value_t = 1095,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub retention_days: u32,
}

impl DefaultsConfig {
    pub fn defaults(&self) -> ServerDefaults {
        let days = |n: u32| Duration::from_secs(u64::from(n) * 86_400);
        ServerDefaults {
            consent_lifetime: days(self.consent_lifetime_days),
            retention: days(self.retention_days),
        }
    }
}

#[derive(clap::Args, Clone)]
pub struct ServeConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub defaults: DefaultsConfig,
    /// Address the gRPC server listens on.
    #[arg(long, env = "CONSENTD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Secret (at least 32 bytes) keying the HMAC of identifiers in the
    /// audit trail. Keep it stable: a new key makes old digests unmatchable.
    #[arg(long, env = "CONSENTD_AUDIT_KEY", hide_env_values = true)]
    pub audit_key: String,
    /// Receipt signing keys, `ID=BASE64` (32-byte Ed25519 seeds) separated
    /// by commas, oldest first; the last one signs. `consentd generate-key`
    /// makes one.
    #[arg(
        long,
        env = "CONSENTD_SIGNING_KEYS",
        hide_env_values = true,
        required_unless_present = "signing_keys_file",
        conflicts_with = "signing_keys_file"
    )]
    pub signing_keys: Option<String>,
    /// A file holding the signing keys, one `ID=BASE64` per line.
    #[arg(long, env = "CONSENTD_SIGNING_KEYS_FILE")]
    pub signing_keys_file: Option<PathBuf>,
    /// AES-256 data keys for full IPs, `ID=BASE64` as for signing keys; the
    /// last one encrypts. Without them, full IPs are not kept at all.
    #[arg(
        long,
        env = "CONSENTD_IP_KEYS",
        hide_env_values = true,
        conflicts_with = "ip_keys_file"
    )]
    pub ip_keys: Option<String>,
    /// A file holding the IP data keys, one `ID=BASE64` per line.
    #[arg(long, env = "CONSENTD_IP_KEYS_FILE")]
    pub ip_keys_file: Option<PathBuf>,
    /// How often the database is checked for the health service, in ms.
    #[arg(
        long,
        env = "CONSENTD_HEALTH_CHECK_INTERVAL_MS",
        default_value_t = 2000
    )]
    pub health_check_interval_ms: u64,
    /// How often expired preference selections are removed, in ms.
    #[arg(long, env = "CONSENTD_EXPIRY_INTERVAL_MS", default_value_t = 30_000)]
    pub expiry_interval_ms: u64,
    /// How often records past their retention are deleted, in ms.
    #[arg(
        long,
        env = "CONSENTD_RETENTION_INTERVAL_MS",
        default_value_t = 300_000
    )]
    pub retention_interval_ms: u64,
    /// How long a known API key is trusted without asking the database
    /// again, in ms; a revocation takes effect within this time. 0: always ask.
    #[arg(long, env = "CONSENTD_AUTH_CACHE_MS", default_value_t = 5_000)]
    pub auth_cache_ms: u64,
    /// RecordConsent writer tasks, each committing its own batches on a
    /// connection of its own, outside the pool. They share one thread and
    /// take turns to begin batches, so a second writer overlaps one batch's
    /// INSERT and COMMIT with the next one's start; more add little.
    #[arg(long, env = "CONSENTD_WRITERS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: u16,
    /// Most records one writer commits in one transaction.
    #[arg(long, env = "CONSENTD_MAX_BATCH", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub max_batch: u16,
}

/// A keyring given inline or in a file.
fn keyring_spec(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    what: &str,
) -> Result<Option<String>, String> {
    match (inline, file) {
        (Some(spec), _) => Ok(Some(spec.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|error| format!("cannot read the {what} file {}: {error}", path.display())),
        (None, None) => Ok(None),
    }
}

impl ServeConfig {
    pub fn server_settings(&self) -> Result<ServerSettings, String> {
        let signing = keyring_spec(&self.signing_keys, &self.signing_keys_file, "signing keys")?
            .ok_or("signing keys are required: set CONSENTD_SIGNING_KEYS or CONSENTD_SIGNING_KEYS_FILE")?;
        let signing = SigningKeyring::parse(&signing).map_err(|e| format!("signing keys: {e}"))?;
        let ip_keys = keyring_spec(&self.ip_keys, &self.ip_keys_file, "IP keys")?
            .map(|spec| IpKeyring::parse(&spec).map_err(|e| format!("IP keys: {e}")))
            .transpose()?;
        let millis = |ms: u64| Duration::from_millis(ms.max(50));
        Ok(ServerSettings {
            api: ApiContext {
                audit_key: AuditKey::new(self.audit_key.as_bytes())?,
                defaults: self.defaults.defaults(),
                sealing: Sealing { signing, ip_keys },
                clock: system_clock(),
                auth_cache_ttl: Duration::from_millis(self.auth_cache_ms),
            },
            health_check_interval: millis(self.health_check_interval_ms),
            expiry_interval: millis(self.expiry_interval_ms),
            retention_interval: millis(self.retention_interval_ms),
            writer: WriterConfig {
                writers: self.writers.into(),
                max_batch: self.max_batch.into(),
            },
        })
    }
}
