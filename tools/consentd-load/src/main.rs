//! A load generator for consentd, in the spirit of ghz: one RPC, a number of
//! concurrent callers, a duration or a count; prints throughput, latency
//! percentiles and errors by status code.
//!
//!   consentd-load record --key KEY --concurrency 64 --duration 10
//!   consentd-load export --key KEY --site bench
//!   consentd-load list   --key KEY --site bench --page-size 1000 --pages 1000
//!   consentd-load erase  --key KEY --site bench --subject subject-42
//!   consentd-load public --public-addr http://127.0.0.1:8080 --site-key cdp_... --origin https://shop.example
//!   consentd-load log-fixture --database-url URL --tenant bench-log --leaves 1000000
//!   consentd-load log-proofs --key KEY --count 1000
//!   consentd-load log-full-read --database-url URL --tenant bench-log --count 5

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use consentd::api::proto::{
    EraseConsentsRequest, ExportConsentsRequest, ListConsentsRequest, RecordConsentRequest,
    consent_service_client::ConsentServiceClient,
};
use http_body_util::{BodyExt, Full};
use tonic::{Request, Status, metadata::MetadataValue, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[path = "../../../tests/fixtures/decision.rs"]
mod fixture;
mod log;

#[derive(Parser)]
struct Cli {
    /// consentd's address.
    #[arg(long, default_value = "http://127.0.0.1:50051", global = true)]
    addr: String,
    /// An API key with the scopes the RPC needs.
    #[arg(long, env = "CONSENTD_KEY", global = true, default_value = "")]
    key: String,
    #[command(subcommand)]
    rpc: Rpc,
}

#[derive(Subcommand)]
enum Rpc {
    /// RecordConsent with distinct subjects.
    Record {
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Seconds to run; ignored when --count is given.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Total calls to make instead of running for a duration.
        #[arg(long)]
        count: Option<u64>,
        #[arg(long, default_value = "bench")]
        site: String,
    },
    /// grpc.health.v1.Health/Check: the cost of a call that touches no
    /// database, the ceiling the transport alone allows.
    Health {
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// One ExportConsents of a whole site.
    Export {
        #[arg(long, default_value = "bench")]
        site: String,
    },
    /// ListConsents following next_page_token, timing every page.
    List {
        #[arg(long, default_value = "bench")]
        site: String,
        #[arg(long, default_value_t = 1000)]
        page_size: i32,
        /// Pages to follow.
        #[arg(long, default_value_t = 100)]
        pages: usize,
    },
    /// POST /v1/consents on the public listener, as CookieConsent's
    /// logConsent() sends it with sendBeacon (text/plain, the key in the
    /// query), each caller on a keep-alive HTTP/1.1 connection of its own
    /// as browsers are, with distinct consent ids.
    Public {
        /// The public listener's address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        public_addr: String,
        /// A publishable key for the site the records go to.
        #[arg(long, env = "CONSENTD_SITE_KEY")]
        site_key: String,
        /// An origin the key allows.
        #[arg(long)]
        origin: String,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// Builds a tenant's transparency log of `leaves` leaves directly in
    /// PostgreSQL (the tenant must exist and have no log); the running
    /// sequencer then signs its checkpoint.
    LogFixture {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value = "bench-log")]
        tenant: String,
        #[arg(long, default_value_t = 1_000_000)]
        leaves: u64,
    },
    /// GetCheckpoint, GetInclusionProof (random leaves) and
    /// GetConsistencyProof (random old sizes) against the latest
    /// checkpoint, `count` calls each, one at a time.
    LogProofs {
        #[arg(long, default_value_t = 1000)]
        count: u64,
    },
    /// The inclusion proof as consentd made it before the stored blocks:
    /// every leaf hash read, then the proof computed.
    LogFullRead {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value = "bench-log")]
        tenant: String,
        #[arg(long, default_value_t = 5)]
        count: u64,
    },
    /// One EraseConsents of a subject.
    Erase {
        #[arg(long, default_value = "bench")]
        site: String,
        #[arg(long)]
        subject: String,
    },
}

/// A failed call's status code, as the tally counts it.
fn code(status: Status) -> String {
    format!("{:?}", status.code())
}

fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = MetadataValue::try_from(key) {
        request.metadata_mut().insert("x-api-key", value);
    }
    request
}

/// The tests' decision, with a subject and an IP of its own per call.
fn decision(site: &str, n: u64) -> RecordConsentRequest {
    RecordConsentRequest {
        ip_address: format!("203.0.{}.{}", (n / 256) % 256, n % 256),
        ..fixture::decision(site, &format!("load-{}-{n}", std::process::id()))
    }
}

/// What CookieConsent's logConsent() posts, as the fixture's decision
/// (same categories and services, user agent and page), for a consent id
/// of its own per call.
fn cookieconsent_body(n: u64) -> String {
    let site = fixture::decision("bench", "");
    format!(
        concat!(
            r#"{{"consentId":"{:08x}-0000-4000-8000-{:012x}","acceptType":"custom","#,
            r#""acceptedCategories":["necessary","analytics"],"rejectedCategories":["marketing"],"#,
            r#""acceptedServices":{{"analytics":["matomo"]}},"rejectedServices":{{"marketing":["google-ads"]}},"#,
            r#""revision":"{}","consentTimestamp":"2026-01-01T10:00:00.000Z","#,
            r#""lastConsentTimestamp":"2026-01-01T10:00:00.000Z","language":"de-DE","pageUrl":"{}"}}"#
        ),
        std::process::id(),
        n,
        site.banner_revision,
        site.page_url,
    )
}

/// Latencies and errors of one run.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
    }

    fn report(mut self, what: &str, elapsed: Duration) {
        self.latencies.sort_unstable();
        let ok = self.latencies.len();
        let pct = |p: f64| {
            let i = ((ok as f64 * p).ceil() as usize).clamp(1, ok.max(1)) - 1;
            self.latencies
                .get(i)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{what}: ok={ok} errors={:?} elapsed_s={:.2} rps={:.0} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2}",
            self.errors,
            elapsed.as_secs_f64(),
            ok as f64 / elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(1.0),
        );
    }
}

/// Runs `concurrency` callers, each making one call after another until the
/// duration is up or `count` calls were made, and prints the tally.
async fn drive<Call, Answer>(
    what: &str,
    concurrency: usize,
    duration: u64,
    count: Option<u64>,
    call: Call,
) -> Result<(), tokio::task::JoinError>
where
    Call: Fn(u64) -> Answer + Clone + Send + 'static,
    Answer: Future<Output = Result<(), String>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(duration);
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (call, issued) = (call.clone(), issued.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if count.map_or(Instant::now() >= deadline, |count| n >= count) {
                        return tally;
                    }
                    let sent = Instant::now();
                    match call(n).await {
                        Ok(()) => tally.latencies.push(sent.elapsed()),
                        Err(code) => *tally.errors.entry(code).or_default() += 1,
                    }
                }
            })
        })
        .collect();
    let mut tally = Tally::default();
    for caller in callers {
        tally.merge(caller.await?);
    }
    tally.report(
        &format!("{what} concurrency={concurrency}"),
        started.elapsed(),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    // These talk to PostgreSQL only.
    match &cli.rpc {
        Rpc::LogFixture {
            database_url,
            tenant,
            leaves,
        } => return log::fixture(database_url, tenant, *leaves).await,
        Rpc::LogFullRead {
            database_url,
            tenant,
            count,
        } => return log::full_read(database_url, tenant, *count).await,
        _ => {}
    }
    let channel = Channel::from_shared(cli.addr.clone())?
        .tcp_nodelay(true)
        .connect()
        .await?;
    match cli.rpc {
        Rpc::Record {
            concurrency,
            duration,
            count,
            site,
        } => {
            let client = ConsentServiceClient::new(channel);
            let key = cli.key.clone();
            drive("record", concurrency, duration, count, move |n| {
                let (mut client, request) = (client.clone(), with_key(decision(&site, n), &key));
                async move { client.record_consent(request).await.map(drop).map_err(code) }
            })
            .await?;
        }
        Rpc::Health {
            concurrency,
            duration,
        } => {
            let client = HealthClient::new(channel);
            drive("health", concurrency, duration, None, move |_| {
                let mut client = client.clone();
                async move {
                    client
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .map(drop)
                        .map_err(code)
                }
            })
            .await?;
        }
        Rpc::Public {
            public_addr,
            site_key,
            origin,
            concurrency,
            duration,
        } => {
            let uri: hyper::Uri = format!("{public_addr}/v1/consents?key={site_key}").parse()?;
            let user_agent = fixture::decision("bench", "").user_agent;
            let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
            connector.set_nodelay(true);
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_max_idle_per_host(concurrency)
                    .build::<_, Full<Bytes>>(connector);
            drive("public", concurrency, duration, None, move |n| {
                let request = hyper::Request::post(uri.clone())
                    .header("content-type", "text/plain;charset=UTF-8")
                    .header("origin", &origin)
                    .header("user-agent", &user_agent)
                    .body(Full::new(Bytes::from(cookieconsent_body(n))));
                let client = client.clone();
                async move {
                    let response = client
                        .request(request.map_err(|e| e.to_string())?)
                        .await
                        .map_err(|e| format!("connection: {e}"))?;
                    let status = response.status();
                    // The answer is read whole, as a page's fetch would.
                    response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    if status.is_success() {
                        Ok(())
                    } else {
                        Err(status.as_u16().to_string())
                    }
                }
            })
            .await?;
        }
        Rpc::Export { site } => {
            let mut client = ConsentServiceClient::new(channel).max_decoding_message_size(64 << 20);
            let started = Instant::now();
            let mut stream = client
                .export_consents(with_key(
                    ExportConsentsRequest {
                        site_id: site,
                        filter: None,
                        view: 0,
                        page_token: String::new(),
                    },
                    &cli.key,
                ))
                .await?
                .into_inner();
            let (mut records, mut messages) = (0u64, 0u64);
            while let Some(message) = stream.message().await? {
                records += message.records.len() as u64;
                messages += 1;
            }
            let elapsed = started.elapsed();
            println!(
                "export: records={records} messages={messages} elapsed_s={:.2} records_per_s={:.0}",
                elapsed.as_secs_f64(),
                records as f64 / elapsed.as_secs_f64()
            );
        }
        Rpc::List {
            site,
            page_size,
            pages,
        } => {
            let mut client = ConsentServiceClient::new(channel).max_decoding_message_size(64 << 20);
            let mut latencies = Vec::with_capacity(pages);
            let mut token = String::new();
            for _ in 0..pages {
                let request = ListConsentsRequest {
                    site_id: site.clone(),
                    filter: None,
                    view: 0,
                    page_size,
                    page_token: token,
                };
                let sent = Instant::now();
                let page = client
                    .list_consents(with_key(request, &cli.key))
                    .await?
                    .into_inner();
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                token = page.next_page_token;
                if token.is_empty() {
                    break;
                }
            }
            let window = 20.min(latencies.len());
            let median = |slice: &[f64]| {
                let mut sorted = slice.to_vec();
                sorted.sort_by(f64::total_cmp);
                sorted.get(sorted.len() / 2).copied().unwrap_or_default()
            };
            println!(
                "list: pages={} page_size={page_size} first_{window}_pages_p50_ms={:.2} last_{window}_pages_p50_ms={:.2} depth_at_end={}",
                latencies.len(),
                median(&latencies[..window]),
                median(&latencies[latencies.len() - window..]),
                latencies.len() * page_size as usize,
            );
        }
        Rpc::LogProofs { count } => log::proofs(channel, &cli.key, count).await?,
        Rpc::LogFixture { .. } | Rpc::LogFullRead { .. } => unreachable!("answered above"),
        Rpc::Erase { site, subject } => {
            let mut client = ConsentServiceClient::new(channel);
            let started = Instant::now();
            let erased = client
                .erase_consents(with_key(
                    EraseConsentsRequest {
                        site_id: site,
                        subject_id: subject,
                        user_id: String::new(),
                    },
                    &cli.key,
                ))
                .await?
                .into_inner();
            println!(
                "erase: erased={} elapsed_ms={:.2}",
                erased.erased_count,
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
    }
    Ok(())
}
