//! Endpoints: where an application's webhooks go, their secrets and custom headers.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use hookd_signing::{EndpointKey, Scheme};
use serde::{Deserialize, Serialize};

use super::apps;
use super::auth::Principal;
use super::error::{ApiError, ErrorResponses, FieldError, HttpErrorOut};
use super::extract::{Json, Path, Query};
use super::pagination::{ListResponse, PageParams};
use super::serde_util::double_option;
use super::text::{check_metadata, check_text};
use super::AppState;
use crate::domain::ids::EndpointId;
use crate::domain::text::Lines;
use crate::domain::time::{now_millis, rfc3339};
use crate::domain::{Channel, EndpointUrl, EventTypeName, Uid};
use crate::operational::{Emitter, Event, Kind};
use crate::outbound::Verdict;
use crate::store::{Application, Endpoint, EndpointChange, Order, RetiringSecret};
use utoipa::ToSchema;

/// How long a rotated-out secret keeps signing, unless the caller says otherwise.
const DEFAULT_GRACE_SECONDS: i64 = 24 * 60 * 60;
/// The most channels an endpoint or message may name.
pub const MAX_CHANNELS: usize = 10;
/// The most custom headers an endpoint may carry.
const MAX_HEADERS: usize = 20;

pub fn routes() -> Router<AppState> {
    let base = "/api/v1/app/{app_id}/endpoint";
    Router::new()
        .route(base, get(list).post(create))
        .route(
            &format!("{base}/{{endpoint_id}}"),
            get(read).put(replace).patch(patch).delete(remove),
        )
        .route(&format!("{base}/{{endpoint_id}}/secret"), get(read_secret))
        .route(
            &format!("{base}/{{endpoint_id}}/secret/rotate"),
            post(rotate_secret),
        )
        .route(
            &format!("{base}/{{endpoint_id}}/headers"),
            get(read_headers).put(replace_headers).patch(patch_headers),
        )
        .route(&format!("{base}/{{endpoint_id}}/stats"), get(stats))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointIn {
    url: String,
    #[serde(default)]
    description: String,
    uid: Option<Uid>,
    /// On a PUT that leaves it out, the endpoint keeps its state (an endpoint disabled for
    /// failing stays disabled until asked otherwise).
    disabled: Option<bool>,
    #[serde(alias = "filterTypes")]
    event_types: Option<Vec<EventTypeName>>,
    channels: Option<Vec<Channel>>,
    /// `whsec_…` (signs `v1`) or, a hookd extension, `whsk_…` (an Ed25519 key, signs `v1a`).
    /// Generated when left out.
    secret: Option<String>,
    /// hookd extension: the signature scheme of a generated key, `v1` (HMAC-SHA256, the
    /// default) or `v1a` (Ed25519: the endpoint's owner is only ever shown the public key).
    #[schema(value_type = Option<String>, example = "v1a")]
    signature_scheme: Option<String>,
    #[serde(alias = "rateLimit")]
    throttle_rate: Option<u16>,
    metadata: Option<BTreeMap<String, String>>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPatch {
    url: Option<String>,
    description: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uid>)]
    uid: Option<Option<Uid>>,
    disabled: Option<bool>,
    #[serde(default, alias = "filterTypes", deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<EventTypeName>>)]
    event_types: Option<Option<Vec<EventTypeName>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<Channel>>)]
    channels: Option<Option<Vec<Channel>>>,
    #[serde(default, alias = "rateLimit", deserialize_with = "double_option")]
    #[schema(value_type = Option<u16>)]
    throttle_rate: Option<Option<u16>>,
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOut {
    pub id: String,
    pub url: String,
    pub description: String,
    pub uid: Option<String>,
    pub version: i64,
    pub disabled: bool,
    pub event_types: Option<Vec<String>>,
    pub filter_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub throttle_rate: Option<i64>,
    pub rate_limit: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    /// hookd extension: `v1` (HMAC-SHA256) or `v1a` (Ed25519), the signatures its deliveries carry.
    pub signature_scheme: &'static str,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Endpoint> for EndpointOut {
    fn from(ep: Endpoint) -> Self {
        Self {
            id: ep.id.into(),
            url: ep.url,
            description: ep.description,
            uid: ep.uid.map(String::from),
            version: 1,
            disabled: ep.disabled,
            filter_types: ep.event_types.clone().map(strings),
            event_types: ep.event_types.map(strings),
            channels: ep.channels.map(strings),
            throttle_rate: ep.throttle_rate,
            rate_limit: ep.throttle_rate,
            metadata: ep.metadata,
            signature_scheme: ep.secret.scheme().as_str(),
            created_at: rfc3339(ep.created_at),
            updated_at: rfc3339(ep.updated_at),
        }
    }
}

/// Loads an endpoint of an application the caller may see.
pub async fn load(
    state: &AppState,
    principal: &Principal,
    app_key: &str,
    endpoint_key: &str,
) -> Result<(Application, Endpoint), ApiError> {
    let app = apps::load(state, principal, app_key).await?;
    let endpoint = state
        .store
        .get_endpoint(&app.id, endpoint_key)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    Ok((app, endpoint))
}

/// How many times a change is applied again to an endpoint that changed under it.
const CHANGE_ATTEMPTS: usize = 5;

/// Applies `change` to the endpoint and writes it, unless the endpoint changed between the read
/// and the write (an automatic disable, another request): then it is read again and `change`
/// applied to what is there now, so a field the request does not set keeps its newest value
/// and no update undoes a change it did not see. With `If-Match` the request names the version
/// it changes (the `ETag` of a read): any other is a 412, never a retry.
pub(crate) async fn modify(
    state: &AppState,
    principal: &Principal,
    app_key: &str,
    endpoint_key: &str,
    if_match: Option<i64>,
    announce: Option<Kind>,
    mut change: impl FnMut(&mut Endpoint) -> Result<(), ApiError>,
) -> Result<(Application, Endpoint), ApiError> {
    for _ in 0..CHANGE_ATTEMPTS {
        let (app, mut endpoint) = load(state, principal, app_key, endpoint_key).await?;
        let read_at = endpoint.updated_at;
        if if_match.is_some_and(|version| version != read_at) {
            return Err(precondition_failed());
        }
        change(&mut endpoint)?;
        endpoint.updated_at = now_millis().max(read_at + 1);
        let update = EndpointChange::Update {
            endpoint: &endpoint,
            read_at,
        };
        let event = announce.map(|kind| Emitter::endpoint_event(kind, &app, &endpoint));
        if changed(state, update, event).await? {
            return Ok((app, endpoint));
        }
        if if_match.is_some() {
            return Err(precondition_failed());
        }
    }
    Err(ApiError::conflict(
        "the endpoint kept changing while this update was made; retry",
    ))
}

/// Makes an endpoint change; with an event, the event is written in the same transaction (the
/// store writes nothing while operational webhooks are off) and the publisher is woken.
async fn changed(
    state: &AppState,
    change: EndpointChange<'_>,
    event: Option<Event>,
) -> Result<bool, ApiError> {
    let Some(event) = event else {
        return Ok(match change {
            EndpointChange::Create(endpoint) => {
                state.store.create_endpoint(endpoint).await?;
                true
            }
            EndpointChange::Update { endpoint, read_at } => {
                state.store.update_endpoint(endpoint, read_at).await?
            }
            EndpointChange::Delete {
                app_id,
                endpoint_id,
            } => state.store.delete_endpoint(app_id, endpoint_id).await?,
        });
    };
    let changed = state.store.change_endpoint(change, &event).await?;
    if changed {
        state.operational.committed();
    }
    Ok(changed)
}

fn precondition_failed() -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
        "the endpoint changed since the version named in If-Match: read it again (its ETag) and \
         retry",
    )
}

/// The version an `If-Match` header names (`"1733491200123"`, the `ETag` of a read).
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request("If-Match must be the ETag of a read of this endpoint")
        })
}

/// The `ETag` of an endpoint: its version, which every change moves on.
fn etag(endpoint: &Endpoint) -> [(axum::http::HeaderName, String); 1] {
    [(
        axum::http::header::ETAG,
        format!("\"{}\"", endpoint.updated_at),
    )]
}

/// Parses an endpoint URL; a literal address that deliveries may not reach is refused now
/// rather than failing every attempt later (host names are judged when resolved).
fn parse_url(state: &AppState, url: &str) -> Result<String, ApiError> {
    let url =
        EndpointUrl::parse(url).map_err(|e| ApiError::invalid(&["body", "url"], e.to_string()))?;
    if let Verdict::Blocked(reason) = state.guard.check_url(url.as_url()) {
        return Err(ApiError::invalid(
            &["body", "url"],
            format!("deliveries may not reach this address: {reason}"),
        ));
    }
    Ok(url.to_string())
}

fn check_rate(rate: Option<u16>) -> Result<Option<i64>, ApiError> {
    match rate {
        Some(0) => Err(ApiError::invalid(
            &["body", "throttleRate"],
            "must be at least 1 message per second",
        )),
        other => Ok(other.map(i64::from)),
    }
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.len() > 1024 {
        return Err(ApiError::invalid(
            &["body", "description"],
            "must be at most 1024 characters long",
        ));
    }
    check_text(&["body", "description"], description, Lines::Multi)
}

/// Event types an endpoint subscribes to must be in the catalog.
async fn check_event_types(
    state: &AppState,
    types: Option<Vec<EventTypeName>>,
) -> Result<Option<Vec<EventTypeName>>, ApiError> {
    let Some(types) = types else {
        return Ok(None);
    };
    if types.is_empty() {
        return Err(ApiError::invalid(
            &["body", "eventTypes"],
            "must not be empty; leave it out to receive every event type",
        ));
    }
    let names: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    let known = state.store.known_event_types(&names).await?;
    let unknown: Vec<FieldError> = names
        .iter()
        .enumerate()
        .filter(|(_, name)| !known.contains(name))
        .map(|(i, name)| FieldError {
            loc: vec!["body".into(), "eventTypes".into(), i.to_string()],
            msg: format!("event type {name:?} does not exist"),
            kind: "value_error".into(),
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::invalid_fields(unknown));
    }
    Ok(Some(types))
}

/// Names as the text the API answers with.
pub(crate) fn strings<T: Into<String>>(names: Vec<T>) -> Vec<String> {
    names.into_iter().map(Into::into).collect()
}

/// Channels, when given, hold between one and ten names.
pub fn check_channels(channels: Option<Vec<Channel>>) -> Result<Option<Vec<Channel>>, ApiError> {
    match channels {
        Some(list) if list.is_empty() || list.len() > MAX_CHANNELS => Err(ApiError::invalid(
            &["body", "channels"],
            format!("must hold between 1 and {MAX_CHANNELS} channels"),
        )),
        other => Ok(other),
    }
}

/// The key a caller gave in `field`, or a generated one of the scheme they asked for (by
/// default `default`); a given key must be of the scheme asked for, if any.
fn endpoint_key(
    field: &str,
    key: Option<String>,
    scheme: Option<String>,
    default: Scheme,
) -> Result<EndpointKey, ApiError> {
    let scheme = match scheme.as_deref() {
        None => None,
        Some(text) => Some(Scheme::parse(text).ok_or_else(|| {
            ApiError::invalid(&["body", "signatureScheme"], "must be `v1` or `v1a`")
        })?),
    };
    let Some(text) = key else {
        return Ok(EndpointKey::generate(scheme.unwrap_or(default)));
    };
    let key = EndpointKey::parse(&text)
        .map_err(|e| ApiError::invalid(&["body", field], e.to_string()))?;
    match scheme {
        Some(asked) if asked != key.scheme() => Err(ApiError::invalid(
            &["body", "signatureScheme"],
            format!(
                "is `{}` but the {field} given signs `{}`",
                asked.as_str(),
                key.scheme().as_str()
            ),
        )),
        _ => Ok(key),
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(flatten)]
    page: PageParams,
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/endpoint",
    tag = "Endpoint",
    operation_id = "v1.endpoint.list",
    summary = "List endpoints",
    params(("app_id" = String, Path, description = "The application's id or uid"), PageParams),
    responses((status = 200, body = ListResponse<EndpointOut>), ErrorResponses),
    security(("bearer" = []))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(app_id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ListResponse<EndpointOut>>, ApiError> {
    let app = apps::load(&state, &principal, &app_id).await?;
    let page = params.page.parse(Order::Ascending)?;
    let rows = state.store.list_endpoints(&app.id, &page).await?;
    Ok(axum::Json(ListResponse::build(
        rows,
        &page,
        |e| e.id.to_string(),
        EndpointOut::from,
    )))
}

#[utoipa::path(
    post,
    path = "/api/v1/app/{app_id}/endpoint",
    tag = "Endpoint",
    operation_id = "v1.endpoint.create",
    summary = "Create an endpoint",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    request_body = EndpointIn,
    responses((status = 201, body = EndpointOut), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(app_id): Path<String>,
    Json(input): Json<EndpointIn>,
) -> Result<(StatusCode, axum::Json<EndpointOut>), ApiError> {
    let app = apps::load(&state, &principal, &app_id).await?;
    let endpoint = new_endpoint(&state, &app, input, None).await?;
    let event = Emitter::endpoint_event(Kind::EndpointCreated, &app, &endpoint);
    changed(&state, EndpointChange::Create(&endpoint), Some(event)).await?;
    Ok((StatusCode::CREATED, axum::Json(endpoint.into())))
}

async fn new_endpoint(
    state: &AppState,
    app: &Application,
    input: EndpointIn,
    uid_from_path: Option<Uid>,
) -> Result<Endpoint, ApiError> {
    let url = parse_url(state, &input.url)?;
    check_description(&input.description)?;
    check_metadata(input.metadata.as_ref())?;
    let now = now_millis();
    Ok(Endpoint {
        id: EndpointId::generate(),
        app_id: app.id.clone(),
        uid: input.uid.or(uid_from_path),
        url,
        description: input.description,
        disabled: input.disabled.unwrap_or(false),
        event_types: check_event_types(state, input.event_types).await?,
        channels: check_channels(input.channels)?,
        throttle_rate: check_rate(input.throttle_rate)?,
        metadata: input.metadata.unwrap_or_default(),
        headers: check_headers(input.headers.unwrap_or_default())?,
        secret: endpoint_key("secret", input.secret, input.signature_scheme, Scheme::V1)?,
        retiring_secrets: Vec::new(),
        created_at: now,
        updated_at: now,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
    tag = "Endpoint",
    operation_id = "v1.endpoint.get",
    summary = "Get an endpoint",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    responses(
        (status = 200, body = EndpointOut, headers(("ETag" = String, description = "The endpoint's version, for If-Match"))),
        ErrorResponses
    ),
    security(("bearer" = []))
)]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let (_, endpoint) = load(&state, &principal, &app_id, &endpoint_id).await?;
    Ok((etag(&endpoint), axum::Json(EndpointOut::from(endpoint))))
}

/// PUT creates the endpoint (with the path as its uid) when it does not exist yet.
#[utoipa::path(
    put,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
    tag = "Endpoint",
    operation_id = "v1.endpoint.update",
    summary = "Update an endpoint, creating it when absent",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid"), ("If-Match" = Option<String>, Header, description = "hookd extension: the ETag of a read; the update is made only if the endpoint is still at that version")),
    request_body = EndpointIn,
    responses(
        (status = 200, description = "Updated", body = EndpointOut),
        (status = 201, description = "Created", body = EndpointOut),
        (status = 412, description = "The endpoint changed since the version If-Match names", body = HttpErrorOut),
        ErrorResponses
    ),
    security(("bearer" = []))
)]
async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    Json(input): Json<EndpointIn>,
) -> Result<(StatusCode, axum::Json<EndpointOut>), ApiError> {
    let app = apps::load(&state, &principal, &app_id).await?;
    if state
        .store
        .get_endpoint(&app.id, &endpoint_id)
        .await?
        .is_none()
    {
        let uid = Uid::parse(endpoint_id.clone())
            .map_err(|e| ApiError::invalid(&["path", "endpoint_id"], e.to_string()))?;
        let endpoint = new_endpoint(&state, &app, input, Some(uid)).await?;
        let event = Emitter::endpoint_event(Kind::EndpointCreated, &app, &endpoint);
        changed(&state, EndpointChange::Create(&endpoint), Some(event)).await?;
        return Ok((StatusCode::CREATED, axum::Json(endpoint.into())));
    }
    let url = parse_url(&state, &input.url)?;
    check_description(&input.description)?;
    check_metadata(input.metadata.as_ref())?;
    let event_types = check_event_types(&state, input.event_types).await?;
    let channels = check_channels(input.channels)?;
    let throttle_rate = check_rate(input.throttle_rate)?;
    let metadata = input.metadata.unwrap_or_default();
    let (_, endpoint) = modify(
        &state,
        &principal,
        &app_id,
        &endpoint_id,
        if_match(&headers)?,
        Some(Kind::EndpointUpdated),
        |endpoint| {
            endpoint.url.clone_from(&url);
            endpoint.description.clone_from(&input.description);
            endpoint.uid.clone_from(&input.uid);
            if let Some(disabled) = input.disabled {
                endpoint.disabled = disabled;
            }
            endpoint.event_types.clone_from(&event_types);
            endpoint.channels.clone_from(&channels);
            endpoint.throttle_rate = throttle_rate;
            endpoint.metadata.clone_from(&metadata);
            Ok(())
        },
    )
    .await?;
    Ok((StatusCode::OK, axum::Json(endpoint.into())))
}

#[utoipa::path(
    patch,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
    tag = "Endpoint",
    operation_id = "v1.endpoint.patch",
    summary = "Change some fields of an endpoint",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid"), ("If-Match" = Option<String>, Header, description = "hookd extension: the ETag of a read; the change is made only if the endpoint is still at that version")),
    request_body = EndpointPatch,
    responses(
        (status = 200, body = EndpointOut),
        (status = 412, description = "The endpoint changed since the version If-Match names", body = HttpErrorOut),
        ErrorResponses
    ),
    security(("bearer" = []))
)]
pub(crate) async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    Json(input): Json<EndpointPatch>,
) -> Result<axum::Json<EndpointOut>, ApiError> {
    // Everything is checked once, before the endpoint is read and changed.
    let url = input.url.map(|url| parse_url(&state, &url)).transpose()?;
    if let Some(description) = &input.description {
        check_description(description)?;
    }
    check_metadata(input.metadata.as_ref())?;
    let event_types = match input.event_types {
        Some(types) => Some(check_event_types(&state, types).await?),
        None => None,
    };
    let channels = input.channels.map(check_channels).transpose()?;
    let throttle_rate = input.throttle_rate.map(check_rate).transpose()?;
    let (_, endpoint) = modify(
        &state,
        &principal,
        &app_id,
        &endpoint_id,
        if_match(&headers)?,
        Some(Kind::EndpointUpdated),
        |endpoint| {
            if let Some(url) = &url {
                endpoint.url.clone_from(url);
            }
            if let Some(description) = &input.description {
                endpoint.description.clone_from(description);
            }
            if let Some(uid) = &input.uid {
                endpoint.uid.clone_from(uid);
            }
            if let Some(disabled) = input.disabled {
                endpoint.disabled = disabled;
            }
            if let Some(types) = &event_types {
                endpoint.event_types.clone_from(types);
            }
            if let Some(channels) = &channels {
                endpoint.channels.clone_from(channels);
            }
            if let Some(rate) = throttle_rate {
                endpoint.throttle_rate = rate;
            }
            if let Some(metadata) = &input.metadata {
                endpoint.metadata.clone_from(metadata);
            }
            Ok(())
        },
    )
    .await?;
    Ok(axum::Json(endpoint.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
    tag = "Endpoint",
    operation_id = "v1.endpoint.delete",
    summary = "Delete an endpoint",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    responses((status = 204, description = "Done"), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (app, endpoint) = load(&state, &principal, &app_id, &endpoint_id).await?;
    let delete = EndpointChange::Delete {
        app_id: &app.id,
        endpoint_id: &endpoint.id,
    };
    let event = Emitter::endpoint_event(Kind::EndpointDeleted, &app, &endpoint);
    changed(&state, delete, Some(event)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What an endpoint's owner verifies deliveries with.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretOut {
    /// The shared `whsec_…` secret of a `v1` endpoint, or the `whpk_…` public key of a `v1a`
    /// one (its signing key never leaves hookd).
    pub(crate) key: String,
    /// hookd extension: `v1` or `v1a`.
    pub(crate) signature_scheme: &'static str,
}

impl SecretOut {
    fn of(key: &EndpointKey) -> Self {
        Self {
            key: key.verification_key(),
            signature_scheme: key.scheme().as_str(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret",
    tag = "Endpoint",
    operation_id = "v1.endpoint.get-secret",
    summary = "Get the signing secret",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    responses((status = 200, body = SecretOut), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn read_secret(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<axum::Json<SecretOut>, ApiError> {
    let (_, endpoint) = load(&state, &principal, &app_id, &endpoint_id).await?;
    Ok(axum::Json(SecretOut::of(&endpoint.secret)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateIn {
    /// The new `whsec_…` secret or (hookd extension) `whsk_…` Ed25519 key; generated when left out.
    pub(crate) key: Option<String>,
    pub(crate) grace_period_seconds: Option<u32>,
    /// hookd extension: the scheme of a generated key, `v1` or `v1a`; by default the current
    /// one's. Switching keeps the old key signing beside the new through the grace period, so
    /// a receiver can move from one to the other without missing a delivery.
    #[schema(value_type = Option<String>, example = "v1a")]
    pub(crate) signature_scheme: Option<String>,
}

/// Replaces the secret; the old one keeps signing (beside the new) through its grace period.
/// Answers the new secret, which current Svix SDKs read from this route.
#[utoipa::path(
    post,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
    tag = "Endpoint",
    operation_id = "v1.endpoint.rotate-secret",
    summary = "Rotate the signing secret",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    request_body = RotateIn,
    responses((status = 200, body = SecretOut), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    Json(input): Json<RotateIn>,
) -> Result<axum::Json<SecretOut>, ApiError> {
    let grace = input
        .grace_period_seconds
        .map_or(DEFAULT_GRACE_SECONDS, i64::from);
    let (_, endpoint) = modify(
        &state,
        &principal,
        &app_id,
        &endpoint_id,
        None,
        None,
        |endpoint| {
            let new_secret = endpoint_key(
                "key",
                input.key.clone(),
                input.signature_scheme.clone(),
                endpoint.secret.scheme(),
            )?;
            let now = now_millis();
            endpoint.retiring_secrets.retain(|old| old.expires_at > now);
            endpoint.retiring_secrets.push(RetiringSecret {
                secret: endpoint.secret.expose_secret(),
                expires_at: now + grace * 1000,
            });
            endpoint.secret = new_secret;
            Ok(())
        },
    )
    .await?;
    Ok(axum::Json(SecretOut::of(&endpoint.secret)))
}

/// Headers hookd sets itself or that would break HTTP framing.
fn reserved_header(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "user-agent",
        // Marks a check's requests; on a delivery it would make receivers ignore the event.
        "hookd-certify",
    ];
    let name = name.to_ascii_lowercase();
    RESERVED.contains(&name.as_str()) || name.starts_with("webhook-") || name.starts_with("svix-")
}

fn check_headers(headers: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::invalid(
            &["body", "headers"],
            format!("at most {MAX_HEADERS} headers are allowed"),
        ));
    }
    for (name, value) in &headers {
        let loc = ["body", "headers", name.as_str()];
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::invalid(&loc, "is not a valid header name"));
        }
        if reserved_header(name) {
            return Err(ApiError::invalid(
                &loc,
                "is set by hookd and cannot be overridden",
            ));
        }
        if value.len() > 4096 || axum::http::HeaderValue::from_str(value).is_err() {
            return Err(ApiError::invalid(&loc, "is not a valid header value"));
        }
    }
    Ok(headers)
}

#[derive(Serialize, ToSchema)]
pub struct HeadersOut {
    headers: BTreeMap<String, String>,
    sensitive: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
    tag = "Endpoint",
    operation_id = "v1.endpoint.get-headers",
    summary = "Get the custom headers",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    responses((status = 200, body = HeadersOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn read_headers(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<axum::Json<HeadersOut>, ApiError> {
    let (_, endpoint) = load(&state, &principal, &app_id, &endpoint_id).await?;
    Ok(axum::Json(HeadersOut {
        headers: endpoint.headers,
        sensitive: Vec::new(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct HeadersIn {
    headers: BTreeMap<String, String>,
}

/// Current SDKs list headers to remove in `deleteHeaders`; older ones set them to null.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeadersPatchIn {
    #[serde(default)]
    headers: BTreeMap<String, Option<String>>,
    #[serde(default)]
    delete_headers: Vec<String>,
}

#[utoipa::path(
    put,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
    tag = "Endpoint",
    operation_id = "v1.endpoint.update-headers",
    summary = "Replace the custom headers",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    request_body = HeadersIn,
    responses((status = 204, description = "Done"), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn replace_headers(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    Json(input): Json<HeadersIn>,
) -> Result<StatusCode, ApiError> {
    let headers = check_headers(input.headers)?;
    modify(
        &state,
        &principal,
        &app_id,
        &endpoint_id,
        None,
        None,
        |endpoint| {
            endpoint.headers.clone_from(&headers);
            Ok(())
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// PATCH merges: a value sets the header, null removes it.
#[utoipa::path(
    patch,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
    tag = "Endpoint",
    operation_id = "v1.endpoint.patch-headers",
    summary = "Set or remove some custom headers",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    request_body = HeadersPatchIn,
    responses((status = 204, description = "Done"), ErrorResponses),
    security(("bearer" = []))
)]
async fn patch_headers(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    Json(input): Json<HeadersPatchIn>,
) -> Result<StatusCode, ApiError> {
    // Merged into the headers the endpoint has when it is written, not when first read.
    modify(
        &state,
        &principal,
        &app_id,
        &endpoint_id,
        None,
        None,
        |endpoint| {
            let mut headers = endpoint.headers.clone();
            for (name, value) in &input.headers {
                match value {
                    Some(value) => headers.insert(name.clone(), value.clone()),
                    None => headers.remove(name),
                };
            }
            // Header names are case-insensitive.
            headers.retain(|name, _| {
                !input
                    .delete_headers
                    .iter()
                    .any(|gone| gone.eq_ignore_ascii_case(name))
            });
            endpoint.headers = check_headers(headers)?;
            Ok(())
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct StatsOut {
    success: u64,
    pending: u64,
    sending: u64,
    fail: u64,
    canceled: u64,
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats",
    tag = "Endpoint",
    operation_id = "v1.endpoint.get-stats",
    summary = "Count the endpoint's deliveries by state",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    responses((status = 200, body = StatsOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn stats(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<axum::Json<StatsOut>, ApiError> {
    let (app, endpoint) = load(&state, &principal, &app_id, &endpoint_id).await?;
    let s = state.store.endpoint_stats(&app.id, &endpoint.id).await?;
    Ok(axum::Json(StatsOut {
        success: s.success,
        pending: s.pending,
        sending: s.sending,
        fail: s.fail,
        canceled: s.canceled,
    }))
}
