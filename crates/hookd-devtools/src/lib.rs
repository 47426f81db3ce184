//! hookd's tools for developers and demos, behind the `hookd` command's `trigger`, `listen`
//! and `demo`.
//!
//! They live apart from the server library because they are hookd's *clients*: they talk to
//! a server over its public API ([`client`]), and the demo starts one with
//! [`hookd::server::run`] beside the reference merchant (`examples/payments-consumer`), an
//! example crate the server must not depend on.
//!
//! - [`client`]: a small client of hookd's own API.
//! - [`trigger`]: posts the catalog's example of an event type.
//! - [`listen`]: relays an application's deliveries to a local URL.
//! - [`demo`]: the whole payment story, hookd, a gateway and a merchant, in one process.

pub mod client;
pub mod demo;
pub mod listen;
pub mod trigger;
