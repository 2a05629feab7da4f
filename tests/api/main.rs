//! End-to-end tests: a real Postgres (started by scripts/test), a fresh
//! database per test, and tonic clients over TCP.

mod helpers;

mod auth;
mod availability;
mod cli;
mod erasure;
mod export;
mod idempotency;
mod limits;
mod metrics;
mod pagination;
mod preferences;
mod privacy;
mod proof;
mod public;
mod reflection;
mod round_trip;
mod shutdown;
mod telemetry;
mod tls;
mod validation;
mod writer;
