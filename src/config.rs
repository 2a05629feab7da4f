//! Settings, from flags with environment equivalents (12-factor): plain
//! data that `server` and `main.rs` turn into what each layer takes. It
//! depends on nothing but the limits the domain sets.
//!
//! The flag `--foo-bar` is read from `CONSENTD_FOO_BAR` when not given.
//! Durations are written as humantime strings: "500ms", "2s", "5m", "365d".
//! A value out of its range is refused, with the flag, the variable and the
//! range in the message, never moved into the range. Secrets come from the
//! environment or files in practice; clap never echoes their values.

use std::{ffi::OsStr, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{builder::TypedValueParser, error::ErrorKind};

use crate::domain::site::{DAY, MAX_SETTING_DURATION, MIN_LIFETIME};

mod log;
pub use log::LogConfig;

#[derive(clap::Args, Clone)]
pub struct DatabaseConfig {
    /// Postgres connection URL, e.g. postgres://user:pass@host:5432/consentd.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Most connections the pool opens (the RecordConsent writers and the
    /// health probe have their own); 1 to 1024. Exports may hold half of
    /// them at once, one tenant's a quarter.
    #[arg(long, env = "CONSENTD_POOL_SIZE", default_value = "16",
          value_parser = within(1usize, 1024))]
    pub pool_size: usize,
}

/// The defaults sites inherit unless they or their tenant set their own.
#[derive(clap::Args, Clone)]
pub struct DefaultsConfig {
    /// Default consent lifetime: expire time = record time + this; 1s to
    /// 36500d.
    #[arg(long, env = "CONSENTD_CONSENT_LIFETIME", default_value = "365d",
          value_parser = within(MIN_LIFETIME, MAX_SETTING_DURATION))]
    pub consent_lifetime: Duration,
    /// Default retention: how long a record is kept after it expires; 0s to
    /// 36500d.
    #[arg(long, env = "CONSENTD_RETENTION", default_value = "1095d",
          value_parser = within(Duration::ZERO, MAX_SETTING_DURATION))]
    pub retention: Duration,
}

#[derive(clap::Args, Clone)]
pub struct ServeConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub defaults: DefaultsConfig,
    /// Address the gRPC server listens on: IP:PORT, e.g. 0.0.0.0:50051 or
    /// [::]:50051.
    #[arg(long, env = "CONSENTD_LISTEN", default_value = "127.0.0.1:50051",
          value_parser = listen_address)]
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
    /// How often the database is checked for the health service; 50ms to 1h.
    #[arg(long, env = "CONSENTD_HEALTH_CHECK_INTERVAL", default_value = "2s",
          value_parser = within(Duration::from_millis(50), HOUR))]
    pub health_check_interval: Duration,
    /// How often expired preference selections are removed; 50ms to 1d.
    #[arg(long, env = "CONSENTD_EXPIRY_INTERVAL", default_value = "30s", value_parser = JOB_INTERVAL)]
    pub expiry_interval: Duration,
    /// How often records past their retention are deleted; 50ms to 1d.
    #[arg(long, env = "CONSENTD_RETENTION_INTERVAL", default_value = "5m", value_parser = JOB_INTERVAL)]
    pub retention_interval: Duration,
    /// How long a request id is remembered (AIP-155): a retry within this
    /// window gets the first answer; after it (and within one expiry
    /// interval) the id is forgotten, and a retry is a new request. 1h to 7d.
    #[arg(long, env = "CONSENTD_REQUEST_ID_TTL", default_value = "24h",
          value_parser = within(HOUR, Duration::from_secs(7 * DAY.as_secs())))]
    pub request_id_ttl: Duration,
    /// How long a known API key is trusted without asking the database
    /// again; a revocation takes effect within this time. 0s (always ask)
    /// to 1h.
    #[arg(long, env = "CONSENTD_AUTH_CACHE_TTL", default_value = "5s",
          value_parser = within(Duration::ZERO, HOUR))]
    pub auth_cache_ttl: Duration,
    /// RecordConsent writer tasks, each committing its own batches on a
    /// connection of its own, outside the pool; 1 to 64. They share one
    /// thread and take turns to begin batches, so a second writer overlaps
    /// one batch's INSERT and COMMIT with the next one's start; more add
    /// little.
    #[arg(long, env = "CONSENTD_WRITERS", default_value = "2",
          value_parser = within(1usize, 64))]
    pub writers: usize,
    /// Most records one writer commits in one transaction; 1 to 4096.
    #[arg(long, env = "CONSENTD_MAX_BATCH", default_value = "256",
          value_parser = within(1usize, 4096))]
    pub max_batch: usize,
    #[command(flatten)]
    pub log: LogConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    #[command(flatten)]
    pub limits: LimitsConfig,
    #[command(flatten)]
    pub shutdown: ShutdownConfig,
    #[command(flatten)]
    pub public: PublicConfig,
}

/// The public HTTP listener browsers post consent to (`public`).
#[derive(clap::Args, Clone)]
pub struct PublicConfig {
    /// Address of the public HTTP listener for browsers (POST /v1/consents
    /// with publishable keys): IP:PORT; unset = off.
    #[arg(long, env = "CONSENTD_PUBLIC_LISTEN", value_parser = listen_address)]
    pub public_listen: Option<SocketAddr>,
    /// Reverse proxies in front of the public listener whose
    /// X-Forwarded-For entries are trusted, counted from the right; 0 uses
    /// the connection's address only. 0 to 16.
    #[arg(long, env = "CONSENTD_PUBLIC_TRUSTED_HOPS", default_value = "0",
          value_parser = within(0usize, 16))]
    pub public_trusted_hops: usize,
    /// Requests per second one publishable key may send (its burst is the
    /// same number); 1 to 1000000.
    #[arg(long, env = "CONSENTD_PUBLIC_KEY_RATE", default_value = "500", value_parser = RATE)]
    pub public_key_rate: usize,
    /// Requests per minute one client network (IPv4 /24, IPv6 /48) may send
    /// (its burst is the same number); 1 to 1000000.
    #[arg(long, env = "CONSENTD_PUBLIC_NETWORK_RATE", default_value = "120", value_parser = RATE)]
    pub public_network_rate: usize,
}

/// An address to listen on. A host name is refused rather than resolved:
/// what it resolves to could change between restarts.
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        "must be an IP address and a port, such as 0.0.0.0:50051 or [::]:50051 (no host name)"
            .to_string()
    })
}

/// How a setting is named in messages: `--foo-bar (CONSENTD_FOO_BAR)`.
pub fn setting_name(flag: &str) -> String {
    format!(
        "--{flag} (CONSENTD_{})",
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

/// A duration in the form the flags take, in whole units: "365d",
/// "1h 30m", "50ms".
pub fn format_duration(value: Duration) -> String {
    const UNITS: [(&str, Duration); 7] = [
        ("d", DAY),
        ("h", HOUR),
        ("m", Duration::from_secs(60)),
        ("s", Duration::from_secs(1)),
        ("ms", Duration::from_millis(1)),
        ("us", Duration::from_micros(1)),
        ("ns", Duration::from_nanos(1)),
    ];
    let mut rest = value.as_nanos();
    let mut parts = Vec::new();
    for (unit, size) in UNITS {
        let count = rest / size.as_nanos();
        if count > 0 {
            parts.push(format!("{count}{unit}"));
            rest -= count * size.as_nanos();
        }
    }
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

/// A duration such as "500ms", "2s" or "365d", of any length.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|error| format!("{error}; write a duration such as 500ms, 2s, 5m or 365d"))
}

/// What a bounded setting holds: read from its text, shown as it is written.
pub trait SettingValue: Copy + PartialOrd + Send + Sync + 'static {
    fn parse(text: &str) -> Result<Self, String>;
    fn show(&self) -> String;
}

impl SettingValue for Duration {
    fn parse(text: &str) -> Result<Self, String> {
        parse_duration(text)
    }

    fn show(&self) -> String {
        format_duration(*self)
    }
}

impl SettingValue for usize {
    fn parse(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| "must be a whole number".to_string())
    }

    fn show(&self) -> String {
        self.to_string()
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// How often a background job may run.
const JOB_INTERVAL: Within<Duration> = within(Duration::from_millis(50), DAY);

/// What a public listener's limit may allow, per second or per minute.
const RATE: Within<usize> = within(1, 1_000_000);

/// The clap parser of a setting that must lie in `min..=max`.
#[derive(Clone, Copy)]
pub struct Within<T> {
    min: T,
    max: T,
}

pub const fn within<T>(min: T, max: T) -> Within<T> {
    Within { min, max }
}

impl<T: SettingValue> Within<T> {
    /// The value, or why it is refused.
    pub fn check(&self, text: &str) -> Result<T, String> {
        let value = T::parse(text)?;
        if value < self.min || value > self.max {
            return Err(format!(
                "must be between {} and {}",
                self.min.show(),
                self.max.show()
            ));
        }
        Ok(value)
    }
}

impl<T: SettingValue> TypedValueParser for Within<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        self.check(&text).map_err(|problem| {
            // clap's own message names the flag only, although the value
            // may have come from the environment.
            let name = arg.map_or_else(
                || "a setting".to_string(),
                |arg| {
                    let flag = arg
                        .get_long()
                        .map_or_else(|| arg.get_id().to_string(), |long| format!("--{long}"));
                    match arg.get_env() {
                        Some(env) => format!("{flag} ({})", env.to_string_lossy()),
                        None => flag,
                    }
                },
            );
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid value '{text}' for {name}: {problem}\n"),
            )
            .with_cmd(cmd)
        })
    }
}

/// Traces and metrics. Both are off unless configured.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TelemetryConfig {
    /// Address serving Prometheus metrics at GET /metrics: IP:PORT, e.g.
    /// 0.0.0.0:9090. Unset: no metrics listener.
    #[arg(long, env = "CONSENTD_METRICS_LISTEN", value_parser = listen_address)]
    pub metrics_listen: Option<SocketAddr>,
    /// OTLP gRPC collector the traces go to, e.g. http://collector:4317.
    /// Unset: no spans are exported (nor made). OTEL_SERVICE_NAME,
    /// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and
    /// OTEL_TRACES_SAMPLER_ARG apply as the OpenTelemetry SDK defines them.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Limits on calls and connections, and TLS.
#[derive(clap::Args, Clone)]
pub struct LimitsConfig {
    /// Most calls served at once; beyond it a call gets RESOURCE_EXHAUSTED
    /// at once rather than waiting. A stream counts until it ends; health
    /// checks never count. 1 to 1000000.
    #[arg(long, env = "CONSENTD_MAX_CONCURRENT_REQUESTS", default_value = "256",
          value_parser = within(1usize, 1_000_000))]
    pub max_concurrent_requests: usize,
    /// Largest request message accepted, in bytes; larger ones get
    /// RESOURCE_EXHAUSTED. 1 to 1073741824.
    #[arg(long, env = "CONSENTD_MAX_REQUEST_BYTES", default_value = "4194304",
          value_parser = within(1usize, 1 << 30))]
    pub max_request_bytes: usize,
    /// Largest response message sent, in bytes; 1 to 1073741824.
    #[arg(long, env = "CONSENTD_MAX_RESPONSE_BYTES", default_value = "4194304",
          value_parser = within(1usize, 1 << 30))]
    pub max_response_bytes: usize,
    /// How often an idle connection is pinged (HTTP/2 PING); 10ms to 1d.
    #[arg(long, env = "CONSENTD_KEEPALIVE_INTERVAL", default_value = "30s",
          value_parser = within(Duration::from_millis(10), DAY))]
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed;
    /// 10ms to 1h.
    #[arg(long, env = "CONSENTD_KEEPALIVE_TIMEOUT", default_value = "10s",
          value_parser = within(Duration::from_millis(10), HOUR))]
    pub keepalive_timeout: Duration,
    /// Age at which a connection is asked to go away (calls in flight
    /// finish), so clients reconnect and spread over new replicas; 0s
    /// (never) to 365d.
    #[arg(long, env = "CONSENTD_MAX_CONNECTION_AGE", default_value = "30m",
          value_parser = within(Duration::ZERO, 365 * DAY))]
    pub max_connection_age: Duration,
    /// PEM certificate chain to serve TLS with (with --tls-key-file).
    /// Replaced files are used for new connections without a restart.
    #[arg(long, env = "CONSENTD_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the TLS certificate.
    #[arg(long, env = "CONSENTD_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates must chain to: mutual
    /// TLS, and clients without such a certificate cannot connect.
    #[arg(long, env = "CONSENTD_TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,
}

/// How a shutdown drains (see `server::shutdown`).
#[derive(clap::Args, Clone)]
pub struct ShutdownConfig {
    /// After SIGTERM, how long the replica serves on, NOT_SERVING, while
    /// it is removed from the Service's endpoints; 0s to 1h.
    #[arg(long, env = "CONSENTD_SHUTDOWN_DELAY", default_value = "5s",
          value_parser = within(Duration::ZERO, HOUR))]
    pub shutdown_delay: Duration,
    /// Longest wait, once accepting has stopped, for calls and streams in
    /// flight and queued writes; 0s to 1h. terminationGracePeriodSeconds
    /// must exceed the shutdown delay plus this.
    #[arg(long, env = "CONSENTD_DRAIN_TIMEOUT", default_value = "20s",
          value_parser = within(Duration::ZERO, HOUR))]
    pub drain_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_shown_in_a_form_they_are_read_back_from() {
        for (text, shown) in [
            ("365d", "365d"),
            ("2s", "2s"),
            ("90m", "1h 30m"),
            ("1500ms", "1s 500ms"),
            ("0s", "0s"),
            ("400d 12h", "400d 12h"),
        ] {
            let value = parse_duration(text).unwrap();
            assert_eq!(format_duration(value), shown);
            assert_eq!(parse_duration(shown).unwrap(), value);
        }
        assert_eq!(
            parse_duration("365d").unwrap(),
            Duration::from_secs(365 * DAY.as_secs())
        );
    }

    #[test]
    fn values_out_of_range_are_refused_not_clamped() {
        let interval = within(Duration::from_millis(50), HOUR);
        assert_eq!(interval.check("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(interval.check("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(
            interval.check("10ms"),
            Err("must be between 50ms and 1h".to_string())
        );
        assert!(interval.check("2h").is_err());
        assert!(interval.check("2").unwrap_err().contains("500ms, 2s"));
        assert_eq!(
            within(1usize, 64).check("65"),
            Err("must be between 1 and 64".into())
        );
        assert!(within(1usize, 64).check("two").is_err());
    }

    #[test]
    fn settings_are_named_by_flag_and_variable() {
        assert_eq!(
            setting_name("signing-keys-file"),
            "--signing-keys-file (CONSENTD_SIGNING_KEYS_FILE)"
        );
    }
}
