//! JWT verification against hostile tokens. Keys are the test-only fixtures in
//! `tests/fixtures/identity/`; tokens are minted here with `jsonwebtoken`'s signer.

use std::path::PathBuf;

use http::HeaderValue;
use http::header::COOKIE;
use jsonwebtoken::EncodingKey;
use serde_json::json;

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/identity")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn now() -> Timestamp {
    "2026-11-20T09:00:00Z".parse().expect("time")
}

fn at(offset: i64) -> i64 {
    now().as_second() + offset
}

fn config(toml_table: &str) -> JwtConfig {
    toml::from_str(toml_table).unwrap_or_else(|e| panic!("{toml_table}: {e}"))
}

fn rule(toml_table: &str) -> JwtRule {
    JwtRule::from_config(&config(toml_table), &fixtures()).expect("valid rule")
}

fn rule_err(toml_table: &str) -> String {
    match JwtRule::from_config(&config(toml_table), &fixtures()) {
        Ok(r) => panic!("accepted: {r:?}"),
        Err(e) => e,
    }
}

fn hs_rule() -> JwtRule {
    rule(&format!(
        "header = \"authorization\"\nclaim = \"sub\"\nhs256_secret = \"{SECRET}\""
    ))
}

fn jwks_rule() -> JwtRule {
    rule("header = \"Authorization\"\nclaim = \"email\"\njwks = \"jwks.json\"")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header` and `claims` as given, so tests can write any header they like.
fn mint(header: Value, claims: Value, key: &EncodingKey, alg: Algorithm) -> String {
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(signed.as_bytes(), key, alg).expect("sign");
    format!("{signed}.{sig}")
}

fn hs(claims: Value) -> String {
    mint(
        json!({"alg": "HS256", "typ": "JWT"}),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
}

fn rsa_key(n: u8) -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture(&format!("rsa{n}.key.pem"))).expect("rsa key")
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&fixture("ec1.key.pem")).expect("ec key")
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("hv"),
    );
    h
}

fn good_claims() -> Value {
    json!({"sub": "alice", "email": "alice@example.com", "exp": at(600), "iat": at(-60)})
}

/// Runs the rule; asserts that a failure carries exactly `want` and never the token.
fn expect_problem(r: &JwtRule, token: &str, want: &str) {
    let ex = r.extract(&bearer(token), now());
    assert_eq!(ex.identity, None, "{want}");
    assert_eq!(ex.problems, vec![want.to_string()]);
    for p in &ex.problems {
        assert!(
            token.len() < 8 || !p.contains(token),
            "problem leaks the token: {p}"
        );
    }
}

fn expect_user(r: &JwtRule, headers: &HeaderMap, user: &str, verified: bool) {
    let ex = r.extract(headers, now());
    assert!(ex.problems.is_empty(), "{:?}", ex.problems);
    let id = ex.identity.expect("identity");
    assert_eq!(id.user, user);
    assert_eq!(id.source, IdentitySource::Jwt);
    assert_eq!(id.verified, verified);
}

#[test]
fn hs256_good() {
    expect_user(&hs_rule(), &bearer(&hs(good_claims())), "alice", true);
}

#[test]
fn hs256_expired_and_leeway() {
    let r = hs_rule();
    let token = hs(json!({"sub": "alice", "exp": at(-3600)}));
    expect_problem(&r, &token, "jwt: token expired at 2026-11-20T08:00:00Z");
    // Default leeway is 60s.
    expect_user(
        &r,
        &bearer(&hs(json!({"sub": "alice", "exp": at(-60)}))),
        "alice",
        true,
    );
    expect_problem(
        &r,
        &hs(json!({"sub": "alice", "exp": at(-61)})),
        "jwt: token expired at 2026-11-20T08:58:59Z",
    );
    let strict = rule(&format!(
        "header = \"authorization\"\nclaim = \"sub\"\nhs256_secret = \"{SECRET}\"\nleeway = \"0s\""
    ));
    expect_problem(
        &strict,
        &hs(json!({"sub": "a", "exp": at(-1)})),
        "jwt: token expired at 2026-11-20T08:59:59Z",
    );
    // Fractional NumericDate.
    expect_user(
        &r,
        &bearer(&hs(json!({"sub": "alice", "exp": (at(10) as f64) + 0.5}))),
        "alice",
        true,
    );
}

#[test]
fn hs256_not_yet_valid() {
    let r = hs_rule();
    let token = hs(json!({"sub": "alice", "exp": at(7200), "nbf": at(3600)}));
    expect_problem(
        &r,
        &token,
        "jwt: token not valid before 2026-11-20T10:00:00Z",
    );
    expect_user(
        &r,
        &bearer(&hs(json!({"sub": "alice", "exp": at(7200), "nbf": at(30)}))),
        "alice",
        true,
    );
}

#[test]
fn hs256_bad_signature() {
    let r = hs_rule();
    let other = EncodingKey::from_secret(b"another-secret-another-secret-xx");
    let forged = mint(
        json!({"alg": "HS256"}),
        good_claims(),
        &other,
        Algorithm::HS256,
    );
    expect_problem(&r, &forged, "jwt: bad signature");
    // Claims swapped under a valid signature.
    let real = hs(good_claims());
    let parts: Vec<&str> = real.split('.').collect();
    let evil = b64(json!({"sub": "ceo", "exp": at(600)}).to_string().as_bytes());
    expect_problem(
        &r,
        &format!("{}.{evil}.{}", parts[0], parts[2]),
        "jwt: bad signature",
    );
    expect_problem(
        &r,
        &format!("{}.{}.", parts[0], parts[1]),
        "jwt: bad signature",
    );
    expect_problem(
        &r,
        &format!("{}.{}.!!", parts[0], parts[1]),
        "jwt: malformed signature",
    );
}

#[test]
fn alg_none_refused() {
    let claims = b64(good_claims().to_string().as_bytes());
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({"alg": alg}).to_string().as_bytes());
        for token in [
            format!("{header}.{claims}."),
            format!("{header}.{claims}.c2ln"),
        ] {
            expect_problem(&hs_rule(), &token, "jwt: unsigned token (alg none) refused");
            expect_problem(
                &jwks_rule(),
                &token,
                "jwt: unsigned token (alg none) refused",
            );
        }
    }
}

#[test]
fn hs256_with_rsa_public_key_is_refused() {
    // The classic confusion: HMAC "signed" with the issuer's public key, which is public.
    let public_pem = fixture("rsa1.pub.pem");
    for kid in [json!("rsa-1"), Value::Null] {
        let token = mint(
            json!({"alg": "HS256", "kid": kid}),
            good_claims(),
            &EncodingKey::from_secret(&public_pem),
            Algorithm::HS256,
        );
        expect_problem(
            &jwks_rule(),
            &token,
            "jwt: algorithm HS256 not accepted for this source",
        );
    }
    // And the other way round: an RS256 token is not checked against a shared secret.
    let rs = mint(
        json!({"alg": "RS256"}),
        good_claims(),
        &rsa_key(1),
        Algorithm::RS256,
    );
    expect_problem(
        &hs_rule(),
        &rs,
        "jwt: algorithm RS256 not accepted for this source",
    );
    let hs384 = mint(
        json!({"alg": "HS384"}),
        good_claims(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS384,
    );
    expect_problem(
        &hs_rule(),
        &hs384,
        "jwt: algorithm HS384 not accepted for this source",
    );
    let weird = mint(
        json!({"alg": "X\u{1b}[31m"}),
        good_claims(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    );
    expect_problem(&hs_rule(), &weird, "jwt: unsupported algorithm");
}

#[test]
fn claim_checks() {
    let r = hs_rule();
    expect_problem(&r, &hs(json!({"exp": at(60)})), "jwt: claim sub missing");
    for bad in [
        json!(42),
        json!(["alice"]),
        Value::Null,
        json!({"name": "alice"}),
        json!(true),
    ] {
        expect_problem(
            &r,
            &hs(json!({"sub": bad, "exp": at(60)})),
            "jwt: claim sub is not a string",
        );
    }
    expect_problem(
        &r,
        &hs(json!({"sub": "  ", "exp": at(60)})),
        "jwt: claim sub: user name is empty",
    );
    expect_problem(
        &r,
        &hs(json!({"sub": "a\u{0}b", "exp": at(60)})),
        "jwt: claim sub: user name contains control characters",
    );
    expect_user(
        &r,
        &bearer(&hs(json!({"sub": " alice ", "exp": at(60)}))),
        "alice",
        true,
    );
    expect_problem(
        &r,
        &hs(json!({"sub": "alice"})),
        "jwt: token has no expiry (exp)",
    );
    expect_problem(
        &r,
        &hs(json!({"sub": "alice", "exp": "tomorrow"})),
        "jwt: exp is not a number",
    );
    expect_problem(
        &r,
        &hs(json!({"sub": "alice", "exp": at(60), "nbf": "x"})),
        "jwt: nbf is not a number",
    );
    expect_problem(
        &r,
        &hs(json!(["not", "an", "object"])),
        "jwt: malformed claims",
    );
    // Duplicate claims: the upstream might read the other one.
    let header = b64(br#"{"alg":"HS256"}"#);
    let claims = b64(format!(r#"{{"sub":"alice","sub":"ceo","exp":{}}}"#, at(60)).as_bytes());
    let signed = format!("{header}.{claims}");
    let sig = jsonwebtoken::crypto::sign(
        signed.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .expect("sign");
    expect_problem(&r, &format!("{signed}.{sig}"), "jwt: duplicate claims");
}

#[test]
fn issuer_and_audience() {
    let r = rule(&format!(
        "header = \"authorization\"\nclaim = \"sub\"\nhs256_secret = \"{SECRET}\"\n\
         issuer = \"https://idp.example\"\naudience = \"portal\""
    ));
    let ok = |extra: Value| {
        let mut c = json!({"sub": "alice", "exp": at(60)});
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        hs(c)
    };
    expect_user(
        &r,
        &bearer(&ok(json!({"iss": "https://idp.example", "aud": "portal"}))),
        "alice",
        true,
    );
    expect_user(
        &r,
        &bearer(&ok(
            json!({"iss": "https://idp.example", "aud": ["other", "portal"]}),
        )),
        "alice",
        true,
    );
    expect_problem(
        &r,
        &ok(json!({"iss": "https://evil.example", "aud": "portal"})),
        "jwt: issuer is not https://idp.example",
    );
    expect_problem(
        &r,
        &ok(json!({"iss": ["https://idp.example"], "aud": "portal"})),
        "jwt: issuer is not https://idp.example",
    );
    expect_problem(
        &r,
        &ok(json!({"aud": "portal"})),
        "jwt: token has no issuer (iss)",
    );
    expect_problem(
        &r,
        &ok(json!({"iss": "https://idp.example", "aud": "other"})),
        "jwt: audience does not include portal",
    );
    expect_problem(
        &r,
        &ok(json!({"iss": "https://idp.example", "aud": ["a", 1]})),
        "jwt: audience does not include portal",
    );
    expect_problem(
        &r,
        &ok(json!({"iss": "https://idp.example"})),
        "jwt: token has no audience (aud)",
    );
    // Without configured iss/aud, tokens that carry them are accepted.
    expect_user(
        &hs_rule(),
        &bearer(&ok(json!({"iss": "x", "aud": "y"}))),
        "alice",
        true,
    );
}

#[test]
fn rs256_from_jwks() {
    let r = jwks_rule();
    let with_kid = mint(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        good_claims(),
        &rsa_key(1),
        Algorithm::RS256,
    );
    expect_user(&r, &bearer(&with_kid), "alice@example.com", true);
    // No kid: every RS256 key is tried; rsa-2 signs this one.
    let no_kid = mint(
        json!({"alg": "RS256"}),
        good_claims(),
        &rsa_key(2),
        Algorithm::RS256,
    );
    expect_user(&r, &bearer(&no_kid), "alice@example.com", true);
    // A kid that names the wrong key fails, it does not fall back to the others.
    let wrong_kid = mint(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        good_claims(),
        &rsa_key(2),
        Algorithm::RS256,
    );
    expect_problem(&r, &wrong_kid, "jwt: bad signature");
    let unknown = mint(
        json!({"alg": "RS256", "kid": "nope"}),
        good_claims(),
        &rsa_key(1),
        Algorithm::RS256,
    );
    expect_problem(&r, &unknown, "jwt: no key matches the token's key id (kid)");
    // The encryption key with the same modulus is not a signing key.
    let enc = mint(
        json!({"alg": "RS256", "kid": "enc-1"}),
        good_claims(),
        &rsa_key(1),
        Algorithm::RS256,
    );
    expect_problem(&r, &enc, "jwt: no key matches the token's key id (kid)");
    let expired = mint(
        json!({"alg": "RS256"}),
        json!({"email": "a@b", "exp": at(-1000)}),
        &rsa_key(1),
        Algorithm::RS256,
    );
    expect_problem(&r, &expired, "jwt: token expired at 2026-11-20T08:43:20Z");
}

#[test]
fn es256_from_jwks() {
    let r = jwks_rule();
    let token = mint(
        json!({"alg": "ES256", "kid": "ec-1"}),
        good_claims(),
        &ec_key(),
        Algorithm::ES256,
    );
    expect_user(&r, &bearer(&token), "alice@example.com", true);
    let no_kid = mint(
        json!({"alg": "ES256"}),
        good_claims(),
        &ec_key(),
        Algorithm::ES256,
    );
    expect_user(&r, &bearer(&no_kid), "alice@example.com", true);
    // An ES256 header on an RSA key id: no ES256 key has that kid.
    let mixed = mint(
        json!({"alg": "ES256", "kid": "rsa-1"}),
        good_claims(),
        &ec_key(),
        Algorithm::ES256,
    );
    expect_problem(&r, &mixed, "jwt: no key matches the token's key id (kid)");
    // Claiming RS256 with an EC signature.
    let parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let relabelled = format!("{}.{}.{}", b64(br#"{"alg":"RS256"}"#), parts[1], parts[2]);
    expect_problem(&r, &relabelled, "jwt: bad signature");
}

#[test]
fn malformed_tokens() {
    let r = hs_rule();
    let claims = b64(good_claims().to_string().as_bytes());
    let header = b64(br#"{"alg":"HS256"}"#);
    let cases = [
        ("a.b".to_string(), "jwt: malformed token"),
        ("a.b.c.d".to_string(), "jwt: malformed token"),
        ("...".to_string(), "jwt: malformed token"),
        (format!("!!.{claims}.x"), "jwt: malformed token"),
        (
            format!("{}.{claims}.x", b64(b"not json")),
            "jwt: malformed token header",
        ),
        (
            format!("{}.{claims}.x", b64(br#"{"alg":"HS256","alg":"none"}"#)),
            "jwt: malformed token header",
        ),
        (
            format!("{}.{claims}.x", b64(br#"{"kid":"x"}"#)),
            "jwt: malformed token header",
        ),
        (
            format!("{}.{claims}.x", b64(br#"{"alg":"HS256","crit":["exp"]}"#)),
            "jwt: token header has critical extensions (crit); refused",
        ),
        (
            format!("{header}.{}.x", "A".repeat(MAX_TOKEN_LEN)),
            "jwt: token longer than 16384 bytes",
        ),
    ];
    for (token, want) in cases {
        expect_problem(&r, &token, want);
    }
    // Claims that are not base64 or JSON, under a valid signature.
    for payload in ["%%%".to_string(), b64(b"{\"sub\":")] {
        let signed = format!("{header}.{payload}");
        let sig = jsonwebtoken::crypto::sign(
            signed.as_bytes(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .expect("sign");
        let want = if payload == "%%%" {
            "jwt: malformed token"
        } else {
            "jwt: malformed claims"
        };
        expect_problem(&r, &format!("{signed}.{sig}"), want);
    }
}

#[test]
fn bearer_parsing() {
    let r = hs_rule();
    let token = hs(good_claims());
    for value in [
        format!("bearer {token}"),
        format!("BEARER \t {token}  "),
        format!("BeArEr {token}"),
    ] {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(&value).expect("hv"));
        expect_user(&r, &h, "alice", true);
    }
    let one = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).expect("hv"));
        r.extract(&h, now())
    };
    assert_eq!(
        one("Basic YTpi"),
        Extraction::none(),
        "another scheme is not ours"
    );
    assert_eq!(one(&token), Extraction::none(), "no scheme");
    assert_eq!(
        one("Bearer").problems,
        vec!["jwt: empty Bearer credentials".to_string()]
    );
    assert_eq!(
        one("Bearer ").problems,
        vec!["jwt: empty Bearer credentials".to_string()]
    );
    assert_eq!(r.extract(&HeaderMap::new(), now()), Extraction::none());
    let mut twice = bearer(&token);
    twice.append(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("hv"),
    );
    assert_eq!(
        r.extract(&twice, now()).problems,
        vec!["jwt: several authorization headers; ignored".to_string()]
    );
}

#[test]
fn custom_header_and_cookie() {
    let token = hs(good_claims());
    let header_rule = rule(&format!(
        "header = \"X-Id-Token\"\nclaim = \"sub\"\nhs256_secret = \"{SECRET}\""
    ));
    for value in [
        token.clone(),
        format!("Bearer {token}"),
        format!("  {token} "),
    ] {
        let mut h = HeaderMap::new();
        h.insert("x-id-token", HeaderValue::from_str(&value).expect("hv"));
        expect_user(&header_rule, &h, "alice", true);
    }
    let cookie_rule = rule(&format!(
        "cookie = \"id_token\"\nclaim = \"sub\"\nhs256_secret = \"{SECRET}\""
    ));
    let mut h = HeaderMap::new();
    h.insert(
        COOKIE,
        HeaderValue::from_str(&format!("theme=dark; id_token={token}; x=y")).expect("hv"),
    );
    expect_user(&cookie_rule, &h, "alice", true);
    let mut h = HeaderMap::new();
    h.insert(
        COOKIE,
        HeaderValue::from_str(&format!("id_token=\"{token}\"")).expect("hv"),
    );
    expect_user(&cookie_rule, &h, "alice", true);
    assert_eq!(
        cookie_rule.extract(&bearer(&token), now()),
        Extraction::none()
    );
}

#[test]
fn unverified_tokens() {
    let r = rule("cookie = \"x\"\nclaim = \"email\"\nverify = false");
    let forged = mint(
        json!({"alg": "HS256"}),
        good_claims(),
        &EncodingKey::from_secret(b"anything"),
        Algorithm::HS256,
    );
    let mut h = HeaderMap::new();
    h.insert(
        COOKIE,
        HeaderValue::from_str(&format!("x={forged}")).expect("hv"),
    );
    expect_user(&r, &h, "alice@example.com", false);
    // Header and signature are not even looked at; claims still are.
    let claims = b64(json!({"email": "bob@example.com"}).to_string().as_bytes());
    h.insert(
        COOKIE,
        HeaderValue::from_str(&format!("x=junk.{claims}.")).expect("hv"),
    );
    expect_user(&r, &h, "bob@example.com", false);
    let expired = b64(json!({"email": "bob@example.com", "exp": at(-3600)})
        .to_string()
        .as_bytes());
    h.insert(
        COOKIE,
        HeaderValue::from_str(&format!("x=e30.{expired}.")).expect("hv"),
    );
    let ex = r.extract(&h, now());
    assert_eq!(ex.identity, None);
    assert_eq!(
        ex.problems,
        vec!["jwt: token expired at 2026-11-20T08:00:00Z".to_string()]
    );
}

#[test]
fn config_errors() {
    let e = rule_err("claim = \"sub\"\nhs256_secret = \"x\"");
    assert!(e.contains("exactly one of `header` or `cookie`"), "{e}");
    let e = rule_err(&format!(
        "header = \"authorization\"\ncookie = \"c\"\nclaim = \"sub\"\nhs256_secret = \"{SECRET}\""
    ));
    assert!(e.contains("exactly one"), "{e}");
    let e = rule_err("cookie = \"c\"\nclaim = \"sub\"");
    assert!(e.contains("give `jwks`"), "{e}");
    let e = rule_err(&format!(
        "cookie = \"c\"\nclaim = \"sub\"\njwks = \"jwks.json\"\nhs256_secret = \"{SECRET}\""
    ));
    assert!(e.contains("algorithm confusion"), "{e}");
    let e = rule_err("cookie = \"c\"\nclaim = \"sub\"\nhs256_secret = \"short-secret\"");
    assert!(e.contains("12 bytes") && e.contains("at least 32"), "{e}");
    assert!(!e.contains("short-secret"), "error leaks the secret: {e}");
    let e = rule_err("cookie = \"c\"\nclaim = \"sub\"\njwks = \"missing.json\"");
    assert!(
        e.contains("cannot read JWKS file") && e.contains("missing.json"),
        "{e}"
    );
    let e = rule_err("cookie = \"c\"\nclaim = \"sub\"\njwks = \"rsa1.pub.pem\"");
    assert!(
        e.contains("rsa1.pub.pem") && e.contains("not a JSON Web Key Set"),
        "{e}"
    );
    let e = rule_err("cookie = \"c\"\nclaim = \"sub\"\nverify = false\njwks = \"jwks.json\"");
    assert!(e.contains("verify = false"), "{e}");
    let e = rule_err(&format!(
        "cookie = \"c\"\nclaim = \"sub\"\nhs256_secret = \"{SECRET}\"\nleeway = \"2h\""
    ));
    assert!(e.contains("leeway"), "{e}");
    let e = rule_err(&format!(
        "cookie = \"c\"\nclaim = \"\"\nhs256_secret = \"{SECRET}\""
    ));
    assert!(e.contains("claim"), "{e}");
    assert!(
        toml::from_str::<JwtConfig>("cookie = \"c\"\nclaim = \"sub\"\nverify = false\nextra = 1")
            .is_err()
    );
    assert!(
        toml::from_str::<JwtConfig>("cookie = \"a b\"\nclaim = \"sub\"\nverify = false").is_err()
    );
    assert!(
        toml::from_str::<JwtConfig>("header = \"bad header\"\nclaim = \"sub\"\nverify = false")
            .is_err()
    );
}

#[test]
fn jwks_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, body: &str| {
        std::fs::write(dir.path().join(name), body).expect("write");
    };
    let load = |name: &str| {
        JwtRule::from_config(
            &config(&format!(
                "cookie = \"c\"\nclaim = \"sub\"\njwks = \"{name}\""
            )),
            dir.path(),
        )
    };
    write("empty.json", r#"{"keys": []}"#);
    let e = load("empty.json").expect_err("no keys");
    assert!(
        e.contains("empty.json") && e.contains("no RS256 or ES256"),
        "{e}"
    );
    write(
        "only-unusable.json",
        r#"{"keys": [{"kty":"oct","k":"c2VjcmV0"},{"kty":"EC","crv":"P-384","x":"AA","y":"AA"},{"kty":"RSA","alg":"PS256","n":"AQAB","e":"AQAB"}]}"#,
    );
    assert!(load("only-unusable.json").is_err());
    let small_n = b64(&[0xC5; 128]);
    write(
        "weak.json",
        &format!(r#"{{"keys": [{{"kty":"RSA","kid":"weak","n":"{small_n}","e":"AQAB"}}]}}"#),
    );
    let e = load("weak.json").expect_err("1024-bit key");
    assert!(e.contains("\"weak\"") && e.contains("2048"), "{e}");
    let n = b64(&[0xC5; 256]);
    write(
        "bad-e.json",
        &format!(r#"{{"keys": [{{"kty":"RSA","n":"{n}","e":"Ag"}}]}}"#),
    );
    assert!(load("bad-e.json").expect_err("even e").contains("exponent"));
    write("no-n.json", r#"{"keys": [{"kty":"RSA","e":"AQAB"}]}"#);
    assert!(
        load("no-n.json")
            .expect_err("no n")
            .contains("lacks n or e")
    );
    write(
        "off-curve.json",
        &format!(
            r#"{{"keys": [{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}]}}"#,
            b64(&[1; 32]),
            b64(&[2; 32])
        ),
    );
    assert!(
        load("off-curve.json")
            .expect_err("off curve")
            .contains("P-256")
    );
    write("not-json.json", "{");
    assert!(load("not-json.json").is_err());
    // The fixture's unusable keys (enc, P-384, Ed25519) are skipped, the rest loaded.
    let r = jwks_rule();
    let keys = r.keys.current().expect("keys");
    let kids: Vec<_> = keys.iter().map(|k| (k.kid.as_deref(), k.alg)).collect();
    assert_eq!(
        kids,
        vec![
            (Some("rsa-1"), Algorithm::RS256),
            (Some("rsa-2"), Algorithm::RS256),
            (Some("ec-1"), Algorithm::ES256)
        ]
    );
}

#[test]
fn secret_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hs.key"), format!("{SECRET}\r\n")).expect("write");
    let r = JwtRule::from_config(
        &config("header = \"authorization\"\nclaim = \"sub\"\nhs256_secret_file = \"hs.key\""),
        dir.path(),
    )
    .expect("rule");
    expect_user(&r, &bearer(&hs(good_claims())), "alice", true);
    std::fs::write(dir.path().join("short.key"), "tiny\n").expect("write");
    let e = JwtRule::from_config(
        &config("cookie = \"c\"\nclaim = \"sub\"\nhs256_secret_file = \"short.key\""),
        dir.path(),
    )
    .expect_err("short");
    assert!(e.contains("short.key") && e.contains("4 bytes"), "{e}");
    let e = JwtRule::from_config(
        &config("cookie = \"c\"\nclaim = \"sub\"\nhs256_secret_file = \"nope.key\""),
        dir.path(),
    )
    .expect_err("missing");
    assert!(
        e.contains("cannot read HS256 secret file") && e.contains("nope.key"),
        "{e}"
    );
}

#[test]
fn debug_never_shows_secrets() {
    let c = config(&format!(
        "header = \"authorization\"\nclaim = \"sub\"\nhs256_secret = \"{SECRET}\""
    ));
    let r = JwtRule::from_config(&c, &fixtures()).expect("rule");
    for text in [
        format!("{c:?}"),
        format!("{r:?}"),
        format!("{:?}", jwks_rule()),
    ] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }
    assert!(format!("{c:?}").contains("[redacted]"));
    assert!(format!("{:?}", jwks_rule()).contains("rsa-1"));
}

#[test]
fn numeric_dates() {
    assert_eq!(numeric_date(&json!(5)), Some(5));
    assert_eq!(numeric_date(&json!(5.9)), Some(5));
    assert_eq!(numeric_date(&json!(-1.5)), Some(-2));
    assert_eq!(numeric_date(&json!(1e300)), Some(4_600_000_000_000_000_000));
    assert_eq!(
        numeric_date(&json!(u64::MAX)),
        Some(4_600_000_000_000_000_000)
    );
    assert_eq!(numeric_date(&json!("5")), None);
    assert_eq!(show_time(i64::MAX), format!("{} (epoch seconds)", i64::MAX));
    // A far-future exp with maximal leeway does not overflow.
    let r = hs_rule();
    expect_user(
        &r,
        &bearer(&hs(json!({"sub": "a", "exp": i64::MAX}))),
        "a",
        true,
    );
    expect_problem(
        &r,
        &hs(json!({"sub": "a", "exp": i64::MIN})),
        &format!("jwt: token expired at {} (epoch seconds)", i64::MIN),
    );
}
