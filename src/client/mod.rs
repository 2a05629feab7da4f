//! Commands that talk to a running consentd over gRPC, as any client
//! would: they hold an API key, never the database URL; and `verify`,
//! which checks offline what they and grpcurl fetch.

pub mod checkpoint;
pub mod export;
pub mod proof;
mod rows;
mod sink;
pub mod verify;

use std::time::Duration;

use clap::Args;
use tonic::{Request, transport::Channel};

/// Which consentd, and the API key to call it with.
#[derive(Args)]
pub struct Server {
    /// consentd's gRPC address (plain HTTP/2).
    #[arg(long, env = "CONSENTD_ADDR", default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// An API key with the scope the command needs; prefer the environment
    /// variable, which other users of the machine cannot read from the
    /// process list.
    #[arg(long, env = "CONSENTD_KEY", hide_env_values = true)]
    key: String,
}

impl Server {
    async fn connect(&self) -> Result<Channel, String> {
        let addr = &self.addr;
        Channel::from_shared(addr.clone())
            .map_err(|e| format!("--addr {addr}: {e}"))?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))
    }

    /// `message` with the key in its metadata.
    fn request<T>(&self, message: T) -> Result<Request<T>, String> {
        let mut request = Request::new(message);
        let key = self
            .key
            .parse()
            .map_err(|_| "the API key holds characters no header may")?;
        request.metadata_mut().insert("x-api-key", key);
        Ok(request)
    }
}

/// A failed call, as the command reports it.
fn failed(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}
