//! Spawns consentd on a fresh database of the test cluster, behind a real
//! TCP socket, and builds tonic clients for it.

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use consentd::{
    api::{
        ApiContext,
        proto::{
            ConsentRecord, ExportConsentsRequest, GetConsentStatusRequest, ListConsentsRequest,
            ListSigningKeysRequest, RecordConsentRequest, UpdateSiteSettingsRequest,
            admin_service_client::AdminServiceClient, consent_service_client::ConsentServiceClient,
            preference_service_client::PreferenceServiceClient,
        },
    },
    config::parse_duration,
    domain::{
        auth::Scope,
        clock::system_clock,
        erasure::AuditKey,
        keyring::{IpKeyring, Sealing, SigningKeyring},
        site::ServerDefaults,
        tlog::CheckpointPolicy,
    },
    server::{self, ServerSettings},
    store::{SequencerConfig, Store, WriterConfig},
};
use futures::{StreamExt, stream};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};
use tonic_types::StatusExt;
use uuid::Uuid;

#[path = "../fixtures/decision.rs"]
mod fixture;
pub use fixture::decision;

pub const AUDIT_KEY: &[u8] = b"test-audit-key-that-is-long-enough-0123456789";
/// Small, so a leaked connection shows up as a failing call.
pub const POOL_SIZE: usize = 4;

/// The cluster scripts/test started for this run.
pub fn cluster_url() -> String {
    std::env::var("CONSENTD_TEST_DATABASE_URL").expect(
        "CONSENTD_TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts Postgres",
    )
}

/// Receipt signing keys of the tests (32 bytes each, base64).
pub const SIGNING_KEYS: &str = "sig-1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
/// IP data keys of the tests.
pub const IP_KEYS: &str = "ip-1=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

pub fn settings() -> ServerSettings {
    ServerSettings {
        api: ApiContext {
            audit_key: AuditKey::new(AUDIT_KEY).unwrap(),
            // As `consentd serve` defaults.
            defaults: ServerDefaults {
                consent_lifetime: parse_duration("365d").unwrap(),
                retention: parse_duration("1095d").unwrap(),
            },
            sealing: Sealing {
                signing: SigningKeyring::parse(SIGNING_KEYS).unwrap(),
                ip_keys: Some(IpKeyring::parse(IP_KEYS).unwrap()),
                // The log is on (below): writers tag its leaves.
                leaf_tags: Some(consentd::domain::tlog::LeafTags::new(
                    &AuditKey::new(AUDIT_KEY).unwrap(),
                )),
            },
            clock: system_clock(),
            // Every call asks the database, so a revocation shows at once;
            // the cache has its own test.
            auth_cache_ttl: Duration::ZERO,
        },
        health_check_interval: Duration::from_millis(100),
        expiry_interval: Duration::from_millis(50),
        retention_interval: Duration::from_millis(50),
        // As `consentd serve` defaults.
        request_id_ttl: parse_duration("24h").unwrap(),
        // As `consentd serve` defaults: batches from several writers.
        writer: WriterConfig {
            writers: 2,
            max_batch: 256,
        },
        limits: server::Limits::default(),
        tls: None,
        // Tests stop servers often; none waits for a load balancer.
        drain: server::Drain {
            delay: Duration::ZERO,
            timeout: Duration::from_secs(20),
        },
        public: None,
        // Sequenced and checkpointed at once, so tests need not wait long.
        log: server::LogSettings {
            enabled: true,
            interval: Duration::from_millis(50),
            sequencer: SequencerConfig {
                batch: 500,
                checkpoints: CheckpointPolicy {
                    interval: Duration::from_millis(100),
                    leaves: 10_000,
                },
                origin_prefix: "consentd.test/log".into(),
            },
        },
    }
}

/// A clock the test moves by hand; consentd reads it for "now".
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<SystemTime>>);

impl TestClock {
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

/// The test settings, with consentd's clock in the test's hands (starting
/// at the real time).
pub fn settings_with_clock() -> (ServerSettings, TestClock) {
    let clock = TestClock(Arc::new(Mutex::new(SystemTime::now())));
    let mut settings = settings();
    let now = clock.0.clone();
    settings.api.clock = Arc::new(move || *now.lock().unwrap());
    (settings, clock)
}

/// Site "short": its records expire a day after they are recorded and are
/// deleted a day after that.
pub fn short_lived_site() -> UpdateSiteSettingsRequest {
    let day = prost_types::Duration {
        seconds: 86_400,
        nanos: 0,
    };
    UpdateSiteSettingsRequest {
        site_id: "short".into(),
        consent_lifetime: Some(day),
        retention: Some(day),
        ..Default::default()
    }
}

/// ListConsents of site "shop": the first `page_size` records (0: as
/// many as the default).
pub fn shop_list(page_size: i32) -> ListConsentsRequest {
    ListConsentsRequest {
        site_id: "shop".into(),
        page_size,
        ..Default::default()
    }
}

/// ExportConsents of site "shop": every record, in the basic view.
pub fn shop_export() -> ExportConsentsRequest {
    ExportConsentsRequest {
        site_id: "shop".into(),
        ..Default::default()
    }
}

/// A site with minimal logging (detailed logging off).
pub fn minimal_site(site_id: &str) -> UpdateSiteSettingsRequest {
    UpdateSiteSettingsRequest {
        site_id: site_id.into(),
        detailed_logging: Some(false),
        ..Default::default()
    }
}

/// Sends the API key with every call.
#[derive(Clone)]
pub struct WithKey(pub Option<MetadataValue<Ascii>>);

impl Interceptor for WithKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert("x-api-key", key.clone());
        }
        Ok(request)
    }
}

pub type ConsentClient = ConsentServiceClient<InterceptedService<Channel, WithKey>>;
pub type PreferenceClient = PreferenceServiceClient<InterceptedService<Channel, WithKey>>;
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, WithKey>>;

pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Store,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl TestApp {
    /// What `consentd` prints for `line` (its arguments split at `|`) against
    /// this app's database; the command must succeed.
    pub fn cli(&self, line: &str) -> String {
        crate::cli::stdout(&crate::cli_limits::consentd_line(&self.database_url, line))
    }

    /// consentd on a new, migrated database of the shared test cluster.
    pub async fn spawn() -> Self {
        Self::spawn_on(&cluster_url()).await
    }

    /// An app, and a key of `tenant` holding every scope.
    pub async fn spawn_with_key(tenant: &str) -> (Self, String) {
        let app = Self::spawn().await;
        let key = app.key(tenant, &Scope::ALL).await;
        (app, key)
    }

    /// consentd on a new, migrated database of the cluster at `cluster_url`.
    pub async fn spawn_on(cluster_url: &str) -> Self {
        Self::spawn_with(cluster_url, settings()).await
    }

    /// consentd with its own settings, on a new database of `cluster_url`.
    pub async fn spawn_with(cluster_url: &str, settings: ServerSettings) -> Self {
        Self::spawn_on_database(fresh_database(cluster_url).await, settings).await
    }

    /// consentd with `settings` on an existing database (migrated here).
    pub async fn spawn_on_database(database_url: String, settings: ServerSettings) -> Self {
        let store = Store::new(&database_url, POOL_SIZE).unwrap();
        store.migrate().await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel();
        let server = tokio::spawn(server::run(listener, store.clone(), settings, async {
            let _ = stop.await;
        }));
        let server = tokio::spawn(async move { server.await.unwrap().unwrap() });
        Self {
            addr,
            store,
            database_url,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A client sending `key` (or no key at all).
    pub async fn client(&self, key: Option<&str>) -> ConsentClient {
        let key = key.map(|key| key.parse().unwrap());
        ConsentServiceClient::with_interceptor(self.channel().await, WithKey(key))
    }

    /// A new key of `tenant` with `scopes`.
    pub async fn key(&self, tenant: &str, scopes: &[Scope]) -> String {
        self.store
            .create_key(tenant, scopes)
            .await
            .unwrap()
            .secret
            .expose()
            .to_string()
    }

    pub async fn preference_client(&self, key: Option<&str>) -> PreferenceClient {
        let key = key.map(|key| key.parse().unwrap());
        PreferenceServiceClient::with_interceptor(self.channel().await, WithKey(key))
    }

    pub async fn admin_client(&self, key: &str) -> AdminClient {
        AdminServiceClient::with_interceptor(
            self.channel().await,
            WithKey(Some(key.parse().unwrap())),
        )
    }

    /// Updates a site's settings with `key` (which holds the admin scope),
    /// then gives a consent client sending the same key.
    pub async fn site_client(&self, key: &str, site: UpdateSiteSettingsRequest) -> ConsentClient {
        self.admin_client(key)
            .await
            .update_site_settings(site)
            .await
            .unwrap();
        self.client(Some(key)).await
    }

    /// A client of `tenant` holding every consent scope.
    pub async fn tenant_client(&self, tenant: &str) -> ConsentClient {
        self.scoped_client(tenant, &Scope::ALL).await
    }

    /// A preference client of `tenant` with a new key holding every scope.
    pub async fn tenant_preference_client(&self, tenant: &str) -> PreferenceClient {
        self.preference_client(Some(&self.key(tenant, &Scope::ALL).await))
            .await
    }

    /// A client of `tenant` with a new key holding `scopes`.
    pub async fn scoped_client(&self, tenant: &str, scopes: &[Scope]) -> ConsentClient {
        let key = self.key(tenant, scopes).await;
        self.client(Some(&key)).await
    }

    /// A plain SQL connection to this app's database, for checking what is
    /// stored.
    pub async fn sql(&self) -> tokio_postgres::Client {
        connect(&self.database_url).await
    }

    /// How many consent records the database holds, every tenant's.
    pub async fn stored_records(&self) -> i64 {
        count(
            &self.sql().await,
            "SELECT count(*) FROM consent_records",
            &[],
        )
        .await
    }

    /// The stored row of `site`'s one record, as text, after asserting that
    /// its `columns` (text) and its encrypted IP are NULL.
    pub async fn row_without(&self, site: &str, columns: &[&str]) -> String {
        let query = format!(
            "SELECT {}, ip_ciphertext IS NULL AS no_ip, t::text AS whole_row \
             FROM consent_records t WHERE site_id = $1",
            columns.join(", ")
        );
        let row = self.sql().await.query_one(&query, &[&site]).await.unwrap();
        for column in columns {
            assert_eq!(row.get::<_, Option<String>>(*column), None, "{column}");
        }
        assert!(row.get::<_, bool>("no_ip"), "the encrypted IP is stored");
        row.get("whole_row")
    }

    /// Holds consent_records in ACCESS EXCLUSIVE mode, in a transaction of
    /// the test's own: every statement on the table waits until `release`.
    pub async fn lock_consent_records(&self) -> TableLock {
        let sql = self.sql().await;
        sql.batch_execute("BEGIN; LOCK TABLE consent_records IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        TableLock(sql)
    }

    /// Stops the server the way SIGTERM does, and waits for it to drain.
    pub async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap();
    }
}

/// A table lock of the test; see [`TestApp::lock_consent_records`].
pub struct TableLock(tokio_postgres::Client);

impl TableLock {
    /// Rolls the locking transaction back.
    pub async fn release(self) {
        self.0.batch_execute("ROLLBACK").await.unwrap();
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// A new, empty database of the cluster at `cluster_url`.
pub async fn fresh_database(cluster_url: &str) -> String {
    let name = format!("test_{}", Uuid::new_v4().simple());
    connect(cluster_url)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (server, _) = cluster_url.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

/// Sorts records the way lists and exports return them: by record time,
/// then id.
pub fn keyset_order(records: &mut [ConsentRecord]) {
    records.sort_by_key(|r| {
        let t = r.record_time.unwrap();
        (t.seconds, t.nanos, r.id.clone())
    });
}

/// The message of a call that must succeed.
pub async fn answer<T>(call: impl Future<Output = Result<tonic::Response<T>, Status>>) -> T {
    call.await.unwrap().into_inner()
}

/// Every message of a server stream that must succeed, in order.
pub async fn streamed<M>(
    call: impl Future<Output = Result<tonic::Response<tonic::Streaming<M>>, Status>>,
) -> Vec<M> {
    let mut stream = answer(call).await;
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        messages.push(message);
    }
    messages
}

/// Records one decision and returns the stored record.
pub async fn recorded(client: &mut ConsentClient, request: RecordConsentRequest) -> ConsentRecord {
    client
        .record_consent(request)
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
}

/// GetConsentStatus of `subject` on `site`: the current record, or the
/// call's error.
pub async fn consent_status(
    client: &mut ConsentClient,
    site: &str,
    subject: &str,
) -> Result<ConsentRecord, Status> {
    let response = client
        .get_consent_status(GetConsentStatusRequest {
            as_of: None,
            site_id: site.into(),
            subject_id: subject.into(),
        })
        .await?;
    Ok(response
        .into_inner()
        .record
        .expect("a status carries its record"))
}

/// The number a `SELECT count(*) …` query returns.
pub async fn count(
    sql: &tokio_postgres::Client,
    query: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> i64 {
    sql.query_one(query, params).await.unwrap().get(0)
}

/// The first column of every row `query` returns.
pub async fn first_column<T>(
    sql: &tokio_postgres::Client,
    query: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<T>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    sql.query(query, params)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Records `count` decisions on `site` (subjects `subject-0`...), with
/// `concurrency` calls in flight, and returns the records.
pub async fn record_many(
    client: &ConsentClient,
    site: &str,
    count: usize,
    concurrency: usize,
) -> Vec<ConsentRecord> {
    stream::iter(0..count)
        .map(|i| {
            let mut client = client.clone();
            let request = decision(site, &format!("subject-{i}"));
            async move { recorded(&mut client, request).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// As [`record_many`], in the order lists and exports return them.
pub async fn record_many_ordered(
    client: &ConsentClient,
    site: &str,
    count: usize,
    concurrency: usize,
) -> Vec<ConsentRecord> {
    let mut records = record_many(client, site, count, concurrency).await;
    keyset_order(&mut records);
    records
}

/// The fields a refused call names, after checking it was refused as
/// INVALID_ARGUMENT.
pub fn invalid_fields<T: std::fmt::Debug>(call: Result<T, Status>) -> Vec<String> {
    let status = call.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    violated_fields(&status)
}

/// Inserts `copies` copies of the stored record `record_id` directly in
/// SQL, column by column (far faster than calls): subjects `bulk-1`...,
/// each a microsecond after the one before.
pub async fn copy_record(sql: &tokio_postgres::Client, record_id: &str, copies: i64) {
    let columns: Vec<String> = first_column(
        sql,
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_name = 'consent_records' ORDER BY ordinal_position",
        &[],
    )
    .await;
    let values: Vec<String> = columns
        .iter()
        .map(|column| match column.as_str() {
            "record_id" => "gen_random_uuid()".into(),
            "subject_id" => "'bulk-' || g.i".into(),
            "record_time" => "c.record_time + g.i * interval '1 microsecond'".into(),
            other => format!("c.{other}"),
        })
        .collect();
    let fill = format!(
        "INSERT INTO consent_records ({}) SELECT {} \
         FROM consent_records c, generate_series(1, $2::bigint) AS g (i) \
         WHERE c.record_id = $1::text::uuid",
        columns.join(", "),
        values.join(", ")
    );
    sql.execute(&fill, &[&record_id, &copies]).await.unwrap();
}

/// The fields a BadRequest names, in order.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A PostgreSQL cluster of a test's own, which the test may stop and start.
pub struct OwnCluster {
    dir: PathBuf,
    pub url: String,
}

impl OwnCluster {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("consentd-own-{}", Uuid::new_v4().simple()));
        let url = pg_script(&["start", dir.to_str().unwrap(), "--fast"]);
        Self { dir, url }
    }

    pub fn stop(&self) {
        pg_script(&["stop", self.dir.to_str().unwrap()]);
    }

    /// Kills the postmaster with SIGKILL, as a crash would, and waits until
    /// every process of the cluster has exited.
    pub fn crash(&self) {
        let pid_file = self.dir.join("data/postmaster.pid");
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut processes = children(pid);
        processes.push(pid);
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let started = std::time::Instant::now();
        while !processes.iter().all(|&p| exited(p)) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the cluster's processes outlived its postmaster"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Without an init that reaps orphans (as in some containers), the
        // killed postmaster stays a zombie whose PID still answers
        // kill(pid, 0), and PostgreSQL would take its lock file for a live
        // one. A reaped crash leaves stale lock files (of the data directory
        // and the socket), which PostgreSQL ignores; removing them comes to
        // the same.
        let _ = std::fs::remove_file(pid_file);
        for entry in std::fs::read_dir(self.dir.join("socket")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "lock") {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Starts the cluster again, on the same port.
    pub fn restart(&self) {
        let url = pg_script(&["start", self.dir.to_str().unwrap(), "--fast"]);
        assert_eq!(url, self.url);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // After the command name in parentheses: state, then parent.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

/// Whether `pid` has exited (gone, or a zombie nobody reaped).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

fn pg_script(args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg");
    let output = Command::new(script).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "scripts/pg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The public key consentd serves under `key_id`.
pub async fn served_key(client: &mut ConsentClient, key_id: &str) -> [u8; 32] {
    let keys = client
        .list_signing_keys(ListSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    let key = keys
        .iter()
        .find(|k| k.key_id == key_id)
        .expect("the receipt's key is served");
    assert_eq!(key.algorithm, "Ed25519");
    key.public_key.clone().try_into().unwrap()
}

/// Rows by table in every base table of the app's database, or with
/// `tenant`, only that tenant's rows in the tables that have a
/// `tenant_id`: tables added later are counted without a change here.
pub async fn rows_by_table(
    app: &TestApp,
    tenant: Option<Uuid>,
) -> std::collections::BTreeMap<String, i64> {
    let sql = app.sql().await;
    let tables = sql
        .query(
            "SELECT t.table_name::text FROM information_schema.tables t \
             WHERE t.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
             AND ($1 OR EXISTS (SELECT FROM information_schema.columns c \
                  WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name \
                  AND c.column_name = 'tenant_id'))",
            &[&tenant.is_none()],
        )
        .await
        .unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for table in tables {
        let name: String = table.get(0);
        let rows = match tenant {
            None => count(&sql, &format!("SELECT count(*) FROM \"{name}\""), &[]).await,
            Some(tenant) => {
                let query = format!("SELECT count(*) FROM \"{name}\" WHERE tenant_id = $1");
                count(&sql, &query, &[&tenant]).await
            }
        };
        counts.insert(name, rows);
    }
    counts
}
