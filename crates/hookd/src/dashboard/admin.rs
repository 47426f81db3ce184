//! The catalog and the deployment: event types (create, edit, archive), the nodes, the
//! settings in force, and API tokens.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

use super::actions::record;
use super::pages::{age, when, Chrome, OrProblem, PageResult, Problem};
use super::session::OperatorSession;
use crate::api::auth::{issue_token, Principal};
use crate::api::error::ApiError;
use crate::api::extract::{parse, Path as ApiPath};
use crate::api::{event_types, AppState};
use crate::catalog;
use crate::config::Settings;
use crate::domain::text::{describe_control, forbidden_control, Lines};
use crate::domain::time::now_millis;
use crate::portal::pages::render;
use crate::store::{EventType, NodeReport, Order, PageRequest};

pub struct EventTypeRow {
    pub event_type: EventType,
    /// The description as text and `code` spans (between backticks).
    pub description: Vec<(bool, String)>,
    pub has_schema: bool,
    pub has_example: bool,
}

#[derive(Template)]
#[template(path = "dashboard/event_types.html")]
pub struct EventTypesPage {
    pub chrome: Chrome,
    pub title: String,
    pub rows: Vec<EventTypeRow>,
    pub notice: Option<&'static str>,
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    #[serde(default)]
    done: String,
}

/// `GET /ui/event-types`: the catalog, archived types included.
pub async fn event_types(
    State(state): State<AppState>,
    session: OperatorSession,
    Query(query): Query<DoneQuery>,
) -> PageResult {
    let page = PageRequest {
        limit: 500,
        cursor: None,
        backwards: false,
        order: Order::Ascending,
    };
    let types = state
        .store
        .list_event_types(&page, true)
        .await
        .or_problem()?;
    let rows = types
        .into_iter()
        .map(|t| {
            let schemas = t.schemas.as_ref();
            EventTypeRow {
                description: crate::portal::pages::code_spans(&t.description),
                has_schema: schemas.and_then(catalog::newest_schema).is_some(),
                has_example: schemas
                    .and_then(catalog::schema_examples)
                    .is_some_and(|e| !e.is_empty()),
                event_type: t,
            }
        })
        .collect();
    Ok(render(
        &EventTypesPage {
            chrome: Chrome::new(&session, "event-types"),
            title: "Event types".into(),
            rows,
            notice: match query.done.as_str() {
                "saved" => Some("The event type is saved."),
                "archived" => Some("The event type is archived: endpoints can no longer subscribe to it, and messages of it are still accepted."),
                _ => None,
            },
        },
        StatusCode::OK,
    ))
}

/// The event type form, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventTypeForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    /// Empty for a new event type.
    #[serde(default)]
    pub existing: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub schema: String,
    #[serde(default)]
    pub example: String,
    #[serde(default)]
    pub validate: String,
    /// `save`, `archive` or `unarchive`.
    #[serde(default)]
    pub intent: String,
}

#[derive(Template)]
#[template(path = "dashboard/event_type_form.html")]
pub struct EventTypeFormPage {
    pub chrome: Chrome,
    pub title: String,
    pub form: EventTypeForm,
    pub archived: bool,
    pub errors: Vec<(&'static str, String)>,
}

impl EventTypeFormPage {
    pub fn error_for(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, e)| e.as_str())
    }
}

#[derive(Deserialize, Default)]
pub struct EditQuery {
    #[serde(default)]
    name: String,
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// `GET /ui/event-types/edit?name=`: the form, empty or with an event type.
pub async fn event_type_form(
    State(state): State<AppState>,
    session: OperatorSession,
    Query(query): Query<EditQuery>,
) -> PageResult {
    let mut form = EventTypeForm::default();
    let mut archived = false;
    if !query.name.is_empty() {
        let found = state
            .store
            .get_event_type(&query.name)
            .await
            .or_problem()?
            .ok_or_else(|| super::pages::not_found("event type"))?;
        let schemas = found.schemas.as_ref();
        form.name = found.name.to_string();
        form.existing = found.name.to_string();
        form.description = found.description.clone();
        form.schema = schemas
            .and_then(catalog::newest_schema)
            .map(|schema| {
                let mut schema = schema.clone();
                // The example has its own field.
                if let Some(object) = schema.as_object_mut() {
                    object.remove("examples");
                }
                pretty(&schema)
            })
            .unwrap_or_default();
        form.example = schemas
            .and_then(catalog::schema_examples)
            .and_then(|e| e.first())
            .map(pretty)
            .unwrap_or_default();
        form.validate = if found.validate_payloads {
            "on".into()
        } else {
            String::new()
        };
        archived = found.archived;
    }
    Ok(form_page(
        &session,
        form,
        archived,
        Vec::new(),
        StatusCode::OK,
    ))
}

fn form_page(
    session: &OperatorSession,
    form: EventTypeForm,
    archived: bool,
    errors: Vec<(&'static str, String)>,
    status: StatusCode,
) -> axum::response::Response {
    render(
        &EventTypeFormPage {
            chrome: Chrome::new(session, "event-types"),
            title: if form.existing.is_empty() {
                "New event type".into()
            } else {
                format!("Event type {}", form.existing)
            },
            form,
            archived,
            errors,
        },
        status,
    )
}

/// The schemas object the form describes, or the form's errors: the schema must be a JSON
/// Schema that compiles, and the example must be JSON that it accepts.
fn schemas_of(form: &EventTypeForm) -> Result<Option<Value>, Vec<(&'static str, String)>> {
    if form.schema.trim().is_empty() {
        if !form.example.trim().is_empty() {
            return Err(vec![(
                "example",
                "An example needs a schema to follow.".into(),
            )]);
        }
        return Ok(None);
    }
    let mut schema: Value = serde_json::from_str(&form.schema)
        .map_err(|e| vec![("schema", format!("This is not JSON: {e}."))])?;
    if !schema.is_object() {
        return Err(vec![("schema", "A JSON Schema is an object.".into())]);
    }
    let example: Option<Value> = if form.example.trim().is_empty() {
        None
    } else {
        Some(
            serde_json::from_str(&form.example)
                .map_err(|e| vec![("example", format!("This is not JSON: {e}."))])?,
        )
    };
    if let (Some(object), Some(example)) = (schema.as_object_mut(), &example) {
        object.insert("examples".into(), json!([example]));
    }
    let schemas = json!({ "1": schema });
    if let Err(violation) = catalog::compile(&schemas) {
        return Err(vec![(
            "schema",
            format!("This schema does not compile: {}.", violation.message),
        )]);
    }
    if let Some(example) = &example {
        if let Err(violation) = catalog::validate(&schemas, example) {
            let place = if violation.path.is_empty() {
                "the example".to_string()
            } else {
                format!("at {}", violation.path)
            };
            return Err(vec![(
                "example",
                format!(
                    "The schema refuses the example {place}: {}.",
                    violation.message
                ),
            )]);
        }
    }
    Ok(Some(schemas))
}

/// `POST /ui/event-types/edit`: creates or updates an event type, or archives it.
pub async fn save_event_type(
    State(state): State<AppState>,
    session: OperatorSession,
    Form(form): Form<EventTypeForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let name = if form.existing.is_empty() {
        form.name.trim().to_string()
    } else {
        form.existing.clone()
    };
    let schemas = match schemas_of(&form) {
        Ok(schemas) => schemas,
        Err(errors) => {
            return Ok(form_page(
                &session,
                form,
                false,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
    };
    let archived = form.intent == "archive";
    if !form.existing.is_empty() || form.intent == "save" {
        // A new name must not take an existing event type's place.
        if form.existing.is_empty()
            && state
                .store
                .get_event_type(&name)
                .await
                .or_problem()?
                .is_some()
        {
            let errors = vec![(
                "name",
                "An event type with this name exists; edit it instead.".into(),
            )];
            return Ok(form_page(
                &session,
                form,
                false,
                errors,
                StatusCode::CONFLICT,
            ));
        }
    }
    let input = json!({
        "description": form.description,
        "archived": archived,
        "schemas": schemas,
        "validatePayloads": form.validate == "on",
    });
    let input = parse(input.to_string().as_bytes())
        .map(crate::api::extract::Json)
        .or_problem()?;
    let saved = event_types::replace(
        State(state.clone()),
        Principal::Org,
        ApiPath(name.clone()),
        input,
    )
    .await;
    if let Err(err) = saved {
        let errors: Vec<(&'static str, String)> = err
            .field_errors()
            .iter()
            .map(|e| {
                let field = match e.loc.last().map(String::as_str) {
                    Some("description") => "description",
                    Some("schemas") => "schema",
                    _ => "name",
                };
                (field, crate::portal::capitalize(&e.msg))
            })
            .collect();
        if errors.is_empty() {
            return Err(Problem::from_api(err));
        }
        return Ok(form_page(
            &session,
            form,
            false,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let (action, done) = if archived {
        ("event_type.archive", "archived")
    } else {
        ("event_type.save", "saved")
    };
    record(&state, &session, action, None, &name, "").await?;
    Ok(Redirect::to(&format!("/ui/event-types?done={done}")).into_response())
}

pub struct NodeRow {
    pub node: NodeReport,
    pub started: String,
    pub heartbeat: String,
    /// Not heard from for longer than a few reports.
    pub silent: bool,
}

pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub created: String,
    pub expires: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/system.html")]
pub struct SystemPage {
    pub chrome: Chrome,
    pub title: String,
    pub this_node: String,
    pub nodes: Vec<NodeRow>,
    pub settings: Vec<(&'static str, String)>,
    pub tokens: Vec<TokenRow>,
    /// A token just created, shown this once.
    pub new_token: Option<String>,
    pub notice: Option<&'static str>,
}

/// The settings as the system page shows them: secrets only as "set" or "not set".
fn shown_settings(s: &Settings) -> Vec<(&'static str, String)> {
    let secret = |set: bool| if set { "set (hidden)" } else { "not set" }.to_string();
    let secs = |d: std::time::Duration| humantime::format_duration(d).to_string();
    vec![
        ("HOOKD_LISTEN", s.listen.to_string()),
        (
            "HOOKD_DATABASE_URL",
            crate::store::redact_url(&s.database_url),
        ),
        ("HOOKD_ADMIN_TOKEN", secret(s.admin_token.is_some())),
        ("HOOKD_MAIN_SECRET", secret(s.main_secret.is_some())),
        ("role", format!("{:?}", s.role).to_lowercase()),
        (
            "HOOKD_PUBLIC_URL",
            s.portal
                .public_url
                .as_ref()
                .map_or_else(|| "(the listen address)".into(), |u| u.to_string()),
        ),
        (
            "allowed private destinations",
            if s.allow_destinations.is_empty() {
                "none".into()
            } else {
                s.allow_destinations
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        (
            "retry schedule",
            s.retry
                .schedule
                .iter()
                .map(|d| secs(*d))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("request timeout", secs(s.request_timeout)),
        ("connect timeout", secs(s.connect_timeout)),
        (
            "signature headers",
            format!("{:?}", s.signature_headers).to_lowercase(),
        ),
        ("largest payload", format!("{} bytes", s.max_payload_bytes)),
        ("poll interval", secs(s.poll_interval)),
        ("shutdown timeout", secs(s.shutdown_timeout)),
        ("attempts in flight per node", s.max_in_flight.to_string()),
        (
            "attempts in flight per endpoint and node",
            s.endpoint_max_in_flight.to_string(),
        ),
        (
            "API requests per second per token",
            if s.api_rate_limit == 0 {
                "no limit".into()
            } else {
                s.api_rate_limit.to_string()
            },
        ),
        (
            "database connections per node",
            s.pool.max_connections.to_string(),
        ),
        ("retention", secs(s.retention)),
        ("prune interval", secs(s.prune_interval)),
        ("lease", secs(s.lease_duration())),
        ("recovery batch", s.task_batch_size.to_string()),
        ("disable an endpoint failing for", secs(s.disable_after)),
        (
            "operational webhooks",
            s.operational_webhook
                .as_ref()
                .map_or_else(|| "off".into(), |w| format!("to {} (secret hidden)", w.url)),
        ),
        ("portal frame ancestors", s.portal.frame_ancestors.join(" ")),
        ("portal brand", s.portal.brand_name.clone()),
    ]
}

async fn system_page(
    state: &AppState,
    session: &OperatorSession,
    new_token: Option<String>,
    done: &str,
) -> PageResult {
    let now = now_millis();
    // Nodes silent for a day are gone; a few missed reports make one "silent".
    let nodes = state
        .store
        .list_nodes(now - 24 * 3_600_000)
        .await
        .or_problem()?
        .into_iter()
        .map(|node| NodeRow {
            started: when(node.started_at),
            heartbeat: format!("{} ago", age(now, node.heartbeat_at)),
            silent: now - node.heartbeat_at > 15_000,
            node,
        })
        .collect();
    let tokens = state
        .store
        .list_api_tokens()
        .await
        .or_problem()?
        .into_iter()
        .map(|t| TokenRow {
            scope: t
                .app_id
                .clone()
                .map_or_else(|| "org".into(), |app| format!("application {app}")),
            created: when(t.created_at),
            expires: t.expires_at.map(when),
            id: t.id.to_string(),
            name: t.name,
        })
        .collect();
    Ok(render(
        &SystemPage {
            chrome: Chrome::new(session, "system"),
            title: "System".into(),
            this_node: state.node_id.clone(),
            nodes,
            settings: shown_settings(&state.settings),
            tokens,
            new_token,
            notice: super::actions::notice(done),
        },
        StatusCode::OK,
    ))
}

/// `GET /ui/system`: the nodes, the settings and the API tokens.
pub async fn system(
    State(state): State<AppState>,
    session: OperatorSession,
    Query(query): Query<DoneQuery>,
) -> PageResult {
    system_page(&state, &session, None, &query.done).await
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Empty for an org token, else the application's id or uid.
    #[serde(default)]
    app: String,
}

/// `POST /ui/tokens`: creates an API token and shows it once.
pub async fn create_token(
    State(state): State<AppState>,
    session: OperatorSession,
    Form(form): Form<TokenForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Problem::from_api(ApiError::invalid(
            &["body", "name"],
            "a token needs a name of 1 to 100 characters, saying who uses it",
        )));
    }
    if let Some(found) = forbidden_control(name, Lines::Single) {
        return Err(Problem::from_api(ApiError::invalid(
            &["body", "name"],
            describe_control(found),
        )));
    }
    let app_id = match form.app.trim() {
        "" => None,
        app => Some(
            state
                .store
                .get_app(app)
                .await
                .or_problem()?
                .ok_or_else(|| super::pages::not_found("application"))?
                .id,
        ),
    };
    let token = issue_token(&state.store, app_id.as_deref(), name)
        .await
        .or_problem()?;
    let scope = app_id.as_deref().unwrap_or("org");
    record(
        &state,
        &session,
        "token.create",
        app_id.as_deref(),
        name,
        scope,
    )
    .await?;
    system_page(&state, &session, Some(token), "").await
}
