//! `hookd trigger EVENT_TYPE`: posts the catalog's example of an event type.

use anyhow::Context;

use crate::client::ApiClient;
use hookd::catalog;

/// Posts the example of `event_type` to `app` (or the only application) and answers the
/// message id.
pub async fn trigger(
    client: &ApiClient,
    event_type: &str,
    app: Option<&str>,
) -> anyhow::Result<String> {
    let entry = catalog::entry(event_type).with_context(|| {
        let known: Vec<_> = catalog::PAYMENT_EVENTS.iter().map(|e| e.name).collect();
        format!(
            "{event_type:?} is not in the catalog; known: {}",
            known.join(", ")
        )
    })?;
    let app = client.resolve_app(app).await?;
    let message = client
        .send_message(&app, entry.name, catalog::example(entry))
        .await?;
    Ok(message["id"].as_str().unwrap_or_default().to_string())
}
