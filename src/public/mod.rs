//! The public HTTP listener browsers post consent to: `POST /v1/consents`
//! with CookieConsent's own data and a publishable site key. It becomes the
//! same domain decision RecordConsent makes and goes through the same
//! writer; nothing here reads data back.
//!
//! A publishable key is meant to be seen, so what it may do is bounded
//! here: one site, from its allowed origins, within rate limits. The rules
//! a browser needs (CORS with credentials, sendBeacon's `text/plain` body)
//! are in [`cors`]; the body's fields in [`payload`]; the limits in
//! [`limit`]; who the client is in [`client`].

mod client;
mod cors;
pub mod limit;
pub mod payload;
mod reply;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, State},
    http::{HeaderMap, Uri, header},
    response::{IntoResponse, Response},
    routing::post,
    serve::ListenerExt,
};
use tokio::sync::watch;

use crate::{
    config::{PublicConfig, setting_name},
    domain::{
        auth::{ApiKey, Origin, SiteKey},
        clock::Clock,
        receipt,
    },
    key_cache::KeyCache,
    store::{ConsentWriter, Store},
};
use limit::{Limiter, Limits, Network, Rate};
use reply::Refusal;

/// The most a body may hold: a CookieConsent payload is well under 2 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The header a page sends its publishable key in; sendBeacon cannot set
/// headers, so the `key` query parameter does the same.
pub const KEY_HEADER: &str = "x-consentd-key";

/// How the public listener is set up.
#[derive(Clone)]
pub struct PublicSettings {
    /// Bound already, so a test (or `serve`) knows the address before the
    /// server runs; shared so the settings stay cheap to clone.
    pub listener: Arc<std::net::TcpListener>,
    /// Proxies whose `X-Forwarded-For` entries are trusted.
    pub trusted_hops: usize,
    pub key_rate: Rate,
    pub network_rate: Rate,
}

impl PublicSettings {
    /// The settings `consentd serve` was given, with the listener bound;
    /// `None` when the public listener is off.
    pub fn from_config(config: &PublicConfig) -> Result<Option<Self>, String> {
        let Some(addr) = config.public_listen else {
            return Ok(None);
        };
        let listener = std::net::TcpListener::bind(addr).map_err(|error| {
            format!(
                "{}: cannot listen on {addr}: {error}",
                setting_name("public-listen")
            )
        })?;
        Ok(Some(Self {
            listener: Arc::new(listener),
            trusted_hops: config.public_trusted_hops,
            key_rate: Rate {
                burst: config.public_key_rate as u32,
                period: Duration::from_secs(1),
            },
            network_rate: Rate {
                burst: config.public_network_rate as u32,
                period: Duration::from_secs(60),
            },
        }))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// What the handlers share.
struct Public {
    store: Store,
    writer: ConsentWriter,
    clock: Clock,
    /// Publishable keys, trusted for `key_cache_ttl` as the gRPC side
    /// trusts secret keys: a revocation takes effect within it.
    keys: KeyCache<SiteKey>,
    limits: Limits,
    trusted_hops: usize,
}

/// Serves the public listener until `stopped` turns true, then finishes
/// the requests in flight and returns, dropping its writer handle so the
/// writers can drain.
pub async fn serve(
    settings: PublicSettings,
    store: Store,
    writer: ConsentWriter,
    clock: Clock,
    key_cache_ttl: Duration,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = settings.listener.try_clone()?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!(listen = %listener.local_addr()?, "serving the public listener");
    let state = Arc::new(Public {
        store,
        writer,
        clock,
        keys: KeyCache::new(key_cache_ttl, 10_000),
        limits: Limits {
            per_key: Limiter::new(settings.key_rate),
            per_network: Limiter::new(settings.network_rate),
        },
        trusted_hops: settings.trusted_hops,
    });
    let app = Router::new()
        .route("/v1/consents", post(record).options(preflight))
        .fallback(|| async { Refusal::NotFound })
        .with_state(state);
    let listener = listener.tap_io(|tcp| {
        // A small answer should not wait for the client's delayed ACK.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    })
    .await
}

/// `OPTIONS /v1/consents`: the preflight of a `fetch` with a JSON body.
/// The key comes from the query (a preflight carries no header values), and
/// only its allowed origins get an answer a browser accepts.
async fn preflight(State(public): State<Arc<Public>>, uri: Uri, headers: HeaderMap) -> Response {
    match allowed_origin(&public, &uri, &headers).await {
        Ok((_, origin)) => cors::preflight(&origin),
        Err(refusal) => refusal.into_response(),
    }
}

/// `POST /v1/consents`: one decision, stored once per consent id and last
/// consent time.
async fn record(
    State(public): State<Arc<Public>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (key, origin) = match allowed_origin(&public, &uri, &headers).await {
        Ok(allowed) => allowed,
        Err(refusal) => return refusal.into_response(),
    };
    let answer = accept(&public, &key, peer, &headers, body).await;
    cors::allow(answer.into_response(), &origin)
}

/// The key of a request and its origin, when the key is a live publishable
/// key and the origin one it allows.
async fn allowed_origin(
    public: &Public,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(SiteKey, Origin), Refusal> {
    let presented = client::presented_key(uri, headers).ok_or(Refusal::NoKey)?;
    let key = public
        .site_key(&ApiKey::presented(&presented))
        .await?
        .ok_or(Refusal::NoKey)?;
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| Origin::parse(value).ok())
        .filter(|origin| key.allows(origin))
        .ok_or(Refusal::Origin)?;
    Ok((key, origin))
}

async fn accept(
    public: &Public,
    key: &SiteKey,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let ip = client::address(peer.ip(), headers, public.trusted_hops);
    let now = Instant::now();
    public
        .limits
        .per_key
        .take(&key.key_id, now)
        .and_then(|()| public.limits.per_network.take(&Network::of(ip), now))
        .map_err(Refusal::Limited)?;
    client::check_content_type(headers)?;
    let body: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Refusal::too_large())?;
    let visit = payload::Visit {
        site_id: key.site_id.clone(),
        ip: Some(ip),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
        gpc: headers
            .get("sec-gpc")
            .is_some_and(|value| value.as_bytes() == b"1"),
        now: (public.clock)(),
    };
    let decision = payload::decision(&body, visit).map_err(Refusal::Invalid)?;
    // Kept to word what the site's declaration may refuse.
    let choices = decision.choices.clone();
    let recorded = match public.writer.record(key.tenant_id, decision).await {
        Err(crate::store::Error::Declined(problems)) => {
            return Err(Refusal::Invalid(payload::declined(problems, &choices)));
        }
        recorded => recorded?,
    };
    let receipt = recorded
        .receipt
        .or_else(|| receipt::receipt(key.tenant_id, &recorded.record));
    Ok(reply::recorded(&recorded.record, receipt).into_response())
}

impl Public {
    async fn site_key(&self, presented: &ApiKey) -> Result<Option<SiteKey>, Refusal> {
        let digest = presented.digest();
        if let Some(key) = self.keys.get(&digest, Instant::now()) {
            return Ok(Some(key));
        }
        let key = self.store.authenticate_site_key(presented).await?;
        if let Some(key) = &key {
            self.keys.insert(digest, key.clone(), Instant::now());
        }
        Ok(key)
    }
}

impl From<crate::store::Error> for Refusal {
    fn from(error: crate::store::Error) -> Self {
        match error {
            crate::store::Error::Unavailable(_) => Refusal::Unavailable,
            // `accept` words these under the page's fields; this is the
            // fallback of a call that could not.
            crate::store::Error::Declined(_) => {
                Refusal::Invalid(crate::domain::validation::ValidationError {
                    violations: vec![crate::domain::validation::FieldViolation {
                        field: "body".into(),
                        description: "disagrees with the site's declared categories".into(),
                    }],
                })
            }
            error => {
                tracing::error!(error = %crate::telemetry::error_chain(&error), "public listener");
                Refusal::Internal
            }
        }
    }
}
