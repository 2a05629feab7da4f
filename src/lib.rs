//! # consentd
//!
//! A gRPC service that keeps the proof of what people agreed to.
//!
//! ## Layout
//!
//! - [`domain`]: types valid by construction, no I/O.
//!   - `command`: what each RPC asks for, parsed; `consent`, `preference`,
//!     `site`, `erasure`, `audit`, `auth`: the things themselves;
//!     `declared`: a site's declared categories and the check of a
//!     decision against them, which the writer makes for both edges.
//!   - `seal`: what a decision becomes when stored (minimised, expire
//!     time, IP encrypted, the batch signed); `receipt` and `merkle`: the
//!     signed receipts and their RFC 9162 tree (`merkle`, with inclusion
//!     and consistency proofs; `merkle::blocks`: which stored block roots
//!     and leaves a proof needs); `keyring`: the keys.
//!   - `tlog`: each tenant's append-only log (leaves, head, when to sign);
//!     `checkpoint`: its signed checkpoints as C2SP signed notes;
//!     `preference::claims`: what a preference event's leaf commits to.
//!   - `preference::effect`: which changes take effect and why not.
//!   - `page`, `time`, `validation`, `ids`, `web`, `network`: tokens,
//!     instants, violations and the small value types.
//! - [`store`]: PostgreSQL, no tonic. SQL sits in `src/store/sql/*.sql` and
//!   runs through `run` (prepared, every value bound); rows are read through
//!   `row` (corrupt rows name their table); `stored` maps domain enums to
//!   their stored numbers; `consent_row` lists the record's columns once.
//!   The RecordConsent write path: `writer` (thread, queue, repeated
//!   request ids, per-row fallback), `writer::turn` (which writer collects
//!   next), `consent_batch` (a batch's two round trips). `deadline` bounds
//!   a call's SQL by the caller's gRPC deadline. `tlog`: the sequencer
//!   that logs committed records (`tlog::preference`: and preference
//!   events), saves completed block roots and signs checkpoints, and the
//!   few reads a proof is made from.
//! - [`api`]: the gRPC layer: `handler` runs the steps every RPC shares
//!   (authorize, parse, map errors) once; `convert` turns every request
//!   into its domain command (all violations at once) and proto enums into
//!   domain enums by explicit matches; `auth`; handlers per service; the
//!   one mapping from errors to `tonic::Status` in `error`;
//!   `proof_document`, the PDF of GetConsentProof. No SQL.
//! - [`public`]: the HTTP listener browsers post consent to, with
//!   publishable site keys: CookieConsent's data in, the same decision and
//!   writer as RecordConsent; nothing that reads data.
//! - [`server`]: assembles tonic: health (readiness and `liveness`),
//!   reflection, limits (load shedding, message sizes, deadlines), optional
//!   TLS reloaded from files, and the drain on shutdown; `settings` (what
//!   `consentd serve` was configured with), `workers` (database health,
//!   expiry, retention) and `sequencer` (each tenant's log) in files of
//!   their own.
//! - [`cli`]: the values the commands other than `serve` take, refused
//!   where given with the rule that `serve` or the API would apply.
//! - [`config`]: plain settings from flags and environment; a leaf that
//!   imports no other layer.
//! - [`telemetry`]: logs, OpenTelemetry traces (OTLP) and the layer that
//!   measures every RPC; nothing personal is ever recorded.
//! - [`metrics`]: Prometheus series and their `/metrics` listener.
//! - [`key_cache`]: API keys remembered for a while, by `api` and `public`.
//!
//! Arrows point one way: `api -> domain <- store`, `public -> domain, store`,
//! `server -> api, public, store`,
//! `key_cache` is a leaf, and `config` reads nothing but the domain's limits.

pub mod api;
pub mod cli;
pub mod config;
pub mod domain;
pub mod key_cache;
pub mod metrics;
pub mod public;
pub mod server;
pub mod store;
pub mod telemetry;
