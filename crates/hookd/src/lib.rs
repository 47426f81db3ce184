//! hookd: accept payment events, sign them (Standard Webhooks) and deliver them to merchants'
//! endpoints, retrying until they arrive.
//!
//! The parts, each a module:
//! - `api`: the Svix-compatible management API (axum).
//! - `store`: everything kept, behind the `store::Store` trait; `store::sqlite` for one node,
//!   `store::postgres` for many.
//! - `delivery`: the engine that claims due deliveries, attempts them and records results; its
//!   transports are `outbound`, the HTTP client that calls endpoints with its SSRF guard, and
//!   `relay`, which hands deliveries to a `hookd listen` session.
//! - `operational`: operational webhooks to the operator (`endpoint.disabled`, …), sent as
//!   messages of an internal application.
//! - `retention`: the background pruning of old attempts and messages, and of what expired.
//! - `tasks`: background tasks (`recover`) run by the workers in batches.
//! - `catalog`: the built-in payment event catalog and payload schema checks.
//! - `domain`: types that parse untrusted input once.
//! - `config`: settings from flags, `HOOKD_*` variables and a TOML file.
//! - `server`: wiring them together; `server::run` takes a bound listener.
//! - `telemetry`: logs, traces and Prometheus metrics.
//!
//! Only what other crates use is public: the `hookd` binary (`crates/hookd-cli`), the developer
//! tools (`crates/hookd-devtools`) and the integration tests. Everything else is `pub(crate)`,
//! so the compiler reports what nothing uses.
//!
//! Signing itself lives in the `hookd-signing` crate, shared with the receiver kit.

pub mod api;
pub mod catalog;
pub mod certify;
pub mod config;
pub(crate) mod dashboard;
pub mod delivery;
pub mod domain;
pub mod operational;
pub(crate) mod outbound;
pub(crate) mod portal;
pub mod relay;
pub(crate) mod retention;
pub mod server;
pub mod store;
pub(crate) mod tasks;
pub mod telemetry;
