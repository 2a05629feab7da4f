//! Settings, from flags with environment equivalents (12-factor). Secrets
//! come from the environment in practice; clap never echoes their values.

use std::{net::SocketAddr, time::Duration};

use crate::{
    domain::erasure::AuditKey,
    server::{ServerSettings, system_clock},
};

#[derive(clap::Args, Clone)]
pub struct DatabaseConfig {
    /// Postgres connection URL, e.g. postgres://user:pass@host:5432/consentd.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Most connections the pool opens.
    #[arg(long, env = "CONSENTD_POOL_SIZE", default_value_t = 16)]
    pub pool_size: usize,
}

#[derive(clap::Args, Clone)]
pub struct ServeConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Address the gRPC server listens on.
    #[arg(long, env = "CONSENTD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// How long a consent stays valid after it is recorded, in days.
    #[arg(long, env = "CONSENTD_CONSENT_LIFETIME_DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub consent_lifetime_days: u32,
    /// Secret (at least 32 bytes) keying the HMAC of identifiers in the
    /// erasure audit log. Keep it stable: a new key makes old digests
    /// unmatchable.
    #[arg(long, env = "CONSENTD_AUDIT_KEY", hide_env_values = true)]
    pub audit_key: String,
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
}

impl ServeConfig {
    pub fn server_settings(&self) -> Result<ServerSettings, String> {
        Ok(ServerSettings {
            consent_lifetime: Duration::from_secs(u64::from(self.consent_lifetime_days) * 86_400),
            audit_key: AuditKey::new(self.audit_key.as_bytes())?,
            health_check_interval: Duration::from_millis(self.health_check_interval_ms.max(50)),
            expiry_interval: Duration::from_millis(self.expiry_interval_ms.max(50)),
            clock: system_clock(),
        })
    }
}
