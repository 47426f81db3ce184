//! The delivery engine: claims due deliveries, attempts them, records the results.
//!
//! Stages, each owned by one task:
//! 1. **Hand-over and claiming** ([`engine::Dispatcher`]): deliveries arrive either straight
//!    from ingest (leased to this worker in the ingest transaction) or from `claim_due`, which
//!    leases due deliveries in batches. Ingest wakes the dispatcher; polling is the fallback.
//! 2. **Attempts** ([`attempt`]): one task per delivery, bounded by a semaphore, with no
//!    database transaction open while the HTTP call runs. The endpoint's URL picks the
//!    [`transport`]: the guarded HTTP client, or a `hookd listen` session's relay.
//! 3. **Recording** ([`engine::Recorder`]): results are written in batches, each applied only
//!    while its lease still holds.

pub(crate) mod attempt;
pub(crate) mod engine;
pub(crate) mod fairness;
pub(crate) mod retry;
pub(crate) mod transport;

pub(crate) use engine::{DispatchHandle, Engine};
pub use retry::{Outcome, RetryPolicy};
