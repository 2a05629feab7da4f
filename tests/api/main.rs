//! End-to-end tests: a real Postgres (started by scripts/test), a fresh
//! database per test, and tonic clients over TCP.

mod child;
mod helpers;
mod load;
mod soak;

mod as_of;
mod auth;
mod availability;
mod browser;
mod cli;
mod cli_limits;
mod declared;
mod erasure;
mod export;
mod export_cli;
mod faults;
mod hostile;
mod idempotency;
mod isolation;
mod limits;
mod metrics;
mod pagination;
mod pollers;
mod preference_log;
mod preferences;
mod privacy;
mod proof;
mod proof_pdf;
mod public;
mod query_strings;
mod raw_details;
mod reflection;
mod repeated_keys;
mod resources;
mod round_trip;
mod shutdown;
mod telemetry;
mod third_party_verifier;
mod tlog;
mod tlog_blocks;
mod tls;
mod validation;
mod verify;
mod witness;
mod writer;
