//! The background workers every replica runs: database health (which
//! drives readiness), preference expiry, request-id expiry, the log's
//! sequencer and retention.
//! Each works in batches; the store makes each item processed once.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use tokio::{sync::watch, task::JoinHandle};
use tonic_health::{ServingStatus, server::HealthReporter};

use super::{ServerSettings, set_health};
use crate::{
    api::ApiContext,
    metrics::metrics,
    store::{Forgotten, Store},
};

/// Items per transaction of a background worker: bounds how long a batch
/// holds its locks.
pub(super) const WORKER_BATCH: i64 = 500;

/// Starts the workers; they stop when `stopped` turns true.
pub(super) fn spawn(
    store: &Store,
    health: &HealthReporter,
    settings: &ServerSettings,
    context: &Arc<ApiContext>,
    stopped: watch::Receiver<bool>,
) -> [JoinHandle<()>; 5] {
    [
        tokio::spawn(watch_database(
            store.clone(),
            health.clone(),
            settings.health_check_interval,
            stopped.clone(),
        )),
        tokio::spawn(repeat(settings.expiry_interval, stopped.clone(), {
            let (store, clock) = (store.clone(), context.clock.clone());
            move || {
                let (store, clock) = (store.clone(), clock.clone());
                async move {
                    let expired = store.expire_preferences(clock(), WORKER_BATCH).await;
                    count_run("expiry", expired.as_ref().map(|n| Some(*n as u64)));
                    let expired = expired?;
                    if expired > 0 {
                        tracing::info!(expired, "expired preference selections");
                    }
                    Ok(expired == WORKER_BATCH)
                }
            }
        })),
        tokio::spawn(repeat(settings.expiry_interval, stopped.clone(), {
            let (store, clock, ttl) = (
                store.clone(),
                context.clock.clone(),
                settings.request_id_ttl,
            );
            move || {
                let (store, clock) = (store.clone(), clock.clone());
                async move {
                    let before = clock().checked_sub(ttl).unwrap_or(UNIX_EPOCH);
                    let forgotten = store.forget_request_ids(before, WORKER_BATCH).await;
                    count_run(
                        "request_ids",
                        forgotten
                            .as_ref()
                            .map(|f| Some(f.consent_request_ids + f.preference_responses)),
                    );
                    let forgotten = forgotten?;
                    if forgotten != Forgotten::default() {
                        tracing::info!(
                            consent_request_ids = forgotten.consent_request_ids,
                            preference_responses = forgotten.preference_responses,
                            "forgot request ids past the retry window"
                        );
                    }
                    let full = WORKER_BATCH as u64;
                    Ok(forgotten.consent_request_ids == full
                        || forgotten.preference_responses == full)
                }
            }
        })),
        super::sequencer::spawn(
            store.clone(),
            context.clone(),
            settings.log.clone(),
            stopped.clone(),
        ),
        tokio::spawn(repeat(settings.retention_interval, stopped, {
            let (store, context) = (store.clone(), context.clone());
            move || {
                let (store, context) = (store.clone(), context.clone());
                async move {
                    let now = (context.clock)();
                    let deleted = store
                        .delete_retired_consents(now, WORKER_BATCH, context.defaults)
                        .await;
                    count_run("retention", deleted.as_ref().map(|n| *n));
                    let deleted = deleted?;
                    if let Some(deleted) = deleted.filter(|n| *n > 0) {
                        tracing::info!(deleted, "deleted consent records past retention");
                    }
                    Ok(deleted == Some(WORKER_BATCH as u64))
                }
            }
        })),
    ]
}

/// Counts a worker's batch: `None` rows when another replica had the turn.
pub(super) fn count_run(worker: &'static str, outcome: Result<Option<u64>, &crate::store::Error>) {
    match outcome {
        Ok(Some(rows)) => metrics().worker_run(worker, "ok", rows),
        Ok(None) => metrics().worker_run(worker, "skipped", 0),
        Err(_) => metrics().worker_run(worker, "error", 0),
    }
}

/// SERVING while Postgres answers, NOT_SERVING while it does not.
async fn watch_database(
    store: Store,
    health: HealthReporter,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut last = None;
    let mut probe = store.health_probe();
    loop {
        let answered = probe.check(interval.max(Duration::from_secs(1))).await;
        if *stopped.borrow() {
            return;
        }
        let status = if answered {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            tracing::info!(?status, "database health changed");
            set_health(&health, status).await;
            last = Some(status);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Runs a batch job every `interval` until stopped; a batch that reports
/// more work (`Ok(true)`) runs again at once. Every replica runs the jobs:
/// the store makes each item processed once.
pub(super) async fn repeat<F, Fut>(interval: Duration, mut stopped: watch::Receiver<bool>, batch: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<bool, crate::store::Error>>,
{
    loop {
        loop {
            match batch().await {
                Ok(true) if !*stopped.borrow() => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&error), "background batch failed");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
    }
}
