//! Types that parse untrusted input once, so the rest of hookd can trust them.

pub mod ids;
pub mod names;
pub mod text;
pub mod time;
pub mod url;

pub(crate) use ids::{new_id, IdPrefix};
pub use ids::{AppId, AttemptId, AuditId, DeliveryId, EndpointId, MessageId, TaskId, TokenId};
pub use names::{Channel, EventTypeName, Uid};
pub use url::EndpointUrl;
