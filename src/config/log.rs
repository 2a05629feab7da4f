//! The settings of each tenant's append-only log.

use std::time::Duration;

use super::within;
use crate::domain::site::DAY;

/// Each tenant's append-only log: the sequencer and its checkpoints.
#[derive(clap::Args, Clone, Debug)]
pub struct LogConfig {
    /// Keep each tenant's append-only log (sequencer and checkpoints);
    /// true or false. Off by default: with it on, RecordConsent at 64
    /// callers runs at 0.88x (README, Performance).
    #[arg(long, env = "CONSENTD_TRANSPARENCY_LOG", default_value = "false",
          action = clap::ArgAction::Set, value_parser = clap::value_parser!(bool))]
    pub transparency_log: bool,
    /// How often committed records are given their leaves; 50ms to 1h.
    #[arg(long, env = "CONSENTD_SEQUENCE_INTERVAL", default_value = "1s",
          value_parser = within(Duration::from_millis(50), Duration::from_secs(3600)))]
    pub sequence_interval: Duration,
    /// A checkpoint of a tenant's log is signed once this long has passed
    /// since its last one and it has new leaves; 50ms to 1d.
    #[arg(long, env = "CONSENTD_CHECKPOINT_INTERVAL", default_value = "1m",
          value_parser = within(Duration::from_millis(50), DAY))]
    pub checkpoint_interval: Duration,
    /// ... or as soon as it has this many new leaves; 1 to 10000000.
    #[arg(long, env = "CONSENTD_CHECKPOINT_LEAVES", default_value = "10000",
          value_parser = within(1usize, 10_000_000))]
    pub checkpoint_leaves: usize,
    /// The origin of a tenant's log is `ORIGIN/TENANT_ID`, the first line
    /// of its checkpoints and their key name: a schema-less URL naming this
    /// deployment, with no spaces and no '+'.
    #[arg(
        long,
        env = "CONSENTD_LOG_ORIGIN",
        default_value = "consentd.invalid/log"
    )]
    pub log_origin: String,
}
