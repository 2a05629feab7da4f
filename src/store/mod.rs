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
pub use writer::{ConsentWriter, WriterConfig, WriterTasks};

/// How long a call waits for a connection, or for Postgres to accept one,
/// before it reports the database unavailable.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// The pooled database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Builds the pool. No connection is made yet: a pool exists even while
    /// Postgres is down, so call [`Store::ping`] to fail fast at start.
    pub fn new(database_url: &str, pool_size: usize) -> Result<Self> {
        let mut config = tokio_postgres::Config::from_str(database_url)
            .map_err(|error| Error::Internal(format!("invalid database URL: {error}").into()))?;
        config.connect_timeout(CONNECTION_TIMEOUT);
        config.application_name("consentd");
        let manager = Manager::from_config(
            config,
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
        Ok(Self { pool })
    }

    /// Checks that Postgres answers a query.
    pub async fn ping(&self) -> Result<()> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await?;
        migrate::run(&mut client).await
    }
}
