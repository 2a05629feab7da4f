//! # consentd
//!
//! A gRPC service that keeps the proof of what people agreed to.
//!
//! ## Layout
//!
//! - [`domain`]: types valid by construction (ids, decisions, filters, page
//!   tokens, scopes). No I/O.
//! - [`store`]: Postgres: pool, embedded migrations, every query (the SQL
//!   sits in `src/store/sql/*.sql`). No tonic.
//! - [`api`]: the gRPC layer: proto <-> domain conversions, authentication,
//!   the one mapping from errors to `tonic::Status`. No SQL.
//! - [`public`]: the HTTP listener browsers post consent to, with
//!   publishable site keys: CookieConsent's data in, the same decision and
//!   writer as RecordConsent; nothing that reads data.
//! - [`server`]: assembles tonic with health, reflection and the services,
//!   watches the database, and drains on shutdown.
//! - [`config`]: the settings, from flags and environment.
//! - [`telemetry`]: logs, OpenTelemetry traces (OTLP) and the layer that
//!   measures every RPC; nothing personal is ever recorded.
//! - [`metrics`]: Prometheus series and their `/metrics` listener.
//!
//! Arrows point one way: `api -> domain <- store`, `public -> domain, store`,
//! `server -> api, public, store`.

pub mod api;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod public;
pub mod server;
pub mod store;
pub mod telemetry;
