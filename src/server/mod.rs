//! Assembles the gRPC server: health and reflection without a key, our
//! services behind API keys, limits on every call, optional TLS,
//! background workers (database health, preference expiry, consent
//! request-id expiry, retention), and a drain on shutdown.
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
pub mod shutdown;
pub mod tls;

use std::{
    future::Future,
    path::PathBuf,
    pin::pin,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use tokio::{net::TcpListener, sync::watch, time::Instant};
use tonic::transport::Server;
use tonic_health::{ServingStatus, server::HealthReporter};

use self::{incoming::Incoming, limits::LimitsLayer, tls::ReloadingTls};
pub use self::{limits::Limits, shutdown::Drain, tls::TlsFiles};
use crate::{
    api::{
        AdminApi, ApiContext, Authenticator, ConsentApi, PreferenceApi,
        proto::{
            admin_service_server::AdminServiceServer, consent_service_server::ConsentServiceServer,
            preference_service_server::PreferenceServiceServer,
        },
    },
    config::{DefaultsConfig, ServeConfig, setting_name},
    domain::{
        clock::system_clock,
        erasure::AuditKey,
        keyring::{IpKeyring, Sealing, SigningKeyring},
        site::ServerDefaults,
    },
    metrics::metrics,
    public::PublicSettings,
    store::{ConsentWriter, Forgotten, Store, WriterConfig},
    telemetry::RpcLayer,
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
}

/// The health name of liveness.
pub const LIVENESS: &str = "liveness";

/// Health names of readiness: the whole server ("") and each service.
const HEALTH_SERVICES: [&str; 4] = [
    "",
    "consent.v1.ConsentService",
    "consent.v1.PreferenceService",
    "consent.v1.AdminService",
];

/// Items per transaction of a background worker: bounds how long a batch
/// holds its locks.
const WORKER_BATCH: i64 = 500;

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
    let context = Arc::new(settings.api);
    let workers = [
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
    ];

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

/// Counts a worker's batch: `None` rows when another replica had the turn.
fn count_run(worker: &'static str, outcome: Result<Option<u64>, &crate::store::Error>) {
    match outcome {
        Ok(Some(rows)) => metrics().worker_run(worker, "ok", rows),
        Ok(None) => metrics().worker_run(worker, "skipped", 0),
        Err(_) => metrics().worker_run(worker, "error", 0),
    }
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
async fn repeat<F, Fut>(interval: Duration, mut stopped: watch::Receiver<bool>, batch: F)
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
        Ok(Self {
            api: ApiContext {
                audit_key: AuditKey::new(config.audit_key.as_bytes())
                    .map_err(|e| format!("{}: {e}", setting_name("audit-key")))?,
                defaults: site_defaults(&config.defaults),
                sealing: Sealing { signing, ip_keys },
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
