//! The REST API: Confluent Schema Registry's paths, bodies and error codes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use schema::CompatibilityLevel;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{required_role, Denied, Role, Users};
use crate::error::OperationError;
use crate::http::{json_body, ApiError};
use crate::metrics::{Metrics, OutcomeLabels, RequestLabels, RouteLabels};
use crate::store::{Mode, NewSchema, Reference, Registered, Store, SubjectVersion, VersionSpec};

/// The content type Confluent's registry answers with.
pub use crate::http::CONTENT_TYPE;

/// Shared by every handler.
#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    pub metrics: Metrics,
    /// Who may call; `None` serves everyone (loopback, or `--insecure`).
    pub auth: Option<Users>,
    /// Whether `/metrics` answers without credentials when `auth` is set.
    pub public_metrics: bool,
    pub body_limit: usize,
    pub request_timeout: Duration,
}

type Shared = State<Arc<AppState>>;
type Params = Query<HashMap<String, String>>;

fn ok(v: Value) -> Response {
    (StatusCode::OK, json_body(&v)).into_response()
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The API routes, with auth, metrics, timeout and body limit applied.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/", get(|| async { ok(json!({})) }))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup_schema).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(list_versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route("/subjects/{subject}/versions/{version}/schema", get(get_version_schema))
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/schemas/types", get(|| async { ok(json!(["AVRO"])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(check_one))
        .route("/compatibility/subjects/{subject}/versions", post(check_all))
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route(
            "/mode",
            get(get_global_mode).put(put_global_mode).delete(delete_global_mode),
        )
        .route("/mode/{subject}", get(get_mode).put(put_mode).delete(delete_mode))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(api)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(state.body_limit))
        .with_state(state)
}

async fn authenticate(State(state): Shared, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let needs = required_role(req.method(), route);
    if let Err(e) = check(&state, &req, route, needs) {
        return e.into_response();
    }
    next.run(req).await
}

/// Marks requests that came in on the anonymous loopback listener
/// ([`crate::ServerConfig::local_listen`]).
#[derive(Debug, Clone, Copy)]
pub struct Anonymous;

/// Whether the caller holds `needs`; everyone does without `auth`, and on
/// the anonymous loopback listener.
fn check(state: &AppState, req: &Request, route: &str, needs: Role) -> Result<(), ApiError> {
    let Some(users) = &state.auth else { return Ok(()) };
    if req.extensions().get::<Anonymous>().is_some() {
        return Ok(());
    }
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    users.check(header, needs).map_err(|denied| match denied {
        Denied::Unauthenticated => ApiError::Unauthorized,
        Denied::Forbidden { user, role, needs } => ApiError::Forbidden {
            user,
            role: role.name(),
            needs: needs.name(),
            method: req.method().to_string(),
            route: route.to_string(),
        },
    })
}

/// The methods the API serves. Anything else is refused before a metric
/// is labelled with it, so no client can grow the label set.
fn known_method(m: &axum::http::Method) -> bool {
    use axum::http::Method;
    [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE].contains(m)
}

/// Metrics per route, and the request timeout.
async fn observe(State(state): Shared, req: Request, next: Next) -> Response {
    if !known_method(req.method()) {
        return ApiError::MethodNotAllowed.into_response();
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    // An announced body over the limit is refused before any of it is read.
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let resp = if announced.is_some_and(|n| n > state.body_limit) {
        ApiError::PayloadTooLarge(state.body_limit).into_response()
    } else {
        match tokio::time::timeout(state.request_timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::Timeout.into_response(),
        }
    };
    state
        .metrics
        .request_seconds
        .get_or_create(&RouteLabels { route: route.clone() })
        .observe(start.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

async fn healthz(State(state): Shared) -> Response {
    if state.store.healthy().await {
        ok(json!({"status": "ok"}))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json_body(&json!({"status": "database unreachable"})),
        )
            .into_response()
    }
}

async fn metrics(State(state): Shared, req: Request) -> Response {
    if !state.public_metrics {
        if let Err(e) = check(&state, &req, "/metrics", Role::Read) {
            return e.into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

// --- bodies ------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: Option<String>,
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
    metadata: Option<Value>,
    rule_set: Option<Value>,
    id: Option<i32>,
    version: Option<i32>,
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        if e.is_data() {
            ApiError::UnprocessableBody(e.to_string())
        } else {
            ApiError::BadRequest(format!("request body is not valid JSON: {e}"))
        }
    })
}

fn new_schema(body: SchemaBody) -> Result<NewSchema, ApiError> {
    let text = body
        .schema
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::Registry(OperationError::InvalidSchema("Empty schema".into())))?;
    Ok(NewSchema {
        schema_type: body.schema_type.unwrap_or_else(|| "AVRO".into()).to_ascii_uppercase(),
        text,
        references: body.references,
        metadata: body.metadata,
        rule_set: body.rule_set,
        id: body.id,
        version: body.version,
    })
}

/// The fields of a schema that a version or an id lookup returns.
fn schema_fields(out: &mut serde_json::Map<String, Value>, s: &crate::store::StoredSchema) {
    out.insert("schema".into(), Value::String(s.text.clone()));
    if s.schema_type != "AVRO" {
        out.insert("schemaType".into(), Value::String(s.schema_type.clone()));
    }
    if !s.references.is_empty() {
        out.insert(
            "references".into(),
            serde_json::to_value(&s.references).unwrap_or_default(),
        );
    }
    if let Some(m) = &s.metadata {
        out.insert("metadata".into(), m.clone());
    }
    if let Some(r) = &s.rule_set {
        out.insert("ruleSet".into(), r.clone());
    }
}

fn version_json(v: &SubjectVersion) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("subject".into(), Value::String(v.subject.clone()));
    out.insert("version".into(), json!(v.version));
    out.insert("id".into(), json!(v.schema.id));
    schema_fields(&mut out, &v.schema);
    Value::Object(out)
}

// --- subjects and versions ---------------------------------------------

async fn list_subjects(State(state): Shared, Query(q): Params) -> Result<Response, ApiError> {
    let prefix = q.get("subjectPrefix").map(String::as_str).unwrap_or("");
    Ok(ok(json!(state.store.subjects(flag(&q, "deleted"), prefix).await?)))
}

async fn list_versions(
    State(state): Shared,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    Ok(ok(json!(state.store.versions(&subject, flag(&q, "deleted")).await?)))
}

async fn get_version(
    State(state): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let v = state
        .store
        .version(&subject, VersionSpec::parse(&version)?, flag(&q, "deleted"))
        .await?;
    Ok(ok(version_json(&v)))
}

async fn get_version_schema(
    State(state): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let v = state
        .store
        .version(&subject, VersionSpec::parse(&version)?, flag(&q, "deleted"))
        .await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        v.schema.text.clone(),
    )
        .into_response())
}

async fn referenced_by(
    State(state): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let v = state
        .store
        .version(&subject, VersionSpec::parse(&version)?, false)
        .await?;
    Ok(ok(json!(state.store.referenced_by(&subject, v.version).await?)))
}

async fn register(
    State(state): Shared,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let outcome = |o: &'static str| {
        state
            .metrics
            .registrations
            .get_or_create(&OutcomeLabels { outcome: o })
            .inc()
    };
    let new = match parse_body(body, state.body_limit).and_then(new_schema) {
        Ok(n) => n,
        Err(e) => {
            outcome("invalid");
            return Err(e);
        }
    };
    match state.store.register(&subject, &new, flag(&q, "normalize")).await {
        Ok(Registered::NewVersion { id, version }) => {
            outcome("new_version");
            tracing::info!(subject = %subject, id, version, "registered a new version");
            Ok(ok(json!({"id": id})))
        }
        Ok(Registered::Existing { id, .. }) => {
            outcome("existing");
            Ok(ok(json!({"id": id})))
        }
        Err(e) => {
            outcome(match e {
                OperationError::Incompatible(_) => "incompatible",
                OperationError::InvalidSchema(_) => "invalid",
                _ => "error",
            });
            Err(e.into())
        }
    }
}

async fn lookup_schema(
    State(state): Shared,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let new = new_schema(parse_body(body, state.body_limit)?)?;
    let v = state
        .store
        .lookup(&subject, &new, flag(&q, "normalize"), flag(&q, "deleted"))
        .await?;
    Ok(ok(version_json(&v)))
}

async fn delete_subject(
    State(state): Shared,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    Ok(ok(json!(
        state.store.delete_subject(&subject, flag(&q, "permanent")).await?
    )))
}

async fn delete_version(
    State(state): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let v = state
        .store
        .delete_version(&subject, VersionSpec::parse(&version)?, flag(&q, "permanent"))
        .await?;
    Ok(ok(json!(v)))
}

// --- schemas by id -----------------------------------------------------

fn parse_id(id: &str) -> Result<i32, ApiError> {
    id.parse()
        .map_err(|_| ApiError::Registry(OperationError::SchemaNotFound(id.to_string())))
}

async fn schema_by_id(State(state): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let n = parse_id(&id)?;
    let s = state
        .store
        .schema_by_id(n)
        .await?
        .ok_or(ApiError::Registry(OperationError::SchemaNotFound(id)))?;
    let mut out = serde_json::Map::new();
    schema_fields(&mut out, &s);
    Ok(ok(Value::Object(out)))
}

async fn schema_text_by_id(State(state): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let n = parse_id(&id)?;
    let s = state
        .store
        .schema_by_id(n)
        .await?
        .ok_or(ApiError::Registry(OperationError::SchemaNotFound(id)))?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], s.text.clone()).into_response())
}

async fn subjects_by_id(State(state): Shared, Path(id): Path<String>, Query(q): Params) -> Result<Response, ApiError> {
    let n = parse_id(&id)?;
    state
        .store
        .schema_by_id(n)
        .await?
        .ok_or_else(|| ApiError::Registry(OperationError::SchemaNotFound(id.clone())))?;
    let mut subjects: Vec<String> = state
        .store
        .usages(n, flag(&q, "deleted"))
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    Ok(ok(json!(subjects)))
}

async fn versions_by_id(State(state): Shared, Path(id): Path<String>, Query(q): Params) -> Result<Response, ApiError> {
    let n = parse_id(&id)?;
    state
        .store
        .schema_by_id(n)
        .await?
        .ok_or_else(|| ApiError::Registry(OperationError::SchemaNotFound(id.clone())))?;
    let usages: Vec<Value> = state
        .store
        .usages(n, flag(&q, "deleted"))
        .await?
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(Value::Array(usages)))
}

// --- compatibility -----------------------------------------------------

async fn compatibility(
    state: &AppState,
    subject: &str,
    against: Option<VersionSpec>,
    q: &HashMap<String, String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let new = new_schema(parse_body(body, state.body_limit)?)?;
    let problems = state.store.check_compatibility(subject, &new, against, None).await?;
    let mut out = json!({"is_compatible": problems.is_empty()});
    if flag(q, "verbose") {
        out["messages"] = json!(problems);
    }
    Ok(ok(out))
}

async fn check_one(
    State(state): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let spec = VersionSpec::parse(&version)?;
    compatibility(&state, &subject, Some(spec), &q, body).await
}

async fn check_all(
    State(state): Shared,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    compatibility(&state, &subject, None, &q, body).await
}

// --- config and mode ---------------------------------------------------

#[derive(Debug, Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ModeBody {
    mode: Option<String>,
}

fn level_of(body: ConfigBody) -> Result<CompatibilityLevel, ApiError> {
    body.compatibility
        .ok_or(ApiError::InvalidCompatibilityLevel)?
        .parse()
        .map_err(|_| ApiError::InvalidCompatibilityLevel)
}

async fn get_global_config(State(state): Shared) -> Result<Response, ApiError> {
    let level = state.store.compatibility("").await?.unwrap_or_default();
    Ok(ok(json!({"compatibilityLevel": level.as_str()})))
}

async fn put_global_config(State(state): Shared, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let level = level_of(parse_body(body, state.body_limit)?)?;
    state.store.set_compatibility("", level).await?;
    Ok(ok(json!({"compatibility": level.as_str()})))
}

async fn delete_global_config(State(state): Shared) -> Result<Response, ApiError> {
    let previous = state.store.delete_compatibility("").await?.unwrap_or_default();
    Ok(ok(json!({"compatibilityLevel": previous.as_str()})))
}

async fn get_config(State(state): Shared, Path(subject): Path<String>, Query(q): Params) -> Result<Response, ApiError> {
    let level = match state.store.compatibility(&subject).await? {
        Some(l) => l,
        None if flag(&q, "defaultToGlobal") => state.store.effective_compatibility_of(&subject).await?,
        None => {
            return Err(ApiError::Registry(
                OperationError::SubjectLevelCompatibilityNotConfigured(subject),
            ))
        }
    };
    Ok(ok(json!({"compatibilityLevel": level.as_str()})))
}

async fn put_config(
    State(state): Shared,
    Path(subject): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let level = level_of(parse_body(body, state.body_limit)?)?;
    state.store.set_compatibility(&subject, level).await?;
    Ok(ok(json!({"compatibility": level.as_str()})))
}

async fn delete_config(State(state): Shared, Path(subject): Path<String>) -> Result<Response, ApiError> {
    let previous = state
        .store
        .delete_compatibility(&subject)
        .await?
        .ok_or(ApiError::Registry(
            OperationError::SubjectLevelCompatibilityNotConfigured(subject),
        ))?;
    Ok(ok(json!({"compatibilityLevel": previous.as_str()})))
}

fn mode_of(body: ModeBody) -> Result<Mode, ApiError> {
    Ok(Mode::parse(&body.mode.ok_or(OperationError::InvalidMode)?)?)
}

async fn get_global_mode(State(state): Shared) -> Result<Response, ApiError> {
    let mode = state.store.mode("").await?.unwrap_or(Mode::ReadWrite);
    Ok(ok(json!({"mode": mode.as_str()})))
}

async fn put_global_mode(State(state): Shared, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let mode = mode_of(parse_body(body, state.body_limit)?)?;
    state.store.set_mode("", mode).await?;
    Ok(ok(json!({"mode": mode.as_str()})))
}

async fn delete_global_mode(State(state): Shared) -> Result<Response, ApiError> {
    let previous = state.store.delete_mode("").await?.unwrap_or(Mode::ReadWrite);
    Ok(ok(json!({"mode": previous.as_str()})))
}

async fn get_mode(State(state): Shared, Path(subject): Path<String>, Query(q): Params) -> Result<Response, ApiError> {
    let mode = match state.store.mode(&subject).await? {
        Some(m) => m,
        None if flag(&q, "defaultToGlobal") => state.store.mode("").await?.unwrap_or(Mode::ReadWrite),
        None => {
            return Err(ApiError::Registry(OperationError::SubjectLevelModeNotConfigured(
                subject,
            )))
        }
    };
    Ok(ok(json!({"mode": mode.as_str()})))
}

async fn put_mode(
    State(state): Shared,
    Path(subject): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mode = mode_of(parse_body(body, state.body_limit)?)?;
    state.store.set_mode(&subject, mode).await?;
    Ok(ok(json!({"mode": mode.as_str()})))
}

async fn delete_mode(State(state): Shared, Path(subject): Path<String>) -> Result<Response, ApiError> {
    let previous = state.store.delete_mode(&subject).await?.ok_or(ApiError::Registry(
        OperationError::SubjectLevelModeNotConfigured(subject),
    ))?;
    Ok(ok(json!({"mode": previous.as_str()})))
}
