//! The receiving side of hookd: what a merchant needs to accept webhooks safely.
//!
//! A webhook endpoint has three jobs before it may act on an event, and this crate does each:
//!
//! 1. **Verify** that the request comes from the sender and is recent: [`Verifier`] checks the
//!    Standard Webhooks signature (`webhook-*` or `svix-*` headers, several signatures, constant
//!    time) and rejects timestamps outside a tolerance (5 minutes by default), which stops
//!    replays of captured requests.
//! 2. **Parse** the body only after it is verified: with the `axum` feature, the [`Webhook`]
//!    extractor does both and answers 400/401 with a short reason when either fails.
//! 3. **Dedupe** on `webhook-id`: the sender retries for more than a day and may deliver twice.
//!    The [`inbox`] (features `inbox-sqlite`, `inbox-postgres`) records the id in the
//!    consumer's own database, in the same transaction as the event's effect, so a duplicate
//!    finds the id and does nothing, however late it comes within the retry horizon.
//!
//! The core has no server dependency: without features it needs only the signing crate, and a
//! merchant on another framework passes header values through the [`Headers`] trait or
//! [`Verifier::verify_parts`].
//!
//! ```
//! use hookd_receiver::Verifier;
//!
//! let verifier = Verifier::new(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])?;
//! let headers = [
//!     ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
//!     ("webhook-timestamp", "1614265330"),
//!     ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
//! ];
//! let body = br#"{"test": 2432232314}"#;
//! // `verify` uses the clock; a fixed `now` keeps this example true forever.
//! let webhook = verifier.verify_at(&headers[..], body, 1614265330)?;
//! assert_eq!(webhook.id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
//! # Ok::<(), hookd_receiver::VerifyError>(())
//! ```

#![forbid(unsafe_code)]

mod headers;
mod verify;

#[cfg(feature = "axum")]
mod extract;
#[cfg(any(feature = "inbox-sqlite", feature = "inbox-postgres"))]
pub mod inbox;

pub use headers::Headers;
pub use hookd_signing::asymmetric::{KeyError, PublicKey};
pub use hookd_signing::{Secret, SecretError};
pub use verify::{VerifiedWebhook, Verifier, VerifyError, VerifyKey, DEFAULT_TOLERANCE};

#[cfg(feature = "axum")]
pub use extract::{Webhook, WebhookRejection};
