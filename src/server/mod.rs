//! Assembles the gRPC server: health and reflection without a key, our
//! services behind API keys, limits on every call, optional TLS,
//! background workers (database health, preference expiry, consent
//! request-id expiry, the log's sequencer, retention), and a drain on
//! shutdown.
//!
//! Health (`grpc.health.v1`) answers two questions under different names:
//! - readiness, on the empty name and on each `consent.v1` service:
//!   SERVING while PostgreSQL answers, NOT_SERVING while it does not and
//!   from the moment shutdown begins. Kubernetes' readinessProbe uses
//!   `grpc: {port: 50051, service: ""}`.
//! - liveness, on the name [`LIVENESS`]: SERVING for as long as the process
//!   answers at all, whatever PostgreSQL does, so a database outage never
//!   restarts pods. The startupProbe and livenessProbe use
//!   `grpc: {port: 50051, service: liveness}`.

mod incoming;
pub mod limits;
mod sequencer;
mod settings;
pub mod shutdown;
pub mod tls;
mod workers;

use std::{future::Future, pin::pin, sync::Arc};

use tokio::{net::TcpListener, sync::watch, time::Instant};
use tonic::transport::Server;
use tonic_health::{ServingStatus, server::HealthReporter};

use self::{incoming::Incoming, limits::LimitsLayer, tls::ReloadingTls};
pub use self::{
    limits::Limits,
    sequencer::LogSettings,
    settings::{ServerSettings, site_defaults},
    shutdown::Drain,
    tls::TlsFiles,
};
use crate::{
    api::{
        AdminApi, Authenticator, ConsentApi, PreferenceApi,
        proto::{
            admin_service_server::AdminServiceServer, consent_service_server::ConsentServiceServer,
            preference_service_server::PreferenceServiceServer,
        },
    },
    metrics::metrics,
    store::{ConsentWriter, Store},
    telemetry::RpcLayer,
};

/// The health name of liveness.
pub const LIVENESS: &str = "liveness";

/// Health names of readiness: the whole server ("") and each service.
const HEALTH_SERVICES: [&str; 4] = [
    "",
    "consent.v1.ConsentService",
    "consent.v1.PreferenceService",
    "consent.v1.AdminService",
];

/// Serves on `listener` until `shutdown` completes, then drains as
/// [`shutdown`] describes and returns.
pub async fn run(
    listener: TcpListener,
    store: Store,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let tls = settings.tls.clone().map(ReloadingTls::load).transpose()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::NotServing).await;
    health
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;

    let (stop_workers, stopped) = watch::channel(false);
    let context = Arc::new(settings.api.clone());
    let workers = workers::spawn(&store, &health, &settings, &context, stopped);

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::api::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().expect("our descriptors are valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("our descriptors are valid");

    let auth = Authenticator::new(store.clone(), context.auth_cache_ttl);
    let (writer, writer_tasks) = ConsentWriter::start(
        &store,
        context.defaults,
        context.sealing.clone(),
        settings.writer,
    )
    .await
    .map_err(|error| format!("cannot start the RecordConsent writers: {error}"))?;
    let _pool_metrics = metrics().watch_pool({
        let store = store.clone();
        move || store.pool_status()
    });
    let _queue_metrics = metrics().watch_writer_queue(writer.queue_depth());

    let (delay, drain_timeout) = (settings.drain.delay, settings.drain.timeout);
    let (draining, drain_started) = tokio::sync::oneshot::channel();
    // The public listener stops accepting when the gRPC one does.
    let (stop_public, public_stopped) = watch::channel(false);
    let public = settings.public.map(|public| {
        let (store, clock) = (store.clone(), context.clock.clone());
        let serve = crate::public::serve(
            public,
            store,
            writer.clone(),
            clock,
            context.auth_cache_ttl,
            public_stopped,
        );
        tokio::spawn(serve)
    });
    let drain_health = health.clone();
    let announce = async move {
        shutdown.await;
        tracing::info!(
            delay = %humantime::format_duration(delay),
            "shutting down: NOT_SERVING, serving on while endpoints drain"
        );
        let _ = stop_workers.send(true);
        set_health(&drain_health, ServingStatus::NotServing).await;
        tokio::time::sleep(delay).await;
        tracing::info!("no longer accepting; finishing the calls in flight");
        let _ = stop_public.send(true);
        let _ = draining.send(Instant::now());
    };

    let limits = &settings.limits;
    let max = (limits.max_request_bytes, limits.max_response_bytes);
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout));
    if let Some(age) = limits.max_connection_age {
        builder = builder.max_connection_age(age);
    }
    let served = builder
        // Outermost, so a call refused for load is counted too.
        .layer(RpcLayer::new(&[
            crate::api::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ]))
        .layer(LimitsLayer::new(limits))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            ConsentServiceServer::new(ConsentApi::new(
                store.clone(),
                writer,
                auth.clone(),
                context.clone(),
            ))
            .max_decoding_message_size(max.0)
            .max_encoding_message_size(max.1),
        )
        .add_service(
            PreferenceServiceServer::new(PreferenceApi::new(
                store.clone(),
                auth.clone(),
                context.clone(),
            ))
            .max_decoding_message_size(max.0)
            .max_encoding_message_size(max.1),
        )
        .add_service(
            AdminServiceServer::new(AdminApi::new(store, auth, context))
                .max_decoding_message_size(max.0)
                .max_encoding_message_size(max.1),
        )
        .serve_with_incoming_shutdown(Incoming::new(listener, tls), announce);

    // Serving ends once every connection has closed. The drain budget
    // starts when accepting stops and covers the queued writes too.
    let mut served = pin!(served);
    let served = tokio::select! {
        served = &mut served => {
            finish_writes(public, writer_tasks).await;
            served
        }
        Ok(started) = drain_started => {
            let drained = async {
                let served = (&mut served).await;
                // In-flight calls are done; what is still queued is written
                // and answered first, so every acknowledged record is
                // committed.
                finish_writes(public, writer_tasks).await;
                served
            };
            match tokio::time::timeout_at(started + drain_timeout, drained).await {
                Ok(served) => served,
                Err(_) => {
                    tracing::warn!(
                        timeout = %humantime::format_duration(drain_timeout),
                        "drain timeout: calls still in flight and unwritten records are cut off"
                    );
                    Ok(())
                }
            }
        }
    };
    for worker in workers {
        worker.abort();
    }
    Ok(served?)
}

/// Waits for the public listener, which holds a writer handle too, then for
/// the writers to drain.
async fn finish_writes(
    public: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    writer_tasks: crate::store::WriterTasks,
) {
    if let Some(public) = public
        && let Ok(Err(error)) = public.await
    {
        tracing::error!(%error, "the public listener failed");
    }
    writer_tasks.finish().await;
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICES {
        health.set_service_status(service, status).await;
    }
}
