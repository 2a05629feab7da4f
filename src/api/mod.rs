//! The gRPC layer: proto <-> domain conversions, authentication, and the one
//! mapping from errors to `tonic::Status`. No SQL here.

mod admin;
mod auth;
mod consent;
mod convert;
mod error;
mod handler;
mod log;
mod paging;
mod preference;
mod proof_document;

pub use admin::AdminApi;
pub use auth::Authenticator;
pub use consent::ConsentApi;
pub use error::Error;
pub use preference::PreferenceApi;

/// What every service needs besides the store.
#[derive(Clone)]
pub struct ApiContext {
    pub audit_key: crate::domain::erasure::AuditKey,
    pub defaults: crate::domain::site::ServerDefaults,
    pub sealing: crate::domain::keyring::Sealing,
    pub clock: crate::domain::clock::Clock,
    /// How long a known API key is trusted without asking the database
    /// again; a revoked key works for at most this long. Zero: ask every time.
    pub auth_cache_ttl: std::time::Duration,
}

/// Generated types and services of package `consent.v1`.
pub mod proto {
    tonic::include_proto!("consent.v1");

    /// Encoded descriptors of our protos, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/consent_v1_descriptor.bin"));

    impl ServiceDecision {
        /// The decision in the words documents and exports print.
        pub fn decision_word(&self) -> &'static str {
            if self.granted { "granted" } else { "denied" }
        }
    }
}
