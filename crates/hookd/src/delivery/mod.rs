//! The delivery engine: claims due deliveries, attempts them, records the results.
//!
//! Stages, each owned by one task:
//! 1. **Hand-over and claiming** ([`engine::Dispatcher`]): deliveries arrive either straight
//!    from ingest (leased to this worker in the ingest transaction) or from `claim_due`, which
//!    leases due deliveries in batches. Ingest wakes the dispatcher; polling is the fallback.
//! 2. **Attempts** ([`attempt`]): one task per delivery, bounded by a semaphore, with no
//!    database transaction open while the HTTP call runs.
//! 3. **Recording** ([`engine::Recorder`]): results are written in batches, each applied only
//!    while its lease still holds.

pub mod attempt;
pub mod engine;
pub mod fairness;
pub mod retry;

pub use engine::{DispatchHandle, Engine};
pub use retry::{Outcome, RetryPolicy};
