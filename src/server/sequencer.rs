//! The background worker that keeps each tenant's log: sequences committed
//! records and signs the checkpoints due (see `store::tlog`). Every replica
//! runs it; one at a time has the turn.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use super::workers::{count_run, repeat};
use crate::{
    api::ApiContext,
    config::LogConfig,
    domain::{
        checkpoint::check_name,
        tlog::{CheckpointPolicy, LeafTags},
    },
    store::{SequencerConfig, Store},
};

/// Most records one sequencer run reads and appends. Each run costs one
/// transaction and about a dozen round trips whatever its size, so at
/// full write load a bigger batch is cheaper per record; erasures wait for
/// a run's append (a few ms per thousand leaves), so not much bigger.
const SEQUENCER_BATCH: i64 = 2000;

/// How the log is kept.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// Whether the sequencer runs at all; without it no leaf or checkpoint
    /// is added and the log RPCs answer from what is already there.
    pub enabled: bool,
    /// How often the sequencer looks for committed records.
    pub interval: Duration,
    pub sequencer: SequencerConfig,
}

impl LogSettings {
    pub fn from_config(config: &LogConfig) -> Result<Self, String> {
        check_name(&config.log_origin).map_err(|e| format!("CONSENTD_LOG_ORIGIN: {e}"))?;
        Ok(Self {
            enabled: config.transparency_log,
            interval: config.sequence_interval,
            sequencer: SequencerConfig {
                batch: SEQUENCER_BATCH,
                checkpoints: CheckpointPolicy {
                    interval: config.checkpoint_interval,
                    leaves: config.checkpoint_leaves as u64,
                },
                origin_prefix: config.log_origin.clone(),
            },
        })
    }
}

pub(super) fn spawn(
    store: Store,
    context: Arc<ApiContext>,
    settings: LogSettings,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    if !settings.enabled {
        return tokio::spawn(async {});
    }
    let settings = Arc::new(settings);
    // The writers' key (`Sealing::leaf_tags`), derived the same way.
    let leaf_tags = Arc::new(LeafTags::new(&context.audit_key));
    tokio::spawn(repeat(settings.interval, stopped, move || {
        let (store, context, settings) = (store.clone(), context.clone(), settings.clone());
        let leaf_tags = leaf_tags.clone();
        async move {
            let now = (context.clock)();
            let signing = &context.sealing.signing;
            let done = (store.sequence(signing, &leaf_tags, &settings.sequencer, now)).await;
            count_run("sequencer", done.as_ref().map(|d| d.map(|d| d.read)));
            let Some(done) = done? else {
                return Ok(false);
            };
            if done.read > 0 || done.events > 0 || done.checkpoints > 0 {
                tracing::debug!(
                    read = done.read,
                    events = done.events,
                    rejected = done.rejected,
                    checkpoints = done.checkpoints,
                    "sequenced the log"
                );
            }
            let full = settings.sequencer.batch as u64;
            Ok(done.read == full || done.events == full)
        }
    }))
}
