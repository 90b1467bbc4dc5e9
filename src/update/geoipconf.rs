//! geoipupdate's `GeoIP.conf`, read the way geoipupdate reads it.
//!
//! Operators who already run geoipupdate have their account, key and editions in that file (and
//! often in `GEOIPUPDATE_*` variables in containers); reading it means one set of credentials and
//! no second copy in locgate's config. Pure: the file text and the environment come in as values.

use std::path::PathBuf;

/// geoipupdate's default update host.
pub const DEFAULT_HOST: &str = "https://updates.maxmind.com";

/// What `locgate update` needs from a `GeoIP.conf`.
#[derive(Clone, PartialEq, Eq)]
pub struct GeoIpConf {
    /// MaxMind account id.
    pub account_id: String,
    /// Licence key (never printed).
    pub license_key: String,
    /// Editions to fetch, e.g. `GeoLite2-City`.
    pub edition_ids: Vec<String>,
    /// Where `{edition}.mmdb` files are installed.
    pub database_directory: PathBuf,
    /// Base URL of the update service (scheme added when the file gives a bare host name).
    pub host: String,
    /// `Proxy` (with `ProxyUserPassword`): every request to the update service goes through it,
    /// as geoipupdate sends them; `None`: the environment's proxy variables apply.
    pub proxy: Option<ProxySetting>,
}

/// geoipupdate's `Proxy` and `ProxyUserPassword`, read its way: a bare `host[:port]` is
/// `http://`, the port defaults to 1080, and the credentials in the URL win over
/// `ProxyUserPassword`.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySetting {
    /// `http://host:port`, without credentials (safe to print).
    pub url: String,
    /// User and password for `Proxy-Authorization: Basic` (never printed).
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for ProxySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxySetting")
            .field("url", &self.url)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Reads `Proxy` (`host`, `host:port`, `http://[user:password@]host[:port]`) and
/// `ProxyUserPassword` (`user:password`).
fn proxy_setting(proxy: &str, user_password: Option<&str>) -> Result<ProxySetting, String> {
    let with_scheme = if proxy.contains("://") {
        proxy.to_string()
    } else {
        format!("http://{proxy}")
    };
    let mut url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| format!("Proxy `{proxy}` is not a host[:port] or URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "Proxy `{proxy}`: only http:// proxies are supported (HTTPS is tunnelled through them with CONNECT)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("Proxy `{proxy}` names no host"));
    }
    if url.port().is_none() && !proxy.contains("://") {
        // geoipupdate's default for a bare host (the http:// default, 80, applies to URLs).
        let _ = url.set_port(Some(1080));
    }
    let decode = |s: &str| {
        percent_decode(s).ok_or_else(|| {
            format!(
                "Proxy `{}`: credentials are not valid UTF-8",
                url.host_str().unwrap_or("")
            )
        })
    };
    let in_url = (!url.username().is_empty())
        .then(|| {
            Ok::<_, String>((
                decode(url.username())?,
                decode(url.password().unwrap_or(""))?,
            ))
        })
        .transpose()?;
    let credentials = match (in_url, user_password) {
        (Some(c), _) => Some(c),
        (None, Some(up)) => {
            let (user, password) = up.split_once(':').unwrap_or((up, ""));
            Some((user.to_string(), password.to_string()))
        }
        (None, None) => None,
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(ProxySetting {
        url: url.as_str().trim_end_matches('/').to_string(),
        credentials,
    })
}

/// `%XX` escapes of URL user info, decoded; `None` when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

impl std::fmt::Debug for GeoIpConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIpConf")
            .field("account_id", &self.account_id)
            .field("license_key", &"<redacted>")
            .field("edition_ids", &self.edition_ids)
            .field("database_directory", &self.database_directory)
            .field("host", &self.host)
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// Parses `text` (from `label`), then applies the environment overrides geoipupdate honours:
/// `GEOIPUPDATE_ACCOUNT_ID`, `GEOIPUPDATE_ACCOUNT_ID_FILE`, `GEOIPUPDATE_LICENSE_KEY`,
/// `GEOIPUPDATE_LICENSE_KEY_FILE`, `GEOIPUPDATE_EDITION_IDS`, `GEOIPUPDATE_DB_DIR`,
/// `GEOIPUPDATE_HOST`, `GEOIPUPDATE_PROXY`, `GEOIPUPDATE_PROXY_USER_PASSWORD`. `read_file` reads
/// the `*_FILE` variables' files.
pub fn parse(
    label: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> Result<String, String>,
) -> Result<GeoIpConf, String> {
    let mut account_id = None;
    let mut license_key = None;
    let mut editions: Option<Vec<String>> = None;
    let mut dir = None;
    let mut host = None;
    let mut proxy = None;
    let mut proxy_user_password = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (line, ""),
        };
        let at = || format!("{label}:{}", n + 1);
        match key {
            "AccountID" | "UserId" => account_id = Some(value.to_string()),
            "LicenseKey" => license_key = Some(value.to_string()),
            "EditionIDs" | "ProductIds" => {
                editions = Some(value.split_whitespace().map(str::to_string).collect())
            }
            "DatabaseDirectory" => dir = Some(value.to_string()),
            "Host" => host = Some(value.to_string()),
            "Proxy" => proxy = Some((value.to_string(), at())),
            "ProxyUserPassword" => proxy_user_password = Some(value.to_string()),
            // Settings locgate does not need; accepted so an existing file works unchanged.
            "LockFile" | "PreserveFileTimes" | "RetryFor" | "Parallelism" => {}
            other => return Err(format!("{}: unknown setting `{other}`", at())),
        }
    }
    let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if let Some(v) = nonempty("GEOIPUPDATE_ACCOUNT_ID") {
        account_id = Some(v);
    } else if let Some(f) = nonempty("GEOIPUPDATE_ACCOUNT_ID_FILE") {
        account_id = Some(read_file(&f)?);
    }
    if let Some(v) = nonempty("GEOIPUPDATE_LICENSE_KEY") {
        license_key = Some(v);
    } else if let Some(f) = nonempty("GEOIPUPDATE_LICENSE_KEY_FILE") {
        license_key = Some(read_file(&f)?);
    }
    if let Some(v) = nonempty("GEOIPUPDATE_EDITION_IDS") {
        editions = Some(v.split_whitespace().map(str::to_string).collect());
    }
    if let Some(v) = nonempty("GEOIPUPDATE_DB_DIR") {
        dir = Some(v);
    }
    if let Some(v) = nonempty("GEOIPUPDATE_HOST") {
        host = Some(v);
    }
    if let Some(v) = nonempty("GEOIPUPDATE_PROXY") {
        proxy = Some((v, "GEOIPUPDATE_PROXY".to_string()));
    }
    if let Some(v) = nonempty("GEOIPUPDATE_PROXY_USER_PASSWORD") {
        proxy_user_password = Some(v);
    }
    let proxy = match proxy.filter(|(p, _)| !p.trim().is_empty()) {
        Some((p, at)) => Some(
            proxy_setting(p.trim(), proxy_user_password.as_deref().map(str::trim))
                .map_err(|e| format!("{at}: {e}"))?,
        ),
        None => None,
    };
    let account_id = account_id
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{label}: AccountID is missing"))?;
    if !account_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{label}: AccountID `{account_id}` is not a number"));
    }
    let license_key = license_key
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{label}: LicenseKey is missing"))?;
    let edition_ids = editions
        .filter(|e| !e.is_empty())
        .ok_or_else(|| format!("{label}: EditionIDs is missing"))?;
    for e in &edition_ids {
        if !e
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("{label}: edition id `{e}` is not a valid name"));
        }
    }
    let host = host.unwrap_or_else(|| DEFAULT_HOST.to_string());
    let host = if host.starts_with("http://") || host.starts_with("https://") {
        host
    } else {
        format!("https://{host}")
    };
    Ok(GeoIpConf {
        account_id,
        license_key,
        edition_ids,
        database_directory: PathBuf::from(
            dir.unwrap_or_else(|| "/usr/local/share/GeoIP".to_string()),
        ),
        host: host.trim_end_matches('/').to_string(),
        proxy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "# GeoIP.conf\nAccountID 12345\nLicenseKey abcDEF_123\nEditionIDs GeoLite2-City GeoLite2-ASN\nDatabaseDirectory /var/lib/GeoIP\nLockFile /var/lib/GeoIP/.lock\n";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn no_files(p: &str) -> Result<String, String> {
        Err(format!("{p}: not readable"))
    }

    #[test]
    fn reads_the_file() {
        let c = parse("GeoIP.conf", CONF, &no_env, &no_files).unwrap();
        assert_eq!(c.account_id, "12345");
        assert_eq!(c.license_key, "abcDEF_123");
        assert_eq!(c.edition_ids, ["GeoLite2-City", "GeoLite2-ASN"]);
        assert_eq!(c.database_directory, PathBuf::from("/var/lib/GeoIP"));
        assert_eq!(c.host, DEFAULT_HOST);
        assert!(!format!("{c:?}").contains("abcDEF"));
    }

    #[test]
    fn environment_overrides() {
        let env = |k: &str| match k {
            "GEOIPUPDATE_ACCOUNT_ID" => Some("999".to_string()),
            "GEOIPUPDATE_LICENSE_KEY_FILE" => Some("/run/secrets/key".to_string()),
            "GEOIPUPDATE_EDITION_IDS" => Some("GeoIP2-Country".to_string()),
            "GEOIPUPDATE_HOST" => Some("127.0.0.1:9/".to_string()),
            "GEOIPUPDATE_DB_DIR" => Some("/tmp/db".to_string()),
            _ => None,
        };
        let files = |p: &str| {
            assert_eq!(p, "/run/secrets/key");
            Ok("fromfile\n".to_string())
        };
        let c = parse("GeoIP.conf", CONF, &env, &files).unwrap();
        assert_eq!(c.account_id, "999");
        assert_eq!(c.license_key, "fromfile");
        assert_eq!(c.edition_ids, ["GeoIP2-Country"]);
        assert_eq!(c.host, "https://127.0.0.1:9");
        assert_eq!(c.database_directory, PathBuf::from("/tmp/db"));
    }

    #[test]
    fn proxy_settings_are_read_as_geoipupdate_reads_them() {
        let proxy = |text: &str, env: &dyn Fn(&str) -> Option<String>| {
            parse("g.conf", &format!("{CONF}{text}"), env, &no_files).map(|c| c.proxy)
        };
        assert_eq!(proxy("", &no_env).unwrap(), None);
        let p = proxy("Proxy 10.0.0.1\n", &no_env).unwrap().unwrap();
        assert_eq!(
            (p.url.as_str(), p.credentials),
            ("http://10.0.0.1:1080", None)
        );
        let p = proxy("Proxy proxy.corp:3128\nProxyUserPassword u:p:w\n", &no_env)
            .unwrap()
            .unwrap();
        assert_eq!(p.url, "http://proxy.corp:3128");
        assert_eq!(p.credentials, Some(("u".into(), "p:w".into())));
        assert!(!format!("{p:?}").contains("p:w"));
        // Credentials in the URL win; a URL keeps http's own default port.
        let p = proxy(
            "Proxy http://a%40b:s%3Ac@proxy.corp\nProxyUserPassword x:y\n",
            &no_env,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.url, "http://proxy.corp");
        assert_eq!(p.credentials, Some(("a@b".into(), "s:c".into())));
        // The environment overrides the file.
        let env = |k: &str| (k == "GEOIPUPDATE_PROXY").then(|| "127.0.0.1:8888".to_string());
        let p = proxy("Proxy 10.0.0.1\n", &env).unwrap().unwrap();
        assert_eq!(p.url, "http://127.0.0.1:8888");
        let e = proxy("Proxy socks5://10.0.0.1:1080\n", &no_env).unwrap_err();
        assert!(
            e.starts_with("g.conf:7: Proxy `socks5://") && e.contains("only http://"),
            "{e}"
        );
    }

    #[test]
    fn missing_and_bad_settings_are_named() {
        let e = parse("g.conf", "LicenseKey x\nEditionIDs A\n", &no_env, &no_files).unwrap_err();
        assert!(e.contains("AccountID is missing"), "{e}");
        let e = parse("g.conf", "AccountID 1\nLicenceKey x\n", &no_env, &no_files).unwrap_err();
        assert_eq!(e, "g.conf:2: unknown setting `LicenceKey`");
        let e = parse(
            "g.conf",
            "AccountID 1\nLicenseKey x\nEditionIDs ../etc\n",
            &no_env,
            &no_files,
        )
        .unwrap_err();
        assert!(e.contains("not a valid name"), "{e}");
    }
}
