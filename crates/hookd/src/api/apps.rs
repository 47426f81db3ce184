//! Applications: the platform's merchants.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::auth::Principal;
use super::error::{ApiError, ErrorResponses};
use super::extract::{Json, Path, Query};
use super::pagination::{ListResponse, PageParams};
use super::serde_util::double_option;
use super::text::{check_metadata, check_text};
use super::AppState;
use crate::domain::ids::AppId;
use crate::domain::text::Lines;
use crate::domain::time::{now_millis, rfc3339};
use crate::domain::Uid;
use crate::store::{Application, Order};
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/app", get(list).post(create))
        .route(
            "/api/v1/app/{app_id}",
            get(read).put(replace).patch(patch).delete(remove),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationIn {
    pub name: String,
    pub uid: Option<Uid>,
    /// Deliveries per second to each endpoint of the application.
    #[serde(alias = "rateLimit")]
    pub throttle_rate: Option<u16>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uid>)]
    uid: Option<Option<Uid>>,
    #[serde(default, alias = "rateLimit", deserialize_with = "double_option")]
    #[schema(value_type = Option<u16>)]
    throttle_rate: Option<Option<u16>>,
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationOut {
    id: String,
    uid: Option<String>,
    name: String,
    throttle_rate: Option<i64>,
    rate_limit: Option<i64>,
    metadata: BTreeMap<String, String>,
    created_at: String,
    updated_at: String,
}

impl From<Application> for ApplicationOut {
    fn from(app: Application) -> Self {
        Self {
            id: app.id.into(),
            uid: app.uid.map(String::from),
            name: app.name,
            throttle_rate: app.throttle_rate,
            rate_limit: app.throttle_rate,
            metadata: app.metadata,
            created_at: rfc3339(app.created_at),
            updated_at: rfc3339(app.updated_at),
        }
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 256 {
        return Err(ApiError::invalid(
            &["body", "name"],
            "must be between 1 and 256 characters long",
        ));
    }
    check_text(&["body", "name"], name, Lines::Single)
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

/// Loads an application by id or uid and checks the caller may see it.
pub async fn load(
    state: &AppState,
    principal: &Principal,
    key: &str,
) -> Result<Application, ApiError> {
    let app = state
        .store
        .get_app(key)
        .await?
        .ok_or_else(|| ApiError::not_found("application"))?;
    principal.check_app(&app)?;
    Ok(app)
}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(flatten)]
    page: PageParams,
}

#[utoipa::path(
    get,
    path = "/api/v1/app",
    tag = "Application",
    operation_id = "v1.application.list",
    summary = "List applications",
    params(PageParams),
    responses((status = 200, body = ListResponse<ApplicationOut>), ErrorResponses),
    security(("bearer" = []))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ListResponse<ApplicationOut>>, ApiError> {
    principal.require_org()?;
    let page = params.page.parse(Order::Ascending)?;
    let rows = state.store.list_apps(&page).await?;
    Ok(axum::Json(ListResponse::build(
        rows,
        &page,
        |a| a.id.to_string(),
        ApplicationOut::from,
    )))
}

#[derive(Debug, Deserialize)]
struct CreateParams {
    get_if_exists: Option<bool>,
}

#[utoipa::path(
    post,
    path = "/api/v1/app",
    tag = "Application",
    operation_id = "v1.application.create",
    summary = "Create an application",
    params(("get_if_exists" = Option<bool>, Query, description = "Answer the existing application with this uid instead of 409")),
    request_body = ApplicationIn,
    responses(
        (status = 200, description = "Already there: `get_if_exists` answers the application with this uid", body = ApplicationOut),
        (status = 201, description = "Created", body = ApplicationOut),
        ErrorResponses
    ),
    security(("bearer" = []))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<CreateParams>,
    Json(input): Json<ApplicationIn>,
) -> Result<(StatusCode, axum::Json<ApplicationOut>), ApiError> {
    principal.require_org()?;
    if params.get_if_exists == Some(true) {
        if let Some(uid) = &input.uid {
            if let Some(existing) = state.store.get_app(uid.as_str()).await? {
                return Ok((StatusCode::OK, axum::Json(existing.into())));
            }
        }
    }
    let app = new_app(input, None)?;
    state.store.create_app(&app).await?;
    Ok((StatusCode::CREATED, axum::Json(app.into())))
}

fn new_app(input: ApplicationIn, uid_from_path: Option<Uid>) -> Result<Application, ApiError> {
    check_name(&input.name)?;
    check_metadata(input.metadata.as_ref())?;
    let now = now_millis();
    Ok(Application {
        id: AppId::generate(),
        uid: input.uid.or(uid_from_path),
        name: input.name,
        throttle_rate: check_rate(input.throttle_rate)?,
        metadata: input.metadata.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}",
    tag = "Application",
    operation_id = "v1.application.get",
    summary = "Get an application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    responses((status = 200, body = ApplicationOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(app_id): Path<String>,
) -> Result<axum::Json<ApplicationOut>, ApiError> {
    Ok(axum::Json(load(&state, &principal, &app_id).await?.into()))
}

/// PUT creates the application (with the path as its uid) when it does not exist yet.
#[utoipa::path(
    put,
    path = "/api/v1/app/{app_id}",
    tag = "Application",
    operation_id = "v1.application.update",
    summary = "Update an application, creating it when absent",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    request_body = ApplicationIn,
    responses(
        (status = 200, description = "Updated", body = ApplicationOut),
        (status = 201, description = "Created", body = ApplicationOut),
        ErrorResponses
    ),
    security(("bearer" = []))
)]
async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    Path(app_id): Path<String>,
    Json(input): Json<ApplicationIn>,
) -> Result<(StatusCode, axum::Json<ApplicationOut>), ApiError> {
    principal.require_org()?;
    let Some(mut app) = state.store.get_app(&app_id).await? else {
        let uid = Uid::parse(app_id.clone())
            .map_err(|e| ApiError::invalid(&["path", "app_id"], e.to_string()))?;
        let app = new_app(input, Some(uid))?;
        state.store.create_app(&app).await?;
        return Ok((StatusCode::CREATED, axum::Json(app.into())));
    };
    check_name(&input.name)?;
    check_metadata(input.metadata.as_ref())?;
    app.name = input.name;
    app.uid = input.uid;
    app.throttle_rate = check_rate(input.throttle_rate)?;
    app.metadata = input.metadata.unwrap_or_default();
    app.updated_at = now_millis();
    state.store.update_app(&app).await?;
    Ok((StatusCode::OK, axum::Json(app.into())))
}

#[utoipa::path(
    patch,
    path = "/api/v1/app/{app_id}",
    tag = "Application",
    operation_id = "v1.application.patch",
    summary = "Change some fields of an application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    request_body = ApplicationPatch,
    responses((status = 200, body = ApplicationOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path(app_id): Path<String>,
    Json(input): Json<ApplicationPatch>,
) -> Result<axum::Json<ApplicationOut>, ApiError> {
    principal.require_org()?;
    let mut app = load(&state, &principal, &app_id).await?;
    if let Some(name) = input.name {
        check_name(&name)?;
        app.name = name;
    }
    check_metadata(input.metadata.as_ref())?;
    if let Some(uid) = input.uid {
        app.uid = uid;
    }
    if let Some(rate) = input.throttle_rate {
        app.throttle_rate = check_rate(rate)?;
    }
    if let Some(metadata) = input.metadata {
        app.metadata = metadata;
    }
    app.updated_at = now_millis();
    state.store.update_app(&app).await?;
    Ok(axum::Json(app.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/app/{app_id}",
    tag = "Application",
    operation_id = "v1.application.delete",
    summary = "Delete an application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    responses((status = 204, description = "Done"), ErrorResponses),
    security(("bearer" = []))
)]
async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    Path(app_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require_org()?;
    let app = load(&state, &principal, &app_id).await?;
    state.store.delete_app(&app.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
