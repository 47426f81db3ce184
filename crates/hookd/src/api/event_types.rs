//! The event type catalog.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::auth::Principal;
use super::error::{ApiError, ErrorResponses, FieldError};
use super::extract::{Json, Path, Query};
use super::pagination::{ListResponse, PageParams};
use super::serde_util::double_option;
use super::text::check_text;
use super::AppState;
use crate::catalog;
use crate::domain::text::Lines;
use crate::domain::time::{now_millis, rfc3339};
use crate::domain::EventTypeName;
use crate::store::{EventType, Order};
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/event-type", get(list).post(create))
        .route(
            "/api/v1/event-type/{event_type_name}",
            get(read).put(replace).patch(patch).delete(remove),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeIn {
    name: EventTypeName,
    description: String,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    deprecated: bool,
    #[schema(value_type = Option<Object>)]
    schemas: Option<serde_json::Value>,
    feature_flag: Option<String>,
    /// hookd extension: check every message's payload against the newest schema at ingest
    /// (422 naming the failing place). Default false.
    #[serde(default)]
    validate_payloads: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeUpdate {
    description: String,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    deprecated: bool,
    #[schema(value_type = Option<Object>)]
    schemas: Option<serde_json::Value>,
    feature_flag: Option<String>,
    /// hookd extension: check payloads against the newest schema at ingest. When absent the
    /// current setting stays (false for a new event type), so a client that does not know the
    /// field never turns it off.
    validate_payloads: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypePatch {
    description: Option<String>,
    archived: Option<bool>,
    deprecated: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    schemas: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    feature_flag: Option<Option<String>>,
    /// hookd extension: check payloads against the newest schema at ingest.
    validate_payloads: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeOut {
    name: String,
    description: String,
    archived: bool,
    deprecated: bool,
    #[schema(value_type = Option<Object>)]
    schemas: Option<serde_json::Value>,
    feature_flag: Option<String>,
    /// hookd extension: whether ingest checks payloads against the newest schema.
    validate_payloads: bool,
    created_at: String,
    updated_at: String,
}

impl From<EventType> for EventTypeOut {
    fn from(et: EventType) -> Self {
        Self {
            name: et.name.into(),
            description: et.description,
            archived: et.archived,
            deprecated: et.deprecated,
            schemas: et.schemas,
            feature_flag: et.feature_flag,
            validate_payloads: et.validate_payloads,
            created_at: rfc3339(et.created_at),
            updated_at: rfc3339(et.updated_at),
        }
    }
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.len() > 4096 {
        return Err(ApiError::invalid(
            &["body", "description"],
            "must be at most 4096 characters long",
        ));
    }
    check_text(&["body", "description"], description, Lines::Multi)
}

fn check_feature_flag(flag: Option<&str>) -> Result<(), ApiError> {
    match flag {
        Some(flag) => check_text(&["body", "featureFlag"], flag, Lines::Single),
        None => Ok(()),
    }
}

/// `schemas` maps versions to JSON Schemas, each of which must compile: a 422 names the
/// version and the place in it (`["body", "schemas", "1", "properties", "amount", "type"]`).
fn check_schemas(schemas: &Option<serde_json::Value>) -> Result<(), ApiError> {
    let Some(value) = schemas else {
        return Ok(());
    };
    if !value.is_object() {
        return Err(ApiError::invalid(
            &["body", "schemas"],
            "must be an object mapping a version to a JSON Schema",
        ));
    }
    catalog::check_every_version(value).map_err(|fault| {
        let loc = ["body", "schemas"]
            .into_iter()
            .map(String::from)
            .chain(fault.segments())
            .collect();
        ApiError::invalid_fields(vec![FieldError {
            loc,
            msg: fault.message,
            kind: "value_error".into(),
        }])
    })
}

/// An event type that validates payloads must have a newest schema that compiles; otherwise
/// every message of that type would be refused.
fn check_validation(event_type: &EventType) -> Result<(), ApiError> {
    if !event_type.validate_payloads {
        return Ok(());
    }
    match event_type.schemas.as_ref().map(catalog::compile) {
        Some(Err(violation)) => Err(ApiError::invalid(&["body", "schemas"], violation.message)),
        _ => Ok(()),
    }
}

async fn load(state: &AppState, name: &str) -> Result<EventType, ApiError> {
    state
        .store
        .get_event_type(name)
        .await?
        .ok_or_else(|| ApiError::not_found("event type"))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(flatten)]
    page: PageParams,
    include_archived: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/event-type",
    tag = "Event Type",
    operation_id = "v1.event-type.list",
    summary = "List event types",
    params(PageParams, ("include_archived" = Option<bool>, Query, description = "Include archived event types")),
    responses((status = 200, body = ListResponse<EventTypeOut>), ErrorResponses),
    security(("bearer" = []))
)]
async fn list(
    State(state): State<AppState>,
    _principal: Principal,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ListResponse<EventTypeOut>>, ApiError> {
    let page = params.page.parse_by_name(Order::Ascending)?;
    let include_archived = match params.include_archived.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                &["query", "include_archived"],
                "must be true or false",
            ))
        }
    };
    let rows = state
        .store
        .list_event_types(&page, include_archived)
        .await?;
    Ok(axum::Json(ListResponse::build(
        rows,
        &page,
        |e| e.name.to_string(),
        EventTypeOut::from,
    )))
}

#[utoipa::path(
    post,
    path = "/api/v1/event-type",
    tag = "Event Type",
    operation_id = "v1.event-type.create",
    summary = "Create an event type",
    request_body = EventTypeIn,
    responses((status = 201, body = EventTypeOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(input): Json<EventTypeIn>,
) -> Result<(StatusCode, axum::Json<EventTypeOut>), ApiError> {
    principal.require_org()?;
    check_description(&input.description)?;
    check_feature_flag(input.feature_flag.as_deref())?;
    check_schemas(&input.schemas)?;
    let now = now_millis();
    let event_type = EventType {
        name: input.name,
        description: input.description,
        archived: input.archived,
        deprecated: input.deprecated,
        schemas: input.schemas,
        feature_flag: input.feature_flag,
        validate_payloads: input.validate_payloads,
        created_at: now,
        updated_at: now,
    };
    check_validation(&event_type)?;
    state.store.create_event_type(&event_type).await?;
    state.validators.forget(&event_type.name);
    Ok((StatusCode::CREATED, axum::Json(event_type.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/event-type/{event_type_name}",
    tag = "Event Type",
    operation_id = "v1.event-type.get",
    summary = "Get an event type",
    params(("event_type_name" = String, Path, description = "The event type's name")),
    responses((status = 200, body = EventTypeOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn read(
    State(state): State<AppState>,
    _principal: Principal,
    Path(name): Path<String>,
) -> Result<axum::Json<EventTypeOut>, ApiError> {
    Ok(axum::Json(load(&state, &name).await?.into()))
}

/// PUT creates the event type when it does not exist yet.
#[utoipa::path(
    put,
    path = "/api/v1/event-type/{event_type_name}",
    tag = "Event Type",
    operation_id = "v1.event-type.update",
    summary = "Update an event type, creating it when absent",
    params(("event_type_name" = String, Path, description = "The event type's name")),
    request_body = EventTypeUpdate,
    responses(
        (status = 200, description = "Updated", body = EventTypeOut),
        (status = 201, description = "Created", body = EventTypeOut),
        ErrorResponses
    ),
    security(("bearer" = []))
)]
pub(crate) async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Json(input): Json<EventTypeUpdate>,
) -> Result<(StatusCode, axum::Json<EventTypeOut>), ApiError> {
    principal.require_org()?;
    check_description(&input.description)?;
    check_feature_flag(input.feature_flag.as_deref())?;
    check_schemas(&input.schemas)?;
    let now = now_millis();
    let existing = state.store.get_event_type(&name).await?;
    let created = existing.is_none();
    let validate_payloads = input
        .validate_payloads
        .unwrap_or_else(|| existing.as_ref().is_some_and(|e| e.validate_payloads));
    let name = EventTypeName::parse(name)
        .map_err(|e| ApiError::invalid(&["path", "event_type_name"], e.to_string()))?;
    let event_type = EventType {
        name,
        description: input.description,
        archived: input.archived,
        deprecated: input.deprecated,
        schemas: input.schemas,
        feature_flag: input.feature_flag,
        validate_payloads,
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: now,
    };
    check_validation(&event_type)?;
    if created {
        state.store.create_event_type(&event_type).await?;
    } else {
        state.store.update_event_type(&event_type).await?;
    }
    state.validators.forget(&event_type.name);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(event_type.into())))
}

#[utoipa::path(
    patch,
    path = "/api/v1/event-type/{event_type_name}",
    tag = "Event Type",
    operation_id = "v1.event-type.patch",
    summary = "Change some fields of an event type",
    params(("event_type_name" = String, Path, description = "The event type's name")),
    request_body = EventTypePatch,
    responses((status = 200, body = EventTypeOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Json(input): Json<EventTypePatch>,
) -> Result<axum::Json<EventTypeOut>, ApiError> {
    principal.require_org()?;
    let mut event_type = load(&state, &name).await?;
    if let Some(description) = input.description {
        check_description(&description)?;
        event_type.description = description;
    }
    if let Some(archived) = input.archived {
        event_type.archived = archived;
    }
    if let Some(deprecated) = input.deprecated {
        event_type.deprecated = deprecated;
    }
    if let Some(schemas) = input.schemas {
        check_schemas(&schemas)?;
        event_type.schemas = schemas;
    }
    if let Some(flag) = input.feature_flag {
        check_feature_flag(flag.as_deref())?;
        event_type.feature_flag = flag;
    }
    if let Some(validate) = input.validate_payloads {
        event_type.validate_payloads = validate;
    }
    check_validation(&event_type)?;
    event_type.updated_at = now_millis();
    state.store.update_event_type(&event_type).await?;
    state.validators.forget(&event_type.name);
    Ok(axum::Json(event_type.into()))
}

#[derive(Debug, Deserialize)]
struct DeleteParams {
    expunge: Option<bool>,
}

/// Archives the event type, or with `expunge=true` deletes it.
#[utoipa::path(
    delete,
    path = "/api/v1/event-type/{event_type_name}",
    tag = "Event Type",
    operation_id = "v1.event-type.delete",
    summary = "Archive an event type (or delete it with expunge)",
    params(("event_type_name" = String, Path, description = "The event type's name"), ("expunge" = Option<bool>, Query, description = "Delete instead of archiving")),
    responses((status = 204, description = "Done"), ErrorResponses),
    security(("bearer" = []))
)]
async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    principal.require_org()?;
    let mut event_type = load(&state, &name).await?;
    if params.expunge == Some(true) {
        state.store.delete_event_type(&event_type.name).await?;
    } else {
        event_type.archived = true;
        event_type.updated_at = now_millis();
        state.store.update_event_type(&event_type).await?;
    }
    state.validators.forget(&event_type.name);
    Ok(StatusCode::NO_CONTENT)
}
