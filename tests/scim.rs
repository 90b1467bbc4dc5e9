//! SCIM 2.0 provisioning (issue 16, point 3): the request sequences Okta and Microsoft Entra
//! send, replayed against the real server's admin listener, and the end-to-end flow: a user
//! pushed by the IdP is judged against the pushed address, deactivation makes them unknown, the
//! store survives a restart, and the directory file wins a conflict (said in `/readyz`).
//!
//! The request bodies follow the published provisioning references: Okta's "SCIM 2.0 protocol
//! reference" (lookup by `userName eq`, create with `password`, `PUT` with the whole user,
//! deactivation by a path-less `replace`) and Entra's "Tutorial: develop and plan provisioning
//! for a SCIM endpoint" (connection test with a random GUID `userName`, the enterprise
//! extension, `Replace` with a filtered path, `"False"` as a string, `DELETE`).

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::{Value as Json, json};

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const SCIM_TOKEN: &str = "scim-token-fedcba9876543210";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The SSO listener (a trusted loopback proxy names client and user), the standard directory
/// file, the admin listener and `[scim]`.
fn sections(fx: &Fixture) -> (String, String) {
    fx.write_standard_directory();
    let token = fx.write("scim-token", &format!("{SCIM_TOKEN}\n"));
    let sso = listener(
        "sso",
        "builtin:whoami",
        "trusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\n\
         identity = [ { header = \"X-Remote-User\" } ]",
    );
    let extra = format!(
        "{}\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
         [scim]\ntoken_file = {}\nstore = \"scim.sqlite\"\n",
        employees_section("employees.toml"),
        toml_str(&token),
    );
    (sso, extra)
}

/// One SCIM request; the status, headers and body (JSON, or `null` when empty).
async fn scim(
    admin: SocketAddr,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: Option<Json>,
) -> (u16, http::response::Parts, Json) {
    let mut b = request(method, target).header("accept", "application/scim+json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let bytes = body.map(|j| j.to_string()).unwrap_or_default();
    if !bytes.is_empty() {
        b = b.header("content-type", "application/scim+json");
    }
    let req = b.body(Full::new(Bytes::from(bytes))).expect("request");
    let (parts, body) = read_body(send(LOCAL, admin, req).await).await;
    let json = if body.is_empty() {
        Json::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
    };
    (parts.status.as_u16(), parts, json)
}

async fn ok(admin: SocketAddr, method: &str, target: &str, body: Option<Json>) -> Json {
    let (status, parts, json) = scim(admin, method, target, Some(SCIM_TOKEN), body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {target}: {status} {json:#}"
    );
    if status != 204 {
        assert_eq!(
            header(&parts, "content-type"),
            Some("application/scim+json"),
            "{method} {target}"
        );
    }
    json
}

fn patch_ops(ops: Json) -> Json {
    json!({"schemas": [PATCH], "Operations": ops})
}

fn austin_user(name: &str) -> Json {
    json!({
        "schemas": [USER],
        "userName": name,
        "name": {"givenName": "Erin", "familyName": "Diaz"},
        "emails": [{"primary": true, "value": name, "type": "work"}],
        "displayName": "Erin Diaz",
        "active": true,
        "timezone": "America/Chicago",
        "addresses": [{"type": "home", "locality": "Austin", "region": "TX",
                       "postalCode": "78701", "country": "US", "primary": true}]
    })
}

fn event_from<'a>(events: &'a [Json], ip: &str) -> &'a Json {
    events
        .iter()
        .rev()
        .find(|e| e["source"]["ip"] == ip)
        .unwrap_or_else(|| panic!("no event from {ip}: {events:#?}"))
}

async fn readyz(admin: SocketAddr) -> String {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (parts, body) = get(LOCAL, admin, "/readyz", &[("authorization", &auth)]).await;
    assert_eq!(parts.status, 200);
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_provisioning_sequence() {
    let fx = Fixture::new();
    let (sso, extra) = sections(&fx);
    let running = fx.start_with(&sso, &extra).await;
    let admin = running.admin_addr.expect("admin");

    // Okta probes before it creates: nobody by that userName yet.
    let found = ok(
        admin,
        "GET",
        "/scim/v2/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100",
        None,
    )
    .await;
    assert_eq!(found["totalResults"], 0, "{found:#}");
    assert_eq!(found["Resources"], json!([]));
    assert_eq!(
        found["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );

    let create = json!({
        "schemas": [USER],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true,
        "timezone": "America/Chicago",
        "addresses": [{"type": "home", "locality": "Austin", "region": "TX",
                       "postalCode": "78701", "country": "US", "primary": true}]
    });
    let (status, parts, user) = scim(
        admin,
        "POST",
        "/scim/v2/Users",
        Some(SCIM_TOKEN),
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, 201, "{user:#}");
    let id = user["id"].as_str().expect("id").to_string();
    let location = format!("http://{HOST}/scim/v2/Users/{id}");
    assert_eq!(header(&parts, "location"), Some(location.as_str()));
    assert_eq!(user["meta"]["location"], location.as_str());
    assert_eq!(header(&parts, "etag"), Some("W/\"1\""));
    assert_eq!(user["meta"]["resourceType"], "User");
    assert_eq!(user["meta"]["version"], "W/\"1\"");
    assert!(user["meta"]["created"].is_string() && user["meta"]["lastModified"].is_string());
    assert!(
        user.get("password").is_none(),
        "the password is never kept: {user:#}"
    );
    assert_eq!(user["externalId"], "00ujl29u0le5T6Aj10h7");

    // Okta creates again if its lookup missed: 409 uniqueness, not a second person.
    let (status, _, err) = scim(
        admin,
        "POST",
        "/scim/v2/Users",
        Some(SCIM_TOKEN),
        Some(create),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(err["scimType"], "uniqueness");
    assert_eq!(err["status"], "409");

    let found = ok(
        admin,
        "GET",
        "/scim/v2/Users?filter=userName%20eq%20%22TEST.USER%40okta.local%22",
        None,
    )
    .await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], id.as_str());
    let by_id = ok(admin, "GET", &format!("/scim/v2/Users/{id}"), None).await;
    assert_eq!(by_id["userName"], "test.user@okta.local");

    // Profile push: the whole user with PUT, moved to Seattle.
    let mut moved = by_id.clone();
    moved["addresses"] = json!([{"type": "home", "locality": "Seattle", "region": "WA",
                                 "postalCode": "98101", "country": "US", "primary": true}]);
    let put = ok(admin, "PUT", &format!("/scim/v2/Users/{id}"), Some(moved)).await;
    assert_eq!(put["addresses"][0]["locality"], "Seattle");
    assert_eq!(put["meta"]["version"], "W/\"2\"");
    assert_eq!(put["id"], id.as_str());
    let state = running.shared.state.load();
    let e = state
        .directory
        .as_ref()
        .and_then(|d| d.get("test.user@okta.local"))
        .expect("in the directory without a restart");
    assert_eq!(e.home.region.as_deref(), Some("Washington"));
    assert_eq!(e.home.city.as_deref(), Some("Seattle"));
    drop(state);

    // Deactivation: a path-less replace.
    let off = ok(
        admin,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(patch_ops(
            json!([{"op": "replace", "value": {"active": false}}]),
        )),
    )
    .await;
    assert_eq!(off["active"], false);
    let state = running.shared.state.load();
    assert!(
        state
            .directory
            .as_ref()
            .and_then(|d| d.get("test.user@okta.local"))
            .is_none()
    );
    drop(state);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_provisioning_sequence() {
    let fx = Fixture::new();
    let (sso, extra) = sections(&fx);
    let running = fx.start_with(&sso, &extra).await;
    let admin = running.admin_addr.expect("admin");

    // "Test Connection": a random GUID that must not exist.
    let probe = ok(
        admin,
        "GET",
        "/scim/v2/Users?filter=userName+eq+%22c3f0a7e2-4b8e-4d5f-9a1c-2e6b7d8f9a0b%22",
        None,
    )
    .await;
    assert_eq!(probe["totalResults"], 0);
    // Entra and Okta read the server's description.
    for path in [
        "ServiceProviderConfig",
        "ResourceTypes",
        "Schemas",
        "Groups",
    ] {
        let v = ok(admin, "GET", &format!("/scim/v2/{path}"), None).await;
        assert!(v["schemas"].is_array(), "{path}: {v:#}");
    }
    let spc = ok(admin, "GET", "/scim/v2/ServiceProviderConfig", None).await;
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);

    let create = json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "active": true,
        "addresses": [{"primary": true, "type": "work", "streetAddress": "Unter den Linden 1",
                       "locality": "Berlin", "region": "Berlin", "postalCode": "10117",
                       "country": "DE", "formatted": "Unter den Linden 1, 10117 Berlin"}],
        "displayName": "Test User",
        "emails": [{"primary": true, "type": "work",
                    "value": "Test_User_11bb6802-4ea0-4ee2-a84c-7fcfd5ac9d35@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName",
                 "givenName": "givenName"},
        "title": "Title",
        "roles": [],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Department",
                     "manager": {"value": "123"}}
    });
    let (status, _, user) = scim(
        admin,
        "POST",
        "/scim/v2/Users",
        Some(SCIM_TOKEN),
        Some(create),
    )
    .await;
    assert_eq!(status, 201, "{user:#}");
    let id = user["id"].as_str().expect("id").to_string();
    assert_eq!(user[ENTERPRISE]["employeeNumber"], "701984");
    let found = ok(
        admin,
        "GET",
        "/scim/v2/Users?filter=externalId+eq+%220a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef%22",
        None,
    )
    .await;
    assert_eq!(found["totalResults"], 1);

    // Entra's update: capitalised op, a filtered path.
    let moved = ok(
        admin,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(patch_ops(json!([
            {"op": "Replace", "path": "addresses[type eq \"work\"].locality", "value": "Munich"},
            {"op": "Replace", "path": "addresses[type eq \"work\"].region", "value": "Bavaria"},
            {"op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Research"}
        ]))),
    )
    .await;
    assert_eq!(moved["addresses"][0]["locality"], "Munich");
    assert_eq!(moved[ENTERPRISE]["department"], "Research");
    {
        let state = running.shared.state.load();
        let e = state
            .directory
            .as_ref()
            .and_then(|d| d.get("test_user_11bb6802-4ea0-4ee2-a84c-7fcfd5ac9d35@testuser.com"))
            .expect("found by email alias");
        assert_eq!(e.home.city.as_deref(), Some("Munich"));
        assert_eq!(e.home.region.as_deref(), Some("Bavaria"));
    }

    // Disable: the boolean as the string "False".
    let off = ok(
        admin,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(patch_ops(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    )
    .await;
    assert_eq!(off["active"], false);

    // Unsupported filters and bad patches are SCIM errors, not guesses.
    let (status, _, err) = scim(
        admin,
        "GET",
        "/scim/v2/Users?filter=displayName%20co%20%22x%22",
        Some(SCIM_TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (status, err["scimType"].as_str()),
        (400, Some("invalidFilter"))
    );
    let (status, _, err) = scim(
        admin,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(SCIM_TOKEN),
        Some(patch_ops(
            json!([{"op": "Replace", "path": "active", "value": "perhaps"}]),
        )),
    )
    .await;
    assert_eq!(
        (status, err["scimType"].as_str()),
        (400, Some("invalidValue"))
    );
    // A body over 1 MiB: 413.
    let huge = json!({"schemas": [USER], "userName": "x", "title": "y".repeat(1 << 20)});
    let (status, _, err) = scim(
        admin,
        "POST",
        "/scim/v2/Users",
        Some(SCIM_TOKEN),
        Some(huge),
    )
    .await;
    assert_eq!(status, 413, "{err:#}");

    let (status, _, _) = scim(
        admin,
        "DELETE",
        &format!("/scim/v2/Users/{id}"),
        Some(SCIM_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, err) = scim(
        admin,
        "GET",
        &format!("/scim/v2/Users/{id}"),
        Some(SCIM_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        err["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_flow_create_sign_in_deactivate_unknown_restart_and_conflicts() {
    let fx = Fixture::new();
    let (sso_listener, extra) = sections(&fx);
    let running = fx.start_with(&sso_listener, &extra).await;
    let admin = running.admin_addr.expect("admin");
    let sso = running.addr("sso").expect("sso");

    // Wrong, missing, or the admin's token: 401 with the SCIM error body, nothing stored.
    for token in [
        Some("scim-token-wrong-wrong-wrong"),
        None,
        Some(ADMIN_TOKEN),
    ] {
        let (status, parts, err) = scim(
            admin,
            "POST",
            "/scim/v2/Users",
            token,
            Some(austin_user("mallory@example.com")),
        )
        .await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(
            err["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
        assert_eq!(err["status"], "401");
        assert!(header(&parts, "www-authenticate").is_some());
    }
    // Nor does the SCIM token open the admin routes.
    let (parts, _) = get(
        LOCAL,
        admin,
        "/metrics",
        &[("authorization", &format!("Bearer {SCIM_TOKEN}"))],
    )
    .await;
    assert_eq!(parts.status, 401);
    let all = ok(admin, "GET", "/scim/v2/Users", None).await;
    assert_eq!(all["totalResults"], 0, "nothing stored: {all:#}");

    // Create -> the first sign-in is judged against the pushed address.
    let erin = ok(
        admin,
        "POST",
        "/scim/v2/Users",
        Some(austin_user("erin@example.com")),
    )
    .await;
    let id = erin["id"].as_str().expect("id").to_string();
    assert_eq!(sso_login(sso, "127.1.0.21", "erin@example.com").await, 200);
    assert_eq!(sso_login(sso, "127.6.0.21", "Erin@Example.com").await, 200);
    let events = fx
        .events_until(&running, |e| e["source"]["ip"] == "127.6.0.21")
        .await;
    let home = event_from(&events, "127.1.0.21");
    assert_eq!(home["user"]["id"], "erin@example.com", "{home:#}");
    assert_eq!(home["event"]["action"], "allow", "{home:#}");
    assert!(reasons(home).is_empty(), "{home:#}");
    let away = event_from(&events, "127.6.0.21");
    assert_eq!(away["user"]["id"], "erin@example.com", "{away:#}");
    assert_eq!(away["event"]["action"], "flag", "{away:#}");
    let why = reasons(away);
    assert!(why.contains(&"country_mismatch".to_string()), "{away:#}");
    assert!(why.contains(&"outside_home_radius".to_string()), "{away:#}");

    // Deactivate -> the next sign-in is an unknown employee.
    ok(
        admin,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(patch_ops(
            json!([{"op": "replace", "value": {"active": false}}]),
        )),
    )
    .await;
    assert_eq!(sso_login(sso, "127.1.0.22", "erin@example.com").await, 200);
    let events = fx
        .events_until(&running, |e| e["source"]["ip"] == "127.1.0.22")
        .await;
    let gone = event_from(&events, "127.1.0.22");
    assert!(
        reasons(gone).contains(&"unknown_employee".to_string()),
        "{gone:#}"
    );

    // A SCIM user whose name the directory file already uses: the file wins, and says so.
    let (status, _, _) = scim(
        admin,
        "POST",
        "/scim/v2/Users",
        Some(SCIM_TOKEN),
        Some(json!({"schemas": [USER], "userName": "alice@example.com",
                    "addresses": [{"type": "home", "country": "DE", "locality": "Berlin"}]})),
    )
    .await;
    assert_eq!(status, 201);
    // One that cannot be placed: stored, not in the directory, said.
    ok(
        admin,
        "POST",
        "/scim/v2/Users",
        Some(json!({"schemas": [USER], "userName": "nowhere@example.com"})),
    )
    .await;
    let ready = readyz(admin).await;
    assert!(
        ready.contains("SCIM user `alice@example.com` left out")
            && ready.contains("already employee `e1042`"),
        "{ready}"
    );
    assert!(
        ready.contains("SCIM user `nowhere@example.com`: no address with a country"),
        "{ready}"
    );
    {
        let state = running.shared.state.load();
        let alice = state
            .directory
            .as_ref()
            .and_then(|d| d.get("alice@example.com"));
        assert_eq!(alice.map(|e| e.id.as_str()), Some("e1042"));
        assert_eq!(alice.map(|e| e.home.country.as_str()), Some("US"));
    }
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (_, metrics) = get(LOCAL, admin, "/metrics", &[("authorization", &auth)]).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("locgate_scim_users{state=\"inactive\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("locgate_scim_users{state=\"unplaceable\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("locgate_scim_users{state=\"active\"} 2"),
        "{metrics}"
    );
    running.shutdown().await;

    // Restart: the store kept every user; re-activation brings erin back.
    let running = fx.start_with(&sso_listener, &extra).await;
    let admin = running.admin_addr.expect("admin");
    let sso = running.addr("sso").expect("sso");
    let all = ok(admin, "GET", "/scim/v2/Users?count=10", None).await;
    assert_eq!(all["totalResults"], 3, "{all:#}");
    let kept = ok(admin, "GET", &format!("/scim/v2/Users/{id}"), None).await;
    assert_eq!(kept["active"], false);
    ok(
        admin,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(patch_ops(
            json!([{"op": "Replace", "path": "active", "value": "True"}]),
        )),
    )
    .await;
    assert_eq!(sso_login(sso, "127.1.0.23", "erin@example.com").await, 200);
    let events = fx
        .events_until(&running, |e| e["source"]["ip"] == "127.1.0.23")
        .await;
    let back = event_from(&events, "127.1.0.23");
    assert_eq!(back["user"]["id"], "erin@example.com", "{back:#}");
    assert!(reasons(back).is_empty(), "{back:#}");
    running.shutdown().await;
}

#[test]
fn scim_config_is_checked() {
    let fx = Fixture::new();
    let (sso, extra) = sections(&fx);
    let text = fx.config_text_with(&sso, &extra);
    // Without [admin]: refused, naming the section.
    let no_admin = text.replace(
        &format!("[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n"),
        "",
    );
    let e = locgate::config::Config::parse(&no_admin, "t.toml", fx.dir.path()).unwrap_err();
    assert!(e.to_string().contains("configure [admin] too"), "{e}");
    // The admin token as the SCIM token: refused (trust is per purpose).
    fx.write("scim-token", ADMIN_TOKEN);
    let e = locgate::config::Config::parse(&text, "t.toml", fx.dir.path()).unwrap_err();
    assert!(
        e.to_string().contains("must differ from the admin token"),
        "{e}"
    );
    // A short token: refused with the line.
    fx.write("scim-token", "short");
    let e = locgate::config::Config::parse(&text, "t.toml", fx.dir.path()).unwrap_err();
    assert!(
        e.to_string().contains("scim token must be at least 16"),
        "{e}"
    );
    // A damaged store: the gateway does not start.
    fx.write("scim-token", SCIM_TOKEN);
    fx.write("scim.sqlite", &"x".repeat(8192));
    let config = locgate::config::Config::parse(&text, "t.toml", fx.dir.path()).expect("parses");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let e = rt
        .block_on(locgate::serve::start(config))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("SCIM store"), "{e}");
}
