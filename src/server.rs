//! Assembles the gRPC server: health and reflection without a key, our
//! services behind API keys, a database watcher driving health, and a drain
//! on shutdown.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    api::{
        ConsentApi, PreferenceApi,
        proto::{
            consent_service_server::ConsentServiceServer,
            preference_service_server::PreferenceServiceServer,
        },
    },
    domain::erasure::AuditKey,
    store::Store,
};

/// What the server needs beyond the store and the socket.
#[derive(Clone)]
pub struct ServerSettings {
    pub consent_lifetime: Duration,
    pub audit_key: AuditKey,
    pub health_check_interval: Duration,
    /// How often expired preference selections are removed.
    pub expiry_interval: Duration,
    /// The time the expiry worker goes by; tests move it.
    pub clock: Clock,
}

/// Where background work reads the time.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// Selections expired per transaction: bounds how long a batch holds locks.
const EXPIRY_BATCH: i64 = 500;

/// Health names reported: the whole server ("") and each service.
const HEALTH_SERVICES: [&str; 3] = [
    "",
    "consent.v1.ConsentService",
    "consent.v1.PreferenceService",
];

/// Serves on `listener` until `shutdown` completes, then reports NOT_SERVING,
/// stops accepting, and returns once in-flight calls have finished.
pub async fn run(
    listener: TcpListener,
    store: Store,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::NotServing).await;

    let (stop_watching, stopped) = watch::channel(false);
    let watcher = tokio::spawn(watch_database(
        store.clone(),
        health.clone(),
        settings.health_check_interval,
        stopped.clone(),
    ));
    let expirer = tokio::spawn(expire_preferences(
        store.clone(),
        settings.clock.clone(),
        settings.expiry_interval,
        stopped,
    ));

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::api::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().expect("our descriptors are valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("our descriptors are valid");

    let consent = ConsentApi::new(
        store.clone(),
        settings.audit_key.clone(),
        settings.consent_lifetime,
    );
    let preference = PreferenceApi::new(store, settings.audit_key);

    let drain_health = health.clone();
    let drain = async move {
        shutdown.await;
        tracing::info!("shutting down: NOT_SERVING, draining in-flight calls");
        let _ = stop_watching.send(true);
        set_health(&drain_health, ServingStatus::NotServing).await;
    };

    let served = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ConsentServiceServer::new(consent))
        .add_service(PreferenceServiceServer::new(preference))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), drain)
        .await;
    watcher.abort();
    expirer.abort();
    served
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICES {
        health.set_service_status(service, status).await;
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
    loop {
        let answered = matches!(
            tokio::time::timeout(interval.max(Duration::from_secs(1)), store.ping()).await,
            Ok(Ok(()))
        );
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

/// Removes expired preference selections, writing their EXPIRED events, in
/// batches until none is due, then waits for the next round. Every replica
/// runs this; the store makes each expiry happen once.
async fn expire_preferences(
    store: Store,
    clock: Clock,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        loop {
            match store.expire_preferences(clock(), EXPIRY_BATCH).await {
                Ok(expired) => {
                    if expired > 0 {
                        tracing::info!(expired, "expired preference selections");
                    }
                    if expired < EXPIRY_BATCH {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %crate::api::error_chain(&error), "preference expiry failed");
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
