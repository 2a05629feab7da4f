//! Postgres: the pool, migrations and every query. Tonic never appears here;
//! callers get domain types and a [`Error`] classified for them.
//!
//! Each module is SQL (from `sql/*.sql`, prepared and run through `run`)
//! and the mapping of its rows (read through `row`); what to write is
//! decided in `domain`. The RecordConsent writers batch in `writer`, and
//! write a batch with `consent_batch` and the columns of `consent_row`.

mod audit;
mod audit_events;
mod consent;
mod consent_batch;
mod consent_row;
pub mod deadline;
mod error;
mod export_limit;
mod keys;
mod migrate;
mod paging;
mod preference;
mod preference_history;
mod request_ids;
mod row;
mod run;
mod site;
mod stored;
mod tlog;
mod writer;

use std::{str::FromStr, sync::Arc, time::Duration};

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Statement};

use export_limit::ExportLimit;

pub use audit::Erasure;
pub use consent::cursor_of as consent_cursor;
pub use error::{Error, ExportScope, Result};
pub use keys::{CreatedKey, KeyInfo};
pub use paging::{ExportChunks, Page};
pub use preference::Idempotent;
pub use preference_history::event_cursor;
pub use request_ids::Forgotten;
pub use site::Changer;
pub use tlog::{LeafRecord, Sequenced, SequencerConfig, StoredCheckpoint, StoredLeaf};
pub use writer::{ConsentWriter, Recorded, WriterConfig, WriterTasks};

/// How long a call waits for a connection, or for Postgres to accept one,
/// before it reports the database unavailable.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// The pooled database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    config: tokio_postgres::Config,
    /// How many exports may hold a pooled connection at once.
    exports: Arc<ExportLimit>,
}

impl Store {
    /// Builds the pool. No connection is made yet: a pool exists even while
    /// Postgres is down, so make a first call (`serve` runs
    /// [`Store::migrate`]) to fail fast at start.
    pub fn new(database_url: &str, pool_size: usize) -> Result<Self> {
        let mut config = tokio_postgres::Config::from_str(database_url)
            .map_err(|error| Error::Internal(format!("invalid database URL: {error}").into()))?;
        config.connect_timeout(CONNECTION_TIMEOUT);
        config.application_name("consentd");
        Self::with_config(config, pool_size)
    }

    /// The same database through a pool of its own.
    pub fn with_pool_size(&self, pool_size: usize) -> Self {
        Self::with_config(self.config.clone(), pool_size)
            .expect("a pool builds from a config that built one before")
    }

    fn with_config(config: tokio_postgres::Config, pool_size: usize) -> Result<Self> {
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECTION_TIMEOUT))
            .create_timeout(Some(CONNECTION_TIMEOUT))
            .recycle_timeout(Some(CONNECTION_TIMEOUT))
            // An acknowledged record must survive a crash of PostgreSQL,
            // whatever synchronous_commit the server runs with.
            .post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .batch_execute(include_str!("sql/durable_commits.sql"))
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|error| Error::Internal(error.into()))?;
        Ok(Self {
            pool,
            config,
            exports: Arc::new(ExportLimit::for_pool(pool_size)),
        })
    }

    /// A connection of its own for health checks, so a busy pool never
    /// reads as a database that is down.
    pub fn health_probe(&self) -> HealthProbe {
        HealthProbe {
            config: self.config.clone(),
            connection: None,
        }
    }

    /// The pool's connections now, for metrics.
    pub fn pool_status(&self) -> crate::metrics::PoolStatus {
        let status = self.pool.status();
        crate::metrics::PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        }
    }

    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<()> {
        let mut client = self.connection().await?;
        migrate::run(&mut client).await
    }
}

/// Checks the database over a dedicated connection, reconnecting as needed.
pub struct HealthProbe {
    config: tokio_postgres::Config,
    /// The probe's connection, and ping.sql prepared on it.
    connection: Option<(tokio_postgres::Client, Statement)>,
}

impl HealthProbe {
    /// Whether Postgres answers ping.sql within `timeout`.
    pub async fn check(&mut self, timeout: Duration) -> bool {
        let answered = tokio::time::timeout(timeout, async {
            let (client, ping) = match self.connection.take() {
                Some((client, ping)) if !client.is_closed() => (client, ping),
                _ => {
                    let (client, connection) = self.config.connect(NoTls).await?;
                    tokio::spawn(connection);
                    let ping = client.prepare(include_str!("sql/ping.sql")).await?;
                    (client, ping)
                }
            };
            client.query_one(&ping, &[]).await?;
            self.connection = Some((client, ping));
            Ok::<_, tokio_postgres::Error>(())
        })
        .await;
        let healthy = matches!(answered, Ok(Ok(())));
        if !healthy {
            self.connection = None;
        }
        healthy
    }
}
