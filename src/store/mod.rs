//! Postgres: the pool, migrations and every query. Tonic never appears here;
//! callers get domain types and a [`Error`] classified for them.

mod audit;
mod consent;
mod error;
mod keys;
mod migrate;
mod paging;
mod preference;
mod site;
mod writer;

use std::{str::FromStr, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use audit::Erasure;
pub use error::{Error, Result};
pub use keys::{CreatedKey, KeyInfo};
pub use paging::{ExportChunks, Page};
pub use preference::Idempotent;
pub use site::Changer;
pub use writer::{ConsentWriter, Recorded, WriterConfig, WriterTasks};

/// How long a call waits for a connection, or for Postgres to accept one,
/// before it reports the database unavailable.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// The pooled database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    config: tokio_postgres::Config,
}

impl Store {
    /// Builds the pool. No connection is made yet: a pool exists even while
    /// Postgres is down, so call [`Store::ping`] to fail fast at start.
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
            .build()
            .map_err(|error| Error::Internal(error.into()))?;
        Ok(Self { pool, config })
    }

    /// A connection of its own for health checks, so a busy pool never
    /// reads as a database that is down.
    pub fn health_probe(&self) -> HealthProbe {
        HealthProbe {
            config: self.config.clone(),
            client: None,
        }
    }

    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await?;
        migrate::run(&mut client).await
    }
}

/// Checks the database over a dedicated connection, reconnecting as needed.
pub struct HealthProbe {
    config: tokio_postgres::Config,
    client: Option<tokio_postgres::Client>,
}

impl HealthProbe {
    /// Whether Postgres answers `SELECT 1` within `timeout`.
    pub async fn check(&mut self, timeout: Duration) -> bool {
        let answered = tokio::time::timeout(timeout, async {
            if self.client.as_ref().is_none_or(|client| client.is_closed()) {
                let (client, connection) = self.config.connect(NoTls).await?;
                tokio::spawn(connection);
                self.client = Some(client);
            }
            let client = self.client.as_ref().expect("connected above");
            client.simple_query("SELECT 1").await.map(|_| ())
        })
        .await;
        let healthy = matches!(answered, Ok(Ok(())));
        if !healthy {
            self.client = None;
        }
        healthy
    }
}
