//! hookd: accept payment events, sign them (Standard Webhooks) and deliver them to merchants'
//! endpoints, retrying until they arrive.
//!
//! The parts, each a module:
//! - [`api`]: the Svix-compatible management API (axum).
//! - [`store`]: everything kept, behind the [`store::Store`] trait; [`store::sqlite`] for one
//!   node, [`store::postgres`] for many.
//! - [`delivery`]: the engine that claims due deliveries, attempts them and records results.
//! - [`outbound`]: the HTTP client that calls endpoints, with its SSRF guard.
//! - [`operational`]: operational webhooks to the operator (`endpoint.disabled`, …), sent as
//!   messages of an internal application.
//! - [`retention`]: the background pruning of old attempts and messages.
//! - [`retention`]: the background pruning of old attempts and messages, and of what expired.
//! - [`tasks`]: background tasks (`recover`) run by the workers in batches.
//! - [`domain`]: types that parse untrusted input once.
//! - [`config`]: settings from flags, `HOOKD_*` variables and a TOML file.
//! - [`server`]: wiring them together; [`server::run`] takes a bound listener.
//! - [`telemetry`]: Prometheus metrics.
//!
//! Signing itself lives in the `hookd-signing` crate, shared with the receiver kit.

pub mod api;
pub mod catalog;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod operational;
pub mod outbound;
pub mod relay;
pub mod retention;
pub mod server;
pub mod store;
pub mod tasks;
pub mod telemetry;
