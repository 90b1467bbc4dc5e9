//! The SCIM 2.0 routes (`/scim/v2/...`, RFC 7644) on the admin listener, for Okta and Entra
//! provisioning.
//!
//! They sit on the admin listener rather than a listener of their own because both are
//! operator-facing control APIs that want TLS, a loopback or management-network address and no
//! exposure through the proxy's listeners; one more socket would add configuration without adding
//! isolation. Trust is still per purpose: these routes take only the `[scim]` token (compared in
//! constant time) and the admin routes only the admin token, so the IdP cannot read events and a
//! reviewer's token cannot provision people.
//!
//! Bodies are read up to [`MAX_BODY`] (413 beyond), every answer is `application/scim+json`,
//! every refusal the SCIM error JSON. Writes run on the blocking pool (SQLite), are committed
//! before the answer, and then swap the merged directory in (`Shared::scim_changed`).
//!
//! Groups are not provisioned: `GET /Groups` answers an empty list (Entra and Okta probe it),
//! any write to `/Groups` 501 with a sentence saying to turn group push off.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::scim::resource::{ENTERPRISE_SCHEMA, LIST_SCHEMA, USER_SCHEMA};
use crate::scim::store::Row;
use crate::scim::users::{etag, render};
use crate::scim::{ScimError, ScimUsers, filter};
use crate::state::Shared;

/// Largest request body read (a User is a few KiB; Entra's largest PATCH far less).
pub const MAX_BODY: usize = 1 << 20;

/// Most resources in one list page.
const MAX_COUNT: usize = 1000;

const CONTENT_TYPE: &str = "application/scim+json";

#[derive(Clone)]
struct ScimApp {
    shared: Arc<Shared>,
    users: Arc<ScimUsers>,
    token: Arc<Secret>,
    https: bool,
}

/// The `/scim/v2` router, its own bearer check included.
pub(super) fn router(
    shared: Arc<Shared>,
    users: Arc<ScimUsers>,
    token: Secret,
    https: bool,
) -> Router {
    let app = ScimApp {
        shared,
        users,
        token: Arc::new(token),
        https,
    };
    Router::new()
        .route("/Users", get(list).post(create))
        .route(
            "/Users/{id}",
            get(read).put(replace).patch(patch).delete(delete),
        )
        .route("/Groups", get(groups).fallback(groups_write))
        .route("/Groups/{id}", axum::routing::any(groups_write))
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/User", get(resource_type_user))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema))
        .fallback(|| async { answer(Err(ScimError::not_found("no such SCIM endpoint"))) })
        .layer(axum::middleware::from_fn_with_state(app.clone(), auth))
        .with_state(app)
}

/// A SCIM answer: the JSON with its status, or the error body.
fn answer(r: Result<(StatusCode, Value), ScimError>) -> Response {
    let (status, body) = match r {
        Ok(ok) => ok,
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.to_json(),
        ),
    };
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"locgate-scim\""),
        );
    }
    resp
}

/// A single-resource answer, with its `ETag` (and `Location` on create).
fn resource(app: &ScimApp, headers: &HeaderMap, status: StatusCode, row: &Row) -> Response {
    let base = base_url(app, headers);
    let mut resp = answer(Ok((status, render(row, &base))));
    if let Ok(v) = HeaderValue::from_str(&etag(row.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Ok(v) = HeaderValue::from_str(&format!("{base}/Users/{}", row.id))
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn auth(State(app): State<ScimApp>, req: Request, next: axum::middleware::Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .and_then(|_| v.get(7..))
        })
        .map(str::trim);
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(app.token.expose().as_bytes())));
    if ok {
        next.run(req).await
    } else {
        tracing::warn!(path = %req.uri().path(), "SCIM request with a missing or wrong token");
        answer(Err(ScimError::unauthorized()))
    }
}

/// The URL the routes are served under, for `meta.location`: the request's `Host` when it is a
/// plain host name (it is echoed into a header), else `localhost`.
fn base_url(app: &ScimApp, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    let scheme = if app.https { "https" } else { "http" };
    format!("{scheme}://{host}/scim/v2")
}

/// Reads the body as JSON, at most [`MAX_BODY`] bytes.
async fn json_body(req: Request) -> Result<Value, ScimError> {
    let too_large = || ScimError::too_large(format!("request body over {MAX_BODY} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ScimError::invalid_syntax(format!("body is not JSON: {e}")))
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Runs a store operation on the blocking pool; after a write, the merged directory is swapped in.
async fn blocking<T: Send + 'static>(
    app: &ScimApp,
    writes: bool,
    f: impl FnOnce(&ScimUsers) -> Result<T, ScimError> + Send + 'static,
) -> Result<T, ScimError> {
    let users = app.users.clone();
    let shared = app.shared.clone();
    tokio::task::spawn_blocking(move || {
        let out = f(&users)?;
        if writes {
            shared.scim_changed();
        }
        Ok(out)
    })
    .await
    .map_err(|e| ScimError::internal(format!("SCIM task failed: {e}")))?
}

fn number(q: &HashMap<String, String>, name: &str) -> Result<Option<usize>, ScimError> {
    let Some((_, v)) = q.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) else {
        return Ok(None);
    };
    // Negative numbers mean the lowest value (RFC 7644 §3.4.2.4).
    if v.trim().starts_with('-') && v.trim()[1..].chars().all(|c| c.is_ascii_digit()) {
        return Ok(Some(0));
    }
    v.trim()
        .parse::<usize>()
        .map(Some)
        .map_err(|_| ScimError::invalid_value(format!("{name} `{v}` is not a number")))
}

fn list_response(items: Vec<Value>, total: usize, start: usize) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

async fn list(
    State(app): State<ScimApp>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let run = async {
        let f = match q.iter().find(|(k, _)| k.eq_ignore_ascii_case("filter")) {
            Some((_, text)) => Some(filter::parse(text)?),
            None => None,
        };
        let start = number(&q, "startIndex")?.unwrap_or(1).max(1);
        let count = number(&q, "count")?.unwrap_or(100).min(MAX_COUNT);
        let rows = blocking(&app, false, move |u| Ok(u.list(f.as_ref()))).await?;
        let base = base_url(&app, &headers);
        let total = rows.len();
        let page: Vec<Value> = rows
            .iter()
            .skip(start - 1)
            .take(count)
            .map(|r| render(r, &base))
            .collect();
        Ok((StatusCode::OK, list_response(page, total, start)))
    };
    answer(run.await)
}

async fn read(State(app): State<ScimApp>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match blocking(&app, false, move |u| u.get(&id)).await {
        Ok(row) => resource(&app, &headers, StatusCode::OK, &row),
        Err(e) => answer(Err(e)),
    }
}

async fn create(State(app): State<ScimApp>, req: Request) -> Response {
    let headers = req.headers().clone();
    let run = async {
        let body = json_body(req).await?;
        blocking(&app, true, move |u| u.create(body)).await
    };
    match run.await {
        Ok(row) => {
            tracing::info!(id = %row.id, user = row.user_name(), "SCIM user created");
            resource(&app, &headers, StatusCode::CREATED, &row)
        }
        Err(e) => answer(Err(e)),
    }
}

async fn replace(State(app): State<ScimApp>, Path(id): Path<String>, req: Request) -> Response {
    let headers = req.headers().clone();
    let cond = if_match(&headers);
    let run = async {
        let body = json_body(req).await?;
        blocking(&app, true, move |u| u.replace(&id, body, cond.as_deref())).await
    };
    match run.await {
        Ok(row) => resource(&app, &headers, StatusCode::OK, &row),
        Err(e) => answer(Err(e)),
    }
}

async fn patch(State(app): State<ScimApp>, Path(id): Path<String>, req: Request) -> Response {
    let headers = req.headers().clone();
    let cond = if_match(&headers);
    let run = async {
        let body = json_body(req).await?;
        blocking(&app, true, move |u| u.patch(&id, &body, cond.as_deref())).await
    };
    match run.await {
        Ok(row) => resource(&app, &headers, StatusCode::OK, &row),
        Err(e) => answer(Err(e)),
    }
}

async fn delete(
    State(app): State<ScimApp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let cond = if_match(&headers);
    match blocking(&app, true, move |u| u.delete(&id, cond.as_deref())).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => answer(Err(e)),
    }
}

async fn groups(Query(q): Query<HashMap<String, String>>) -> Response {
    let start = number(&q, "startIndex").ok().flatten().unwrap_or(1).max(1);
    answer(Ok((StatusCode::OK, list_response(Vec::new(), 0, start))))
}

async fn groups_write(method: Method) -> Response {
    if method == Method::GET {
        return answer(Err(ScimError::not_found(
            "no such Group: groups are not provisioned",
        )));
    }
    answer(Err(ScimError::not_implemented(
        "locgate does not take groups; turn group push off in the provisioning settings",
    )))
}

async fn service_provider_config() -> Response {
    answer(Ok((
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/locgate/locgate/blob/main/deploy/scim.md",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_COUNT},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The [scim] token of locgate's configuration",
                "primary": true
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": "/scim/v2/ServiceProviderConfig"}
        }),
    )))
}

fn user_resource_type() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "An employee whose declared home locgate checks sign-ins against",
        "schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
        "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/User"}
    })
}

async fn resource_types() -> Response {
    answer(Ok((
        StatusCode::OK,
        list_response(vec![user_resource_type()], 1, 1),
    )))
}

async fn resource_type_user() -> Response {
    answer(Ok((StatusCode::OK, user_resource_type())))
}

fn attribute(name: &str, kind: &str, multi: bool, sub: &[(&str, &str)]) -> Value {
    let mut a = json!({
        "name": name, "type": kind, "multiValued": multi, "required": name == "userName",
        "caseExact": false, "mutability": "readWrite", "returned": "default",
        "uniqueness": if name == "userName" { "server" } else { "none" },
    });
    if !sub.is_empty()
        && let Some(o) = a.as_object_mut()
    {
        let subs: Vec<Value> = sub
            .iter()
            .map(|(n, k)| attribute(n, k, false, &[]))
            .collect();
        o.insert("subAttributes".into(), Value::Array(subs));
    }
    a
}

/// The schemas, listing the attributes locgate reads; other attributes are kept as sent.
fn all_schemas() -> Vec<Value> {
    let address = [
        ("type", "string"),
        ("locality", "string"),
        ("region", "string"),
        ("postalCode", "string"),
        ("country", "string"),
        ("primary", "boolean"),
    ];
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": USER_SCHEMA,
            "name": "User",
            "description": "User account",
            "attributes": [
                attribute("userName", "string", false, &[]),
                attribute("externalId", "string", false, &[]),
                attribute("active", "boolean", false, &[]),
                attribute("timezone", "string", false, &[]),
                attribute("emails", "complex", true, &[("value", "string"), ("type", "string"), ("primary", "boolean")]),
                attribute("addresses", "complex", true, &address),
            ],
            "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{USER_SCHEMA}")}
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": ENTERPRISE_SCHEMA,
            "name": "EnterpriseUser",
            "description": "Enterprise User (kept as sent; locgate reads none of it)",
            "attributes": [attribute("employeeNumber", "string", false, &[])],
            "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{ENTERPRISE_SCHEMA}")}
        }),
    ]
}

async fn schemas() -> Response {
    let all = all_schemas();
    let n = all.len();
    answer(Ok((StatusCode::OK, list_response(all, n, 1))))
}

async fn schema(Path(id): Path<String>) -> Response {
    match all_schemas().into_iter().find(|s| s["id"] == id.as_str()) {
        Some(s) => answer(Ok((StatusCode::OK, s))),
        None => answer(Err(ScimError::not_found(format!("no schema {id}")))),
    }
}
