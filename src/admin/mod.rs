//! The admin listener: review API, review page, `/metrics`, `/healthz`, `/readyz`.
//!
//! It runs on its own socket (loopback by default) so the proxy's listeners never expose it, and
//! every route but the login form requires the token: `Authorization: Bearer <token>` for
//! programs (compared in constant time), or, for browsers, a server-side session
//! ([`sessions`]): `POST /login` with the right token creates a random 256-bit session id, the
//! browser holds it in an `HttpOnly; SameSite=Strict; Path=/` cookie (plus `Secure` when the
//! console runs HTTPS, `[admin] tls`), and signing out revokes it on the server. The browser
//! never holds the token itself. With `[admin.oidc]` browsers sign in through the company's
//! identity provider instead ([`oidc`]) and the token form is off; a session then names the
//! person and their role ([`roles`]: viewer, reviewer, admin). Every change made with a session
//! cookie must carry the session's CSRF token (`X-CSRF-Token`), on top of `SameSite=Strict` and
//! JSON-only endpoints; who made it comes from the authentication ([`Principal`]), never from
//! the body. Wrong tokens at `POST /login` are limited per client address ([`login_limit`]:
//! 5 a minute, then 429 with `Retry-After`).
//!
//! **Plain HTTP must stay on loopback.** Without `tls`, the token (at login) and the session
//! cookie cross the network in clear text and the cookie cannot be `Secure`; anyone on the path
//! could read them. Put the console on HTTPS (`tls`) or behind a TLS proxy on the same host.
//!
//! Database calls run on the blocking pool with their own connection; the request path of the
//! proxy never shares anything with this module but the counters.

mod case_page;
mod cases;
mod csv;
mod login_limit;
mod oidc;
mod page;
mod ranking;

pub use ranking::Period;
mod roles;
mod scim;
mod sessions;
mod store_access;
mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::audit::store::{Filter, Reader, StoreError, StoreLocation, parse_since};
use crate::config::AdminConfig;
use crate::state::Shared;

/// Name of the browser session cookie.
const COOKIE: &str = "locgate_admin";
/// Name of the cookie holding the session's CSRF token, which the page's script reads and
/// sends back in [`CSRF_HEADER`] (another site can neither read it nor set the header).
const CSRF_COOKIE: &str = "locgate_csrf";
/// The header every change from a browser session must carry.
const CSRF_HEADER: &str = "x-csrf-token";
/// The cookie binding an OpenID Connect sign-in to the browser that started it.
const OIDC_COOKIE: &str = "locgate_oidc";

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    token: Arc<crate::config::Secret>,
    /// The console's own connection to the event store.
    store: Arc<store_access::StoreAccess>,
    /// Signed-in browsers.
    sessions: Arc<sessions::Sessions>,
    /// Wrong tokens per client address.
    login_limit: Arc<login_limit::LoginLimit>,
    /// Whether the console runs HTTPS (the cookie is then `Secure`).
    https: bool,
    /// The period the employees are ranked over.
    period: Arc<Period>,
    /// Sign-in with the identity provider, when configured (then the token form is off).
    oidc: Option<Arc<oidc::Oidc>>,
    /// The directory file benign decisions write back to.
    directory_file: Option<(std::path::PathBuf, f64)>,
}

/// Who makes a request, as its authentication says (never as its body says): what a case's
/// trail records.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The name recorded.
    pub(crate) name: String,
    /// What they may do.
    pub(crate) role: roles::Role,
    /// A browser session's CSRF token (none for the bearer token: nothing ambient to abuse).
    pub(crate) csrf: Option<String>,
    /// Whether `name` is a person the identity provider named (then an acknowledgement is
    /// recorded under it, whatever the request body says).
    pub(crate) personal: bool,
}

/// A fresh random bearer token (64 hex digits) for a console started without one
/// (`locgate review`); `None` when the system has no randomness.
pub fn random_token() -> Option<crate::config::Secret> {
    sessions::random_hex32().map(crate::config::Secret::new)
}

/// Binds the admin listener and serves it until `stop` turns true; returns the bound address.
///
/// With `scim` (and `shared.scim` opened from it), the SCIM 2.0 routes are served under
/// `/scim/v2/` with their own token ([`scim`]).
pub async fn serve(
    cfg: &AdminConfig,
    scim: Option<&crate::config::ScimConfig>,
    db: Option<StoreLocation>,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    serve_ranking(cfg, scim, db, shared, Period::recent(), stop).await
}

/// [`serve`] ranking over `period`; `locgate review` serves a replay's store with
/// [`Period::Whole`] and starts ranking it at once.
pub async fn serve_ranking(
    cfg: &AdminConfig,
    scim: Option<&crate::config::ScimConfig>,
    db: Option<StoreLocation>,
    shared: Arc<Shared>,
    period: Period,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(cfg.bind)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("admin listener {}: {e}", cfg.bind)))?;
    let addr = listener.local_addr()?;
    if cfg.tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "admin listener is plain HTTP and not on loopback: set [admin] tls");
    }
    let tls = match &cfg.tls {
        Some(t) => {
            Some(crate::edge::tls::TlsTerminator::load("admin", t).map_err(std::io::Error::other)?)
        }
        None => None,
    };
    let app = App {
        shared,
        token: Arc::new(cfg.token.clone()),
        store: Arc::new(store_access::StoreAccess::new(db)),
        sessions: Arc::default(),
        login_limit: Arc::default(),
        https: tls.is_some(),
        period: Arc::new(period),
        oidc: match &cfg.oidc {
            Some(o) => {
                Some(Arc::new(oidc::Oidc::new(o.clone()).map_err(|e| {
                    std::io::Error::other(format!("[admin.oidc]: {e}"))
                })?))
            }
            None => None,
        },
        directory_file: cfg.directory_file.clone(),
    };
    if let Some(o) = &app.oidc {
        tracing::info!(
            issuer = o.issuer(),
            "console sign-in through the identity provider; the token form is off"
        );
        // Its signing keys join the identity sources' refresher.
        tokio::spawn(crate::identity::start_key_refresh(
            crate::identity::KEY_FETCH_WAIT,
        ));
    }
    if app.store.configured() {
        ranking::start(&app);
    }
    if app.store.configured() {
        tokio::spawn(cases::sweep_forever(app.clone(), stop.clone()));
    }
    let https = app.https;
    let mut routes = router(app.clone());
    if let (Some(sc), Some(users)) = (scim, app.shared.scim.clone()) {
        routes = routes.nest(
            "/scim/v2",
            scim::router(app.shared.clone(), users, sc.token.clone(), https),
        );
        tracing::info!(%addr, "SCIM 2.0 provisioning served under /scim/v2 (its own token)");
    }
    let service = routes.into_make_service_with_connect_info::<tls::Peer>();
    tracing::info!(%addr, https = tls.is_some(), "admin listening");
    let shutdown = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    let served = match tls {
        Some(tls) => {
            let listener = tls::TlsListener::start(listener, tls)?;
            tokio::spawn(async move {
                axum::serve(listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
            })
        }
        None => tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }),
    };
    tokio::spawn(async move {
        if let Ok(Err(e)) = served.await {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    Ok(addr)
}

fn router(app: App) -> Router {
    let protected = Router::new()
        .route("/", get(page_index))
        .route("/employees/{id}", get(page_employee))
        .route("/logout", get(logout).post(logout))
        .route("/api/events", get(api_events))
        .route("/api/events/{id}/ack", post(api_ack))
        .route("/api/employees/{id}", get(api_employee))
        .route("/api/report", get(api_report))
        .route("/cases", get(cases::page_list))
        .route("/cases/{id}", get(cases::page_case))
        .route("/cases/{id}/report", get(cases::page_report))
        .route("/api/events.csv", get(api_events_csv))
        .route("/api/cases", get(cases::api_list))
        .route("/api/cases/trail", get(cases::api_trail))
        .route(
            "/api/cases/{id}",
            get(cases::api_get).post(cases::api_change),
        )
        .route("/api/cases/{id}/events.csv", get(cases::api_csv))
        .route("/metrics", get(metrics))
        .route("/api/sessions/revoke", post(api_revoke_sessions))
        .route("/api/whoami", get(api_whoami))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), auth));
    // Probes (load balancers, kubelet, HEALTHCHECK) carry no token: the health routes answer
    // them with a status word only; `/readyz` gives its detail to the token alone.
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/oidc/start", get(oidc_start))
        .route("/oidc/callback", get(oidc_callback))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .with_state(app)
}

fn authorized(app: &App, headers: &HeaderMap) -> bool {
    principal(app, headers).is_some()
}

/// Who the request's credentials name: the API token, or a signed-in browser session.
fn principal(app: &App, headers: &HeaderMap) -> Option<Principal> {
    let want = app.token.expose().as_bytes();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(given) = bearer {
        return bool::from(given.trim().as_bytes().ct_eq(want)).then(|| Principal {
            name: "admin token (API)".into(),
            role: roles::Role::Admin,
            csrf: None,
            personal: false,
        });
    }
    let now = std::time::Instant::now();
    session_ids(headers)
        .find_map(|id| app.sessions.get(id, now))
        .map(|s| Principal {
            personal: app.oidc.is_some(),
            name: s.name,
            role: s.role,
            csrf: Some(s.csrf),
        })
}

/// Why a signed-in request may not do what it asks, if it may not: a change from a browser
/// session needs the session's CSRF token; a change needs the reviewer role (revoking
/// sessions: admin); signing out is for everyone.
fn forbidden(who: &Principal, req: &axum::extract::Request) -> Option<String> {
    use axum::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    if let Some(want) = &who.csrf {
        let given = req
            .headers()
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(given.ct_eq(want.as_bytes())) {
            return Some("missing or wrong CSRF token (X-CSRF-Token)".into());
        }
    }
    let path = req.uri().path();
    let needed = if path == "/logout" {
        roles::Role::Viewer
    } else if path.starts_with("/api/sessions") {
        roles::Role::Admin
    } else {
        roles::Role::Reviewer
    };
    (who.role < needed).then(|| {
        format!(
            "{} is a {}: this needs the {} role",
            who.name,
            who.role.as_str(),
            needed.as_str()
        )
    })
}

/// The session ids in the request's `locgate_admin` cookies.
fn session_ids(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// The cookie's attributes: `Secure` only on HTTPS (a browser would refuse it over plain
/// HTTP, which stays on loopback).
fn cookie_attributes(app: &App) -> &'static str {
    if app.https {
        "HttpOnly; SameSite=Strict; Path=/; Secure"
    } else {
        "HttpOnly; SameSite=Strict; Path=/"
    }
}

async fn auth(
    State(app): State<App>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(who) = principal(&app, req.headers()) {
        if let Some(why) = forbidden(&who, &req) {
            tracing::warn!(who = %who.name, path = %req.uri().path(), %why, "console request refused");
            return (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({ "error": why })),
            )
                .into_response();
        }
        req.extensions_mut().insert(who);
        return next.run(req).await;
    }
    let path = req.uri().path();
    let browser = !path.starts_with("/api/")
        && path != "/metrics"
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    let mut resp = if browser {
        (StatusCode::UNAUTHORIZED, Html(page::login(None, idp(&app)))).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "missing or wrong bearer token"})),
        )
            .into_response()
    };
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"locgate\""),
    );
    resp
}

/// The identity provider the login page offers, when sign-in goes through one.
fn idp(app: &App) -> Option<&str> {
    app.oidc.as_deref().map(oidc::Oidc::issuer)
}

async fn login_form(State(app): State<App>) -> Html<String> {
    Html(page::login(None, idp(&app)))
}

/// Adds a `Set-Cookie`.
fn set_cookie(resp: &mut Response, cookie: &str) {
    if let Ok(v) = header::HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The session's two cookies: its id (HttpOnly) and its CSRF token (readable by the page's
/// script, which sends it back in a header).
fn session_cookies(app: &App, resp: &mut Response, id: &str, csrf: &str, ttl: std::time::Duration) {
    let attrs = cookie_attributes(app);
    let secs = ttl.as_secs();
    set_cookie(resp, &format!("{COOKIE}={id}; {attrs}; Max-Age={secs}"));
    let readable = attrs.replace("HttpOnly; ", "");
    set_cookie(
        resp,
        &format!("{CSRF_COOKIE}={csrf}; {readable}; Max-Age={secs}"),
    );
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(app): State<App>,
    ConnectInfo(tls::Peer(peer)): ConnectInfo<tls::Peer>,
    axum::Form(f): axum::Form<LoginForm>,
) -> Response {
    let now = std::time::Instant::now();
    let client: IpAddr = crate::client_addr::normalize(peer.ip());
    if app.oidc.is_some() {
        // The token stays for the API and scripts: people sign in as themselves.
        return (
            StatusCode::FORBIDDEN,
            Html(page::login(
                Some("Sign-in with the token is off: sign in with your company account."),
                idp(&app),
            )),
        )
            .into_response();
    }
    if let Some(wait) = app.login_limit.blocked(client, now) {
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            Html(page::login(
                Some("Too many wrong tokens from this address. Wait a minute and try again."),
                None,
            )),
        )
            .into_response();
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs.max(1)));
        return resp;
    }
    let ok = bool::from(
        f.token
            .trim()
            .as_bytes()
            .ct_eq(app.token.expose().as_bytes()),
    );
    if !ok {
        app.login_limit.failed(client, now);
        tracing::warn!(%client, "admin login with a wrong token");
        return (
            StatusCode::UNAUTHORIZED,
            Html(page::login(Some("That token is not right."), None)),
        )
            .into_response();
    }
    app.login_limit.succeeded(client);
    let ttl = sessions::SESSION_TTL;
    let name = "admin token (console session)";
    let Some((id, info)) = app.sessions.create(now, ttl, name, roles::Role::Admin) else {
        tracing::error!("admin login: no randomness for a session id");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(page::error("cannot create a session")),
        )
            .into_response();
    };
    let mut resp = Redirect::to("/").into_response();
    session_cookies(&app, &mut resp, &id, &info.csrf, ttl);
    resp
}

/// `GET /oidc/start`: off to the identity provider, the sign-in bound to this browser.
async fn oidc_start(
    State(app): State<App>,
    ConnectInfo(tls::Peer(peer)): ConnectInfo<tls::Peer>,
) -> Response {
    let Some(o) = app.oidc.clone() else {
        return (
            StatusCode::NOT_FOUND,
            Html(page::error("no identity provider is configured")),
        )
            .into_response();
    };
    match o.start(crate::client_addr::normalize(peer.ip())).await {
        Ok((to, state)) => {
            let mut resp = Redirect::to(&to).into_response();
            // Lax, not Strict: the provider's redirect back is a cross-site navigation.
            let secure = if app.https { "; Secure" } else { "" };
            set_cookie(
                &mut resp,
                &format!(
                    "{OIDC_COOKIE}={state}; HttpOnly; SameSite=Lax; Path=/oidc; Max-Age=600{secure}"
                ),
            );
            resp
        }
        Err(why) => {
            tracing::error!(error = %why, "console sign-in: identity provider unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page::login(
                    Some(&format!("The identity provider cannot be reached: {why}")),
                    idp(&app),
                )),
            )
                .into_response()
        }
    }
}

/// `GET /oidc/callback?code=..&state=..`: the provider's answer; a session when it checks out.
async fn oidc_callback(
    State(app): State<App>,
    ConnectInfo(tls::Peer(peer)): ConnectInfo<tls::Peer>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(o) = app.oidc.clone() else {
        return (
            StatusCode::NOT_FOUND,
            Html(page::error("no identity provider is configured")),
        )
            .into_response();
    };
    let client = crate::client_addr::normalize(peer.ip());
    let refuse = |status: StatusCode, why: String| {
        tracing::warn!(%client, %why, "console sign-in refused");
        (status, Html(page::login(Some(&why), idp(&app)))).into_response()
    };
    if let Some(e) = q.get("error") {
        let detail = q.get("error_description").map(String::as_str).unwrap_or("");
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!(
                "The identity provider said: {} {}",
                oidc::shown(e),
                oidc::shown(detail)
            ),
        );
    }
    let (Some(code), Some(state)) = (q.get("code"), q.get("state")) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The answer has no code or state.".into(),
        );
    };
    let bound = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(OIDC_COOKIE)?.strip_prefix('='));
    let who = match o.finish(code, state, bound).await {
        Ok(w) => w,
        Err(why) => return refuse(StatusCode::UNAUTHORIZED, why),
    };
    let ttl = o.session_ttl();
    let Some((id, info)) = app
        .sessions
        .create(std::time::Instant::now(), ttl, &who.name, who.role)
    else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot create a session".into(),
        );
    };
    tracing::info!(%client, who = %who.name, role = who.role.as_str(), "console sign-in");
    // A page that moves on by itself rather than a redirect: the session cookie is
    // SameSite=Strict, and a redirect chain that began at the provider counts as cross-site,
    // so the browser would not send it to the first page.
    let mut resp = Html(
        "<!doctype html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url=/\"><title>Signed in</title><p><a href=\"/\">Signed in: continue</a></p>",
    )
    .into_response();
    session_cookies(&app, &mut resp, &id, &info.csrf, ttl);
    let secure = if app.https { "; Secure" } else { "" };
    set_cookie(
        &mut resp,
        &format!("{OIDC_COOKIE}=; HttpOnly; SameSite=Lax; Path=/oidc; Max-Age=0{secure}"),
    );
    resp
}

/// `GET /api/whoami`: who the credentials name, with their role; `personal` when the
/// identity provider named them (the page then records acknowledgements under that name and
/// asks for none).
async fn api_whoami(axum::Extension(who): axum::Extension<Principal>) -> Response {
    axum::Json(serde_json::json!({
        "name": who.name,
        "role": who.role.as_str(),
        "personal": who.personal,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    name: String,
}

/// `POST /api/sessions/revoke {"name": ..}` (admin): ends every console session of a person.
async fn api_revoke_sessions(
    State(app): State<App>,
    axum::Extension(who): axum::Extension<Principal>,
    body: Result<axum::Json<RevokeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let axum::Json(body) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let ended = app.sessions.revoke_named(body.name.trim());
    tracing::warn!(by = %who.name, of = %body.name, ended, "console sessions revoked");
    Ok(
        axum::Json(serde_json::json!({ "name": body.name.trim(), "revoked": ended }))
            .into_response(),
    )
}

/// Signs out: the session is revoked on the server (the old cookie stops working even if a
/// copy of it is kept), and the browser is told to drop it.
async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    for id in session_ids(&headers) {
        app.sessions.revoke(id);
    }
    let mut resp = Redirect::to("/login").into_response();
    session_cookies(&app, &mut resp, "", "", std::time::Duration::ZERO);
    resp
}

/// An API error: status and message, as JSON.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            StoreError::NotFound(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            other => {
                tracing::error!(error = %other, "event store query failed");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "event store unavailable".into(),
                )
            }
        }
    }
}

/// Runs `f` with the console's own store connection, on the blocking pool ([`store_access`]:
/// reconnects after a break, with a backoff while the store is down).
async fn with_store<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&mut Reader) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    answer(tokio::task::spawn_blocking(move || store.run(f)).await)
}

/// [`with_store`] on a connection of its own, for a long job (the ranking) that must not hold
/// the pages' connection.
async fn with_store_apart<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&mut Reader) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    answer(tokio::task::spawn_blocking(move || store.run_apart(f)).await)
}

fn answer<T>(
    done: Result<Result<T, store_access::Unavailable>, tokio::task::JoinError>,
) -> Result<T, ApiError> {
    use store_access::Unavailable;
    match done {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(Unavailable::Store(e))) => Err(ApiError::from(e)),
        Ok(Err(Unavailable::Down(why))) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, why)),
        Ok(Err(Unavailable::NotConfigured)) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no event store configured ([events] sqlite or postgres)".into(),
        )),
        Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// Builds a filter from query parameters; unknown parameters are an error, not ignored.
fn filter_from(q: &HashMap<String, String>, default_limit: usize) -> Result<Filter, ApiError> {
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    let mut f = Filter {
        limit: default_limit,
        ..Filter::default()
    };
    for (k, v) in q {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "employee" => f.employee = Some(v.to_owned()),
            "since" => f.since_ms = Some(parse_since(v).map_err(bad)?),
            "action" => f.action = Some(v.to_owned()),
            "reason" => f.reason = Some(v.to_owned()),
            "status" => {
                f.acked = match v {
                    "open" => Some(false),
                    "acked" => Some(true),
                    "all" => None,
                    _ => return Err(bad(format!("status `{v}` is not open, acked or all"))),
                }
            }
            "cursor" => f.before = Some(Filter::parse_cursor(v)?),
            "limit" => {
                f.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad(format!("limit `{v}` must be 1..=1000")))?
            }
            _ => return Err(bad(format!("unknown parameter `{k}`"))),
        }
    }
    f.validate()?;
    Ok(f)
}

async fn api_events(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let f = filter_from(&q, 100)?;
    let page = with_store(&app, move |s| s.query(&f)).await?;
    Ok(axum::Json(page).into_response())
}

/// `GET /api/events.csv`: the filtered queue (the `/api/events` parameters) as CSV.
async fn api_events_csv(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let f = filter_from(&q, 1000)?;
    let page = with_store(&app, move |s| s.query(&f)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"locgate-events.csv\"",
            ),
        ],
        csv::events(&page.events),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    reviewer: String,
    #[serde(default)]
    note: String,
}

async fn api_ack(
    State(app): State<App>,
    ConnectInfo(tls::Peer(peer)): ConnectInfo<tls::Peer>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(id): Path<String>,
    body: Result<axum::Json<AckBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let axum::Json(body) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    // A person the identity provider named acknowledges as themselves; the shared token
    // (scripts) names the reviewer in the body.
    let reviewer = if who.personal {
        who.name.clone()
    } else {
        body.reviewer.trim().to_owned()
    };
    if reviewer.is_empty() || reviewer.len() > 200 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "reviewer is required (1..200 characters)".into(),
        ));
    }
    if body.note.len() > 4000 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "note is longer than 4000 characters".into(),
        ));
    }
    if id.is_empty() || id.len() > 100 {
        return Err(ApiError(StatusCode::BAD_REQUEST, "bad event id".into()));
    }
    let note = body.note;
    let actor = cases::actor(&app, &reviewer, peer.ip());
    let ack = with_store(&app, move |s| {
        let ack = s.ack(&id, &reviewer, &note)?;
        s.note_ack_in_cases(&id, &actor, &note)?;
        Ok(ack)
    })
    .await?;
    Ok(axum::Json(ack).into_response())
}

async fn employee_data(app: &App, id: String) -> Result<serde_json::Value, ApiError> {
    let state = app.shared.state.load();
    let home = state.directory.as_ref().and_then(|d| d.get(&id)).map(|e| {
        let disc = crate::audit::store::home_disc(&e.home);
        serde_json::json!({
            "id": e.id,
            "country": e.home.country.as_str(),
            "region": e.home.region,
            "city": e.home.city,
            "place": e.home.place(),
            "lat": disc.map(|d| d.0.lat),
            "lon": disc.map(|d| d.0.lon),
            "radius_km": disc.map(|d| d.1),
        })
    });
    let canonical = home
        .as_ref()
        .and_then(|h| h["id"].as_str().map(str::to_owned))
        .unwrap_or(id);
    let dir = app.shared.state.load_full();
    let who = canonical.clone();
    let since = app.period.since_ms();
    let (timeline, summary) = with_store(app, move |s| {
        let page = s.query(&Filter {
            employee: Some(who.clone()),
            limit: 500,
            ..Filter::default()
        })?;
        let summary = s
            .report(since, dir.directory.as_ref(), Some(&who))?
            .into_iter()
            .find(|r| r.employee.eq_ignore_ascii_case(&who));
        Ok((page.events, summary))
    })
    .await?;
    if home.is_none() && timeline.is_empty() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no employee or events for `{canonical}`"),
        ));
    }
    Ok(serde_json::json!({
        "id": canonical,
        "home": home,
        "summary": summary,
        "period": app.period.label(),
        "timeline": timeline,
    }))
}

async fn api_employee(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(employee_data(&app, id).await?).into_response())
}

async fn api_report(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let since = match q.get("since") {
        Some(s) => parse_since(s).map_err(|m| ApiError(StatusCode::BAD_REQUEST, m))?,
        None => parse_since("30d").map_err(|m| ApiError(StatusCode::BAD_REQUEST, m))?,
    };
    if let Some(k) = q.keys().find(|k| *k != "since") {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("unknown parameter `{k}`"),
        ));
    }
    let state = app.shared.state.load_full();
    let rows = with_store(&app, move |s| {
        s.report(since, state.directory.as_ref(), None)
    })
    .await?;
    Ok(axum::Json(rows).into_response())
}

async fn metrics(State(app): State<App>) -> Response {
    use crate::audit::metrics::{CONTENT_TYPE, KeySourceGauge, ScimGauge, Scrape};
    let state = app.shared.state.load();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut scrape = Scrape::new(&app.shared.auditor.stats, &state.intel, now);
    scrape.history = app.shared.history_sync.clone();
    scrape.vpn = app.shared.vpn_health.snapshot();
    scrape.tunnels_open = app.shared.tunnels.len();
    scrape.key_sources = crate::identity::key_sources()
        .into_iter()
        .map(|k| KeySourceGauge {
            up: k.error.is_none() && k.fetched.is_some(),
            keys: k.keys,
            age_seconds: k
                .fetched
                .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
                .map(|d| d.as_secs()),
            source: k.source,
        })
        .collect();
    scrape.scim = app.shared.scim.as_ref().map(|scim| {
        let s = scim.snapshot();
        ScimGauge {
            active: s.active,
            inactive: s.inactive,
            unplaceable: s.unplaceable,
        }
    });
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], scrape.render()).into_response()
}

/// `/readyz`: 503 before the listeners are bound, while draining and while the event store is
/// down; else 200. Without the token only `ready` / `not ready`: the detail (which data is
/// stale, which source is down) is reconnaissance for whoever can reach the port.
async fn readyz(State(app): State<App>, headers: HeaderMap) -> Response {
    let detailed = readyz_detail(&app);
    if authorized(&app, &headers) {
        return detailed;
    }
    match detailed.status() {
        StatusCode::OK => "ready\n".into_response(),
        status => (status, "not ready\n").into_response(),
    }
}

fn readyz_detail(app: &App) -> Response {
    use std::sync::atomic::Ordering;
    if !app.shared.serving.load(Ordering::Acquire) || *app.shared.stopping.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: listeners starting or draining\n",
        )
            .into_response();
    }
    let stats = &app.shared.auditor.stats;
    if stats
        .store_degraded
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        let why = stats
            .store_problem
            .lock()
            .ok()
            .and_then(|p| p.clone())
            .unwrap_or_default();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("DEGRADED: event store unavailable, running on JSON lines only: {why}\n"),
        )
            .into_response();
    }
    // Stale data does not make the gateway unready (old data still decides better than none),
    // but the detail says so; the embedded fallback is left out: only a new binary freshens it.
    let mut body = String::from("ready\n");
    for s in app
        .shared
        .state
        .load()
        .stale()
        .iter()
        .filter(|s| !s.embedded)
    {
        body.push_str(&format!("warning: stale data: {}\n", s.describe()));
    }
    // Nor does a lost Redis: every instance still decides with its own history, and failing
    // readiness would let one Redis outage take the whole fleet out of the balancer.
    if let Some(problem) = app.shared.history_problem() {
        body.push_str(&format!("warning: {problem}\n"));
    }
    // Blind spots do not make it unready either (the other rules still decide), but they are
    // named here, where a deployment check looks.
    for b in app.shared.state.load().blind_spots() {
        body.push_str(&format!("warning: {b}\n"));
    }
    // A VPN source that cannot be read leaves its tunnels judged on their address alone.
    for (name, s) in app.shared.vpn_health.snapshot() {
        if let Some(problem) = &s.problem {
            body.push_str(&format!(
                "warning: vpn source {name}: {problem}: its tunnels are judged without identity\n"
            ));
        } else if s.unknown > 0 {
            body.push_str(&format!(
                "warning: vpn source {name}: {} of {} sessions name no employee in the directory\n",
                s.unknown, s.sessions
            ));
        }
    }
    // The shared store unreachable: the gateway still decides and the spool keeps the events,
    // but the fleet's review is behind (not unready: one database outage must not take every
    // instance out of the balancer).
    if let Some(w) = app
        .shared
        .auditor
        .stats
        .shared_store
        .get()
        .and_then(|h| h.warning())
    {
        body.push_str(&format!("warning: {w}\n"));
    }
    // An output (syslog, journald, HEC, OTLP) whose receiver is down or that drops events.
    for w in app.shared.auditor.stats.output_warnings() {
        body.push_str(&format!("warning: {w}\n"));
    }
    // Keys that cannot be fetched: the last good ones decide; with none, tokens are refused.
    for k in crate::identity::key_sources() {
        match (&k.error, k.keys) {
            (Some(e), 0) => body.push_str(&format!(
                "warning: JWT signing keys from {} not loaded: {e}: its tokens are refused\n",
                k.source
            )),
            (Some(e), n) => body.push_str(&format!(
                "warning: JWT signing keys from {} not refreshed: {e}: the last {n} good keys stay in use\n",
                k.source
            )),
            (None, 0) => body.push_str(&format!(
                "warning: JWT signing keys from {} not fetched yet\n",
                k.source
            )),
            (None, _) => {}
        }
    }
    body.into_response()
}

async fn page_index(
    State(app): State<App>,
    Query(mut q): Query<HashMap<String, String>>,
) -> Response {
    q.entry("status".into()).or_insert_with(|| "open".into());
    let f = match filter_from(&q, 100) {
        Ok(mut f) => {
            f.mismatches_only = true;
            f
        }
        Err(ApiError(s, m)) => return (s, Html(page::error(&m))).into_response(),
    };
    // The queue opens with the employees ranked by their evidence over 30 days (days away,
    // signals by days, networks), so a pattern stands out over a single noisy sign-in.
    let page = with_store(&app, move |s| s.query(&f)).await;
    let listing = match page {
        Ok(p) => ranking::for_page(&app).await.map(|r| (p, r)),
        Err(e) => Err(e),
    };
    match listing {
        Ok((p, ranked)) => Html(page::index(
            &q,
            &p,
            ranked.as_deref().map(Vec::as_slice),
            app.period.label(),
        ))
        .into_response(),
        Err(ApiError(s, m)) => (s, Html(page::error(&m))).into_response(),
    }
}

async fn page_employee(State(app): State<App>, Path(id): Path<String>) -> Response {
    match employee_data(&app, id).await {
        Ok(v) => Html(page::employee(&v)).into_response(),
        Err(ApiError(s, m)) => (s, Html(page::error(&m))).into_response(),
    }
}
