//! JSON Web Key Sets (RFC 7517): the issuer's public keys, from a file or from the issuer itself
//! (`remote_keys.rs`), read into the keys the `jwt` source verifies with.
//!
//! One parser for both places, so a key refused in a file is refused from a URL for the same
//! reason: RSA keys of 2048 to 4096 bits become RS256 keys, P-256 keys ES256 keys, and each key
//! may verify only that one algorithm.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

/// Largest key set read, file or response: an identity provider publishes a handful of keys
/// (a few KB); anything bigger is not a key set.
pub(crate) const MAX_JWKS_LEN: usize = 1024 * 1024;

/// One verification key and the only algorithm it may verify.
#[derive(Clone)]
pub(crate) struct Key {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// Reads a JWKS file (see [`parse`]).
pub(super) fn load(path: &Path) -> Result<Vec<Key>, String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("cannot read JWKS file {shown}: {e}"))?;
    if text.len() > MAX_JWKS_LEN {
        return Err(format!(
            "JWKS file {shown} is larger than {MAX_JWKS_LEN} bytes; not a key set"
        ));
    }
    parse(&text, &format!("JWKS file {shown}"))
}

/// Parses a key set; `label` names where it came from in errors ("JWKS file x.json", "JWKS
/// from https://..."). Keys for encryption (`use: enc`), other curves or types, or another
/// declared `alg` are skipped (identity providers publish those too); a malformed key of a
/// supported type is an error (it would otherwise look like a bad signature per token), and so
/// is a set with no usable key.
pub(crate) fn parse(text: &[u8], label: &str) -> Result<Vec<Key>, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Value>,
    }
    let jwks: Jwks = serde_json::from_slice(text)
        .map_err(|e| format!("{label} is not a JSON Web Key Set: {e}"))?;
    let mut keys = Vec::new();
    for (i, jwk) in jwks.keys.iter().enumerate() {
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        let kid = member("kid").map(str::to_owned);
        let which = || match &kid {
            Some(kid) => format!("key {kid:?} in {label}"),
            None => format!("key #{i} in {label}"),
        };
        if member("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let alg = match (member("kty"), member("crv")) {
            (Some("RSA"), _) => Algorithm::RS256,
            (Some("EC"), Some("P-256")) => Algorithm::ES256,
            _ => continue,
        };
        if member("alg").is_some_and(|a| a != format!("{alg:?}")) {
            continue;
        }
        let key = match alg {
            Algorithm::RS256 => {
                let (Some(n), Some(e)) = (member("n"), member("e")) else {
                    return Err(format!("{} lacks n or e", which()));
                };
                rsa_key(n, e).map_err(|why| format!("{}: {why}", which()))?
            }
            _ => {
                let (Some(x), Some(y)) = (member("x"), member("y")) else {
                    return Err(format!("{} lacks x or y", which()));
                };
                ec_key(x, y).map_err(|why| format!("{}: {why}", which()))?
            }
        };
        keys.push(Key { kid, alg, key });
    }
    if keys.is_empty() {
        return Err(format!(
            "{label} has no RS256 or ES256 signing key (RSA, or EC on P-256)"
        ));
    }
    Ok(keys)
}

fn rsa_key(n: &str, e: &str) -> Result<DecodingKey, &'static str> {
    let n_bytes = URL_SAFE_NO_PAD
        .decode(n)
        .map_err(|_| "n is not base64url")?;
    let e_bytes = URL_SAFE_NO_PAD
        .decode(e)
        .map_err(|_| "e is not base64url")?;
    let n_bytes = strip_zeros(&n_bytes);
    let e_bytes = strip_zeros(&e_bytes);
    // Checked here because the verifier only builds the key per token, where a bad key would
    // look like a bad signature.
    if n_bytes.len() < 256 {
        return Err("RSA modulus shorter than 2048 bits");
    }
    if n_bytes.len() > 512 {
        return Err("RSA modulus longer than 4096 bits");
    }
    let e_ok =
        !e_bytes.is_empty() && e_bytes.len() <= 4 && e_bytes.last().is_some_and(|b| b & 1 == 1);
    if !e_ok || e_bytes == [1] {
        return Err("RSA exponent is not a small odd number");
    }
    Ok(DecodingKey::from_rsa_raw_components(n_bytes, e_bytes))
}

fn ec_key(x: &str, y: &str) -> Result<DecodingKey, &'static str> {
    let key = DecodingKey::from_ec_components(x, y).map_err(|_| "x or y is not base64url")?;
    // Builds the verifier once: this fails unless (x, y) is a point on P-256.
    jsonwebtoken::crypto::verify("", b"", &key, Algorithm::ES256)
        .map_err(|_| "not a valid P-256 public key")?;
    Ok(key)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}
