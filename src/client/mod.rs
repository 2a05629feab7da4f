//! Commands that talk to a running consentd over gRPC, as any client
//! would: they hold an API key, never the database URL.

pub mod export;
mod rows;
mod sink;
