//! `locgate update` against a fixture HTTP server on loopback: list sources (Tor bulk list, AWS,
//! Google Cloud), a gzip mmdb, a fake MaxMind update service that checks Basic auth and md5, and
//! every way a download goes wrong (truncated, wrong checksum, 500, not a database, shrunk list),
//! each asserting the exit status and exactly what is on disk afterwards. The `free` preset is
//! served whole from `tests/fixtures/preset/` through `--mirror`, and the installed files are
//! then used by `locgate check` with nothing but `[data] dir`.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use base64::Engine;

const BIN: &str = env!("CARGO_BIN_EXE_locgate");
const DEADLINE: Duration = Duration::from_secs(30);

/// What the fixture server answers for one path (query included).
#[derive(Clone)]
enum Reply {
    /// 200 with a body and an optional ETag; answers 304 to a matching If-None-Match.
    Ok { body: Vec<u8>, etag: Option<String> },
    /// A status with a short body.
    Status(u16),
    /// Announces `Content-Length` of the whole body, sends half, and closes.
    Truncated(Vec<u8>),
    /// 200 only with `Authorization: Basic base64(user:key)`, else 401.
    Auth { user_key: String, body: Vec<u8> },
}

/// A request the server received: path and query, and its headers (lowercase names).
#[derive(Debug, Clone)]
struct Got {
    target: String,
    headers: HashMap<String, String>,
}

/// A tiny HTTP/1.1 server on a std thread (one thread per connection, `Connection: close`), so
/// it can misbehave in ways a real server library will not: lie about lengths, cut bodies short.
struct Fixture {
    base: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    log: Arc<Mutex<Vec<Got>>>,
}

impl Fixture {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let log: Arc<Mutex<Vec<Got>>> = Arc::default();
        let (r, l) = (routes.clone(), log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (r, l) = (r.clone(), l.clone());
                std::thread::spawn(move || serve_one(stream, &r, &l));
            }
        });
        Fixture { base, routes, log }
    }

    fn set(&self, target: &str, reply: Reply) {
        self.routes
            .lock()
            .unwrap()
            .insert(target.to_string(), reply);
    }

    fn url(&self, target: &str) -> String {
        format!("{}{target}", self.base)
    }

    fn requests(&self, prefix: &str) -> Vec<Got> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.target.starts_with(prefix))
            .cloned()
            .collect()
    }
}

fn serve_one(
    mut s: std::net::TcpStream,
    routes: &Mutex<HashMap<String, Reply>>,
    log: &Mutex<Vec<Got>>,
) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    log.lock().unwrap().push(Got {
        target: target.clone(),
        headers: headers.clone(),
    });
    let reply = routes.lock().unwrap().get(&target).cloned();
    let answer = |s: &mut std::net::TcpStream, status: &str, extra: &str, body: &[u8]| {
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
            body.len()
        );
        let _ = s.write_all(body);
    };
    match reply {
        None => answer(&mut s, "404 Not Found", "", b"no such fixture"),
        Some(Reply::Ok { body, etag }) => match etag {
            Some(tag) if headers.get("if-none-match") == Some(&tag) => {
                let _ = write!(
                    s,
                    "HTTP/1.1 304 Not Modified\r\netag: {tag}\r\nconnection: close\r\n\r\n"
                );
            }
            Some(tag) => answer(
                &mut s,
                "200 OK",
                &format!("etag: {tag}\r\nlast-modified: Wed, 25 Nov 2026 08:00:00 GMT\r\n"),
                &body,
            ),
            None => answer(&mut s, "200 OK", "", &body),
        },
        Some(Reply::Status(code)) => answer(&mut s, &format!("{code} Oops"), "", b"server trouble"),
        Some(Reply::Truncated(body)) => {
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body[..body.len() / 2]);
            let _ = s.flush();
        }
        Some(Reply::Auth { user_key, body }) => {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_key)
            );
            if headers.get("authorization") == Some(&expected) {
                answer(&mut s, "200 OK", "", &body);
            } else {
                answer(
                    &mut s,
                    "401 Unauthorized",
                    "",
                    b"{\"code\":\"ACCOUNT_ID_REQUIRED\",\"error\":\"invalid license key\"}",
                );
            }
        }
    }
}

struct Out {
    code: Option<i32>,
    stderr: String,
}

/// Runs `locgate update -c config` with extra environment variables.
fn update(config: &Path, env: &[(&str, &str)]) -> Out {
    let config = config.display().to_string();
    update_with(&["-c", &config], env)
}

/// Runs `locgate update args...` with extra environment variables.
fn update_with(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.arg("update")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // The fixtures are on loopback: a proxy of the machine's must not stand in between (the
    // proxy tests set their own).
    for var in PROXY_VARIABLES {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn locgate");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("locgate update {args:?} did not finish within {DEADLINE:?}");
        }
    };
    Out {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every variable a download client takes a proxy from.
const PROXY_VARIABLES: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

fn toml_str(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

/// Files in `dir`, sorted (temporary files would show up here).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn source(name: &str, url: &str, kind: &str, category: Option<&str>, path: &Path) -> String {
    let category = category.map_or(String::new(), |c| format!("category = \"{c}\"\n"));
    format!(
        "[[update.source]]\nname = \"{name}\"\nurl = \"{url}\"\nkind = \"{kind}\"\n{category}path = {}\n\n",
        toml_str(path)
    )
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("locgate.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

const TOR: &str = "185.220.101.1\n185.220.101.2\n185.220.101.3\n185.220.101.4\n2001:db8::1\n";

#[test]
fn lists_are_fetched_converted_and_then_not_downloaded_again() {
    let srv = Fixture::start();
    srv.set(
        "/torbulkexitlist",
        Reply::Ok {
            body: TOR.into(),
            etag: Some("\"tor-1\"".into()),
        },
    );
    srv.set(
        "/ip-ranges.json",
        Reply::Ok {
            body: br#"{"syncToken":"1","prefixes":[{"ip_prefix":"3.5.140.0/22","service":"AMAZON"}],"ipv6_prefixes":[{"ipv6_prefix":"2600:1f14::/35","service":"AMAZON"}]}"#.to_vec(),
            etag: None,
        },
    );
    srv.set(
        "/cloud.json",
        Reply::Ok {
            body: br#"{"prefixes":[{"ipv4Prefix":"34.1.208.0/20","scope":"x"},{"ipv6Prefix":"2600:1900::/28"}]}"#.to_vec(),
            etag: None,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tor = data.join("tor.txt");
    let aws = data.join("aws.txt");
    let gcp = data.join("gcp.txt");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[update]\n{}{}{}",
            source(
                "tor",
                &srv.url("/torbulkexitlist"),
                "list",
                Some("tor_exit"),
                &tor
            ),
            source("aws", &srv.url("/ip-ranges.json"), "aws", None, &aws),
            source("gcp", &srv.url("/cloud.json"), "gcp", None, &gcp),
        ),
    );
    let out = update(&cfg, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("tor: installed"), "{}", out.stderr);
    let tor_text = std::fs::read_to_string(&tor).unwrap();
    assert!(tor_text.contains("185.220.101.4/32"), "{tor_text}");
    assert!(tor_text.contains("category tor_exit"), "{tor_text}");
    let aws_text = std::fs::read_to_string(&aws).unwrap();
    assert!(aws_text.contains("3.5.140.0/22") && aws_text.contains("2600:1f14::/35"));
    let gcp_text = std::fs::read_to_string(&gcp).unwrap();
    assert!(gcp_text.contains("34.1.208.0/20") && gcp_text.contains("2600:1900::/28"));
    // The files load as lists.
    for p in [&tor, &aws, &gcp] {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            !locgate::intel::cidr_list::parse_list(&text)
                .unwrap()
                .is_empty()
        );
    }

    // Second run: the ETag is sent, the server answers 304, the file stays byte for byte.
    let before = std::fs::metadata(&tor).unwrap().modified().unwrap();
    let out = update(&cfg, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("tor: up to date"), "{}", out.stderr);
    let tor_requests = srv.requests("/torbulkexitlist");
    assert_eq!(tor_requests.len(), 2);
    assert_eq!(
        tor_requests[1]
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"tor-1\"")
    );
    assert!(tor_requests[1].headers.contains_key("if-modified-since"));
    assert_eq!(std::fs::read_to_string(&tor).unwrap(), tor_text);
    assert_eq!(std::fs::metadata(&tor).unwrap().modified().unwrap(), before);
    assert_eq!(
        listing(&data),
        [".locgate-update.json", "aws.txt", "gcp.txt", "tor.txt"]
    );
}

#[test]
fn failed_downloads_change_nothing_and_exit_non_zero_with_the_reason() {
    let srv = Fixture::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let old_list = "10.0.0.1\n10.0.0.2\n10.0.0.3\n10.0.0.4\n";
    let names = [
        "truncated",
        "error500",
        "notmmdb",
        "shrunk",
        "empty",
        "html",
    ];
    for n in names {
        std::fs::write(data.join(format!("{n}.txt")), old_list).unwrap();
    }
    let old_db = common::city_db_bytes();
    std::fs::write(data.join("notmmdb.mmdb"), &old_db).unwrap();
    let mut big = String::new();
    for i in 0..200 {
        big.push_str(&format!("10.1.{i}.0/24\n"));
    }
    srv.set("/truncated", Reply::Truncated(big.clone().into_bytes()));
    srv.set("/500", Reply::Status(500));
    srv.set(
        "/garbage.mmdb",
        Reply::Ok {
            body: b"this is not a MaxMind database at all".to_vec(),
            etag: None,
        },
    );
    srv.set(
        "/shrunk",
        Reply::Ok {
            body: b"10.0.0.1\n".to_vec(),
            etag: None,
        },
    );
    srv.set(
        "/empty",
        Reply::Ok {
            body: b"# nothing today\n".to_vec(),
            etag: None,
        },
    );
    srv.set(
        "/html",
        Reply::Ok {
            body: b"<html>maintenance</html>\n".to_vec(),
            etag: None,
        },
    );
    srv.set(
        "/good",
        Reply::Ok {
            body: TOR.into(),
            etag: None,
        },
    );
    let mut text = String::from("[update]\n");
    text += &source(
        "truncated",
        &srv.url("/truncated"),
        "list",
        Some("tor_exit"),
        &data.join("truncated.txt"),
    );
    text += &source(
        "error500",
        &srv.url("/500"),
        "list",
        Some("tor_exit"),
        &data.join("error500.txt"),
    );
    text += &source(
        "notmmdb",
        &srv.url("/garbage.mmdb"),
        "mmdb",
        None,
        &data.join("notmmdb.mmdb"),
    );
    text += &source(
        "shrunk",
        &srv.url("/shrunk"),
        "list",
        Some("anonymous_vpn"),
        &data.join("shrunk.txt"),
    );
    text += &source(
        "empty",
        &srv.url("/empty"),
        "list",
        Some("anonymous_vpn"),
        &data.join("empty.txt"),
    );
    text += &source(
        "html",
        &srv.url("/html"),
        "list",
        Some("anonymous_vpn"),
        &data.join("html.txt"),
    );
    text += &source(
        "good",
        &srv.url("/good"),
        "list",
        Some("tor_exit"),
        &data.join("good.txt"),
    );
    let cfg = write_config(dir.path(), &text);
    let out = update(&cfg, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let err = &out.stderr;
    for (name, why) in [
        ("truncated", "broke off"),
        ("error500", "HTTP 500"),
        ("notmmdb", "not a MaxMind DB"),
        ("shrunk", "shrank from 4 to 1"),
        ("empty", "no networks"),
        ("html", "line 1"),
    ] {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("error: {name}: ")))
            .unwrap_or_else(|| panic!("no error line for {name}:\n{err}"));
        assert!(line.contains(why), "{name}: {line}");
    }
    // Nothing that failed changed; the good source was still installed; no temp files remain.
    for n in names {
        assert_eq!(
            std::fs::read_to_string(data.join(format!("{n}.txt"))).unwrap(),
            old_list,
            "{n}"
        );
    }
    assert_eq!(std::fs::read(data.join("notmmdb.mmdb")).unwrap(), old_db);
    assert!(
        std::fs::read_to_string(data.join("good.txt"))
            .unwrap()
            .contains("185.220.101.1/32")
    );
    let files = listing(&data);
    assert!(files.iter().all(|f| !f.contains("tmp")), "{files:?}");
}

#[test]
fn gzip_mmdb_source_is_decompressed_checked_and_installed() {
    let srv = Fixture::start();
    let db = common::city_db_bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&db).unwrap();
    let gz = gz.finish().unwrap();
    srv.set(
        "/dbip-city-lite.mmdb.gz",
        Reply::Ok {
            body: gz.clone(),
            etag: Some("\"c1\"".into()),
        },
    );
    srv.set(
        "/truncated.mmdb.gz",
        Reply::Ok {
            body: gz[..gz.len() - 100].to_vec(),
            etag: None,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.mmdb");
    let bad = dir.path().join("other.mmdb");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[update]\n{}{}",
            source(
                "city",
                &srv.url("/dbip-city-lite.mmdb.gz"),
                "mmdb",
                None,
                &path
            ),
            source("cut", &srv.url("/truncated.mmdb.gz"), "mmdb", None, &bad)
        ),
    );
    let out = update(&cfg, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("city: installed"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: cut: gzip data is corrupt or truncated"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(&path).unwrap(), db);
    assert!(!bad.exists());
}

// ---------------------------------------------------------------------------------------------
// The MaxMind update protocol
// ---------------------------------------------------------------------------------------------

fn tar_gz(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("GeoLite2-City_20261120/{name}"),
            content,
        )
        .unwrap();
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn md5_hex(b: &[u8]) -> String {
    locgate::update::convert::md5_hex(b)
}

/// Serves GeoLite2-City (the test city database) as the MaxMind update service does, for the
/// account `42` with key `s3cret`; returns the database.
fn serve_city_edition(srv: &Fixture) -> Vec<u8> {
    let db = common::city_db_bytes();
    let user_key = "42:s3cret".to_string();
    srv.set(
        "/geoip/updates/metadata?edition_id=GeoLite2-City",
        Reply::Auth {
            user_key: user_key.clone(),
            body: metadata("GeoLite2-City", &md5_hex(&db)),
        },
    );
    srv.set(
        "/geoip/databases/GeoLite2-City/download?date=20261120&suffix=tar.gz",
        Reply::Auth {
            user_key,
            body: tar_gz("GeoLite2-City.mmdb", &db),
        },
    );
    db
}

/// A recording CONNECT proxy that takes `name` to `srv`, and the path of the CA file (in `dir`)
/// a client must trust (`SSL_CERT_FILE`).
fn proxy_for(
    srv: &Fixture,
    name: &str,
    dir: &Path,
) -> (common::connect_proxy::ConnectProxy, String) {
    let origin = srv
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("origin");
    let proxy = common::connect_proxy::ConnectProxy::start(&[name], origin);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &proxy.ca_pem).unwrap();
    (proxy, ca.display().to_string())
}

fn metadata(edition: &str, md5: &str) -> Vec<u8> {
    format!(r#"{{"databases":[{{"edition_id":"{edition}","md5":"{md5}","date":"2026-11-20"}}]}}"#)
        .into_bytes()
}

#[test]
fn maxmind_editions_with_basic_auth_md5_and_geoip_conf() {
    let srv = Fixture::start();
    let db = serve_city_edition(&srv);
    let user_key = "42:s3cret".to_string();
    // An edition whose download does not match the announced md5.
    srv.set(
        "/geoip/updates/metadata?edition_id=GeoLite2-ASN",
        Reply::Auth {
            user_key: user_key.clone(),
            body: metadata("GeoLite2-ASN", &"f".repeat(32)),
        },
    );
    srv.set(
        "/geoip/databases/GeoLite2-ASN/download?date=20261120&suffix=tar.gz",
        Reply::Auth {
            user_key: user_key.clone(),
            body: tar_gz("GeoLite2-ASN.mmdb", &common::asn_db_bytes()),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dbdir = dir.path().join("GeoIP");
    std::fs::create_dir_all(&dbdir).unwrap();
    let conf = dir.path().join("GeoIP.conf");
    std::fs::write(
        &conf,
        format!(
            "# geoipupdate\nAccountID 42\nLicenseKey s3cret\nEditionIDs GeoLite2-City\nDatabaseDirectory {}\nHost {}\n",
            dbdir.display(),
            srv.base
        ),
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        &format!("[update]\ngeoip_conf = {}\n", toml_str(&conf)),
    );

    // A wrong key (from the environment, which overrides the file) is refused: nothing written.
    let out = update(&cfg, &[("GEOIPUPDATE_LICENSE_KEY", "wrong")]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("wrong"),
        "the key must not be printed: {}",
        out.stderr
    );
    assert!(listing(&dbdir).is_empty());

    // The right key: metadata, download, extract, md5 verified, installed.
    let out = update(&cfg, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let installed = dbdir.join("GeoLite2-City.mmdb");
    assert_eq!(std::fs::read(&installed).unwrap(), db);
    assert_eq!(srv.requests("/geoip/databases/GeoLite2-City").len(), 1);

    // Again: the local md5 matches the metadata, so nothing is downloaded.
    let out = update(&cfg, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("GeoLite2-City: up to date"),
        "{}",
        out.stderr
    );
    assert_eq!(srv.requests("/geoip/databases/GeoLite2-City").len(), 1);

    // Editions from the environment: the ASN download fails its checksum and is not installed.
    let out = update(
        &cfg,
        &[("GEOIPUPDATE_EDITION_IDS", "GeoLite2-ASN GeoLite2-City")],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: GeoLite2-ASN: checksum mismatch"),
        "{}",
        out.stderr
    );
    assert!(!dbdir.join("GeoLite2-ASN.mmdb").exists());
    assert_eq!(std::fs::read(&installed).unwrap(), db);
    assert_eq!(listing(&dbdir), ["GeoLite2-City.mmdb"]);
}

/// `HTTPS_PROXY` (or `https_proxy`) carries every https download through the proxy with CONNECT;
/// `NO_PROXY` sends the hosts it names direct. The list's host name is not in any DNS: only the
/// proxy reaches it (and the client never looks it up, the proxy does).
#[test]
fn downloads_go_through_the_environments_proxy_and_no_proxy_goes_direct() {
    let srv = Fixture::start();
    srv.set(
        "/torbulkexitlist",
        Reply::Ok {
            body: TOR.as_bytes().to_vec(),
            etag: None,
        },
    );
    srv.set(
        "/direct.txt",
        Reply::Ok {
            body: b"203.0.113.0/24\n".to_vec(),
            etag: None,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (proxy, ca) = proxy_for(&srv, "lists.example.test", dir.path());
    let tor = dir.path().join("tor.txt");
    let direct = dir.path().join("direct.txt");
    let cfg = write_config(
        dir.path(),
        &format!(
            "{}{}",
            source(
                "tor",
                "https://lists.example.test/torbulkexitlist",
                "list",
                Some("tor_exit"),
                &tor
            ),
            source(
                "direct",
                &srv.url("/direct.txt"),
                "list",
                Some("trusted"),
                &direct
            )
        ),
    );
    let url = proxy.url();
    for variable in ["HTTPS_PROXY", "https_proxy"] {
        let out = update(
            &cfg,
            &[
                (variable, url.as_str()),
                ("HTTP_PROXY", url.as_str()),
                ("NO_PROXY", "127.0.0.1"),
                ("SSL_CERT_FILE", ca.as_str()),
            ],
        );
        assert_eq!(out.code, Some(0), "{variable}: {}", out.stderr);
    }
    let lines: Vec<String> = proxy.requests().into_iter().map(|r| r.line).collect();
    assert_eq!(
        lines, ["CONNECT lists.example.test:443 HTTP/1.1"; 2],
        "only the https list went through the proxy"
    );
    assert!(
        std::fs::read_to_string(&tor)
            .unwrap()
            .contains("185.220.101.1")
    );
    assert_eq!(srv.requests("/torbulkexitlist").len(), 2);
    assert_eq!(
        srv.requests("/direct.txt").len(),
        2,
        "NO_PROXY: straight to the server"
    );
    assert!(direct.is_file());
}

/// GeoIP.conf's `Proxy` and `ProxyUserPassword` carry the MaxMind requests, with the proxy's
/// credentials, and win over the environment's proxy, as in geoipupdate.
#[test]
fn geoip_conf_proxy_with_credentials_carries_the_maxmind_requests() {
    let srv = Fixture::start();
    let db = serve_city_edition(&srv);
    let dir = tempfile::tempdir().unwrap();
    let (proxy, ca) = proxy_for(&srv, "updates.example.test", dir.path());
    let dbdir = dir.path().join("GeoIP");
    let conf = dir.path().join("GeoIP.conf");
    std::fs::write(
        &conf,
        format!(
            "AccountID 42\nLicenseKey s3cret\nEditionIDs GeoLite2-City\nDatabaseDirectory {}\nHost updates.example.test\nProxy {}\nProxyUserPassword gate:pass word\n",
            dbdir.display(),
            proxy.addr
        ),
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        &format!("[update]\ngeoip_conf = {}\n", toml_str(&conf)),
    );
    // The environment names a proxy that is not there: GeoIP.conf's wins.
    let dead = format!("http://{}", common::closed_port());
    let out = update(
        &cfg,
        &[
            ("HTTPS_PROXY", dead.as_str()),
            ("SSL_CERT_FILE", ca.as_str()),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(std::fs::read(dbdir.join("GeoLite2-City.mmdb")).unwrap(), db);
    assert!(
        out.stderr
            .contains(&format!("through the proxy http://{}", proxy.addr)),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("pass word"), "{}", out.stderr);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("gate:pass word")
    );
    let got = proxy.requests();
    assert_eq!(got.len(), 2, "metadata and download: {got:?}");
    for r in got {
        assert_eq!(r.line, "CONNECT updates.example.test:443 HTTP/1.1");
        assert_eq!(r.authorization.as_deref(), Some(expected.as_str()));
    }

    // A proxy geoipupdate would not take either is named with its line.
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("Proxy 127", "Proxy socks5://127")).unwrap();
    let out = update(&cfg, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("GeoIP.conf:6: Proxy `socks5://"),
        "{}",
        out.stderr
    );
}

#[test]
fn update_without_an_update_section_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[policy]\n");
    let out = update(&cfg, &[]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("no [update] section"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_schedule_updates_and_reloads() {
    let srv = Fixture::start();
    // The new Tor list names the whole "US" test range.
    srv.set(
        "/tor-sched",
        Reply::Ok {
            body: b"127.1.0.0/16\n".to_vec(),
            etag: Some("\"s1\"".into()),
        },
    );
    let fx = common::Fixture::new();
    let up = common::Upstream::start().await;
    let tor = fx.dir.path().join("tor.txt");
    std::fs::write(&tor, "192.0.2.1\n").unwrap();
    let text = fx
        .config_text(&common::listener("sso", &up.url(), "mode = \"enforce\""))
        .replace(
            "embedded = false\n",
            "embedded = false\nlists = [{ path = \"tor.txt\", category = \"tor_exit\" }]\n",
        )
        + &format!(
            "\n[update]\nschedule = \"1s\"\n{}",
            source(
                "tor",
                &srv.url("/tor-sched"),
                "list",
                Some("tor_exit"),
                &tor
            )
        );
    let cfg_path = write_config(fx.dir.path(), &text);
    let config = locgate::config::Config::load(&cfg_path).expect("config");
    let for_reloader = locgate::config::Config::load(&cfg_path).expect("config");
    let running = common::within("start", locgate::serve::start(config))
        .await
        .expect("starts");
    let reloader = Arc::new(
        locgate::serve::reload::Reloader::new(
            Some(cfg_path),
            &for_reloader,
            running.shared.clone(),
        )
        .with_listeners(running.listeners.clone()),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(reloader.serve(stop_rx));
    let addr = running.addr("sso").unwrap();
    let status = async || {
        common::get(common::US_CLIENT, addr, "/", &[])
            .await
            .0
            .status
    };
    assert_eq!(status().await, common::UPSTREAM_STATUS);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status().await != http::StatusCode::FORBIDDEN {
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduled update did not take effect within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        std::fs::read_to_string(&tor)
            .unwrap()
            .contains("127.1.0.0/16")
    );
    // Later rounds are conditional and change nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = srv.requests("/tor-sched");
    assert!(later.len() >= 2, "{later:?}");
    assert_eq!(
        later
            .last()
            .unwrap()
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"s1\"")
    );
    assert_eq!(status().await, http::StatusCode::FORBIDDEN);
    let stats = &running.shared.auditor.stats;
    assert!(stats.updates_ok.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert_eq!(
        stats
            .updates_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let _ = stop_tx.send(true);
    common::within("reloader stops", task).await.unwrap();
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The `free` preset
// ---------------------------------------------------------------------------------------------

/// The fixture served for each list source of the preset (by source name).
const PRESET_FIXTURES: &[(&str, &str)] = &[
    ("tor-exits", "torbulkexitlist"),
    ("x4bnet-vpn-v4", "x4bnet-vpn-ipv4.txt"),
    ("x4bnet-vpn-v6", "x4bnet-vpn-ipv6.txt"),
    ("x4bnet-datacenter-v4", "x4bnet-datacenter-ipv4.txt"),
    ("x4bnet-datacenter-v6", "x4bnet-datacenter-ipv6.txt"),
    ("aws", "ip-ranges.json"),
    ("gcp", "cloud.json"),
    ("oracle", "public_ip_ranges.json"),
    ("cloudflare-v4", "cloudflare-ips-v4"),
    ("cloudflare-v6", "cloudflare-ips-v6"),
    ("digitalocean", "digitalocean-google.csv"),
    ("linode", "linode-geoip.csv"),
];

fn preset_fixture(file: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/preset")
        .join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// The path a preset URL has on the mirror (`/<host>/<path>`).
fn mirror_path(url: &str) -> String {
    locgate::config::preset::mirrored(url, "")
}

/// A mirror serving every list of the `free` preset from the fixtures (with ETags), and no
/// DB-IP file yet.
fn preset_mirror() -> Fixture {
    let srv = Fixture::start();
    for p in locgate::config::preset::FREE {
        if p.category.is_none() {
            continue;
        }
        let (_, file) = PRESET_FIXTURES
            .iter()
            .find(|(name, _)| *name == p.name)
            .unwrap_or_else(|| panic!("no fixture for preset source {}", p.name));
        srv.set(
            &mirror_path(p.url),
            Reply::Ok {
                body: preset_fixture(file),
                etag: Some(format!("\"{}-1\"", p.name)),
            },
        );
    }
    srv
}

/// Serves DB-IP's file of `month` (`2026-11`) for `db` (`city` or `asn`).
fn serve_dbip(srv: &Fixture, db: &str, month: &str, mmdb: &[u8]) {
    srv.set(
        &format!("/download.db-ip.com/free/dbip-{db}-lite-{month}.mmdb.gz"),
        Reply::Ok {
            body: gzip(mmdb),
            etag: Some(format!("\"{db}-{month}\"")),
        },
    );
}

/// `locgate check --json -c cfg ips...`, one event per address, by address.
fn check(cfg: &Path, ips: &[&str]) -> HashMap<String, serde_json::Value> {
    let cfg = cfg.display().to_string();
    let mut args = vec!["check", "--json", "-c", &cfg];
    args.extend_from_slice(ips);
    let out = common::locgate_bin(&args);
    assert!(out.judged(), "{}", out.stderr);
    out.json_lines()
        .into_iter()
        .map(|e| (e["source"]["ip"].as_str().unwrap_or("").to_string(), e))
        .collect()
}

/// The anonymizer categories `check` reports as true for one event.
fn categories(e: &serde_json::Value) -> Vec<String> {
    e["locgate"]["anonymizer"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.as_bool() == Some(true))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn free_preset_installs_every_source_into_the_data_dir_and_check_uses_them() {
    let srv = preset_mirror();
    // December's city file is not out yet: November's is installed. December's ASN file is.
    // Built once: a test database carries its build time.
    let city = common::city_db_bytes();
    serve_dbip(&srv, "city", "2026-11", &city);
    serve_dbip(&srv, "asn", "2026-12", &common::asn_db_bytes());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let today = [("LOCGATE_UPDATE_TODAY", "2026-12-01")];
    let args = [
        "--preset", "free", "--dir", &data_arg, "--mirror", &srv.base,
    ];

    let out = update_with(&args, &today);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let err = &out.stderr;
    assert!(
        err.contains("dbip-city-lite: 2026-12 is not published yet (HTTP 404)"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("dbip-city-lite: installed")
                && l.ends_with("(locgate-test-City, the 2026-11 file)")),
        "{err}"
    );
    assert_eq!(
        srv.requests("/download.db-ip.com/free/dbip-city-lite-")
            .iter()
            .map(|g| g.target.as_str())
            .collect::<Vec<_>>(),
        [
            "/download.db-ip.com/free/dbip-city-lite-2026-12.mmdb.gz",
            "/download.db-ip.com/free/dbip-city-lite-2026-11.mmdb.gz"
        ]
    );
    assert_eq!(
        srv.requests("/download.db-ip.com/free/dbip-asn-lite-")
            .len(),
        1
    );
    // The summary names the licences, and DB-IP's credit.
    assert!(
        err.contains(
            "licence of dbip-city-lite, dbip-asn-lite: CC BY 4.0 (DB-IP Lite): credit \"IP Geolocation by DB-IP"
        ),
        "{err}"
    );
    assert!(err.contains("licence of x4bnet-vpn-v4, x4bnet-vpn-v6, x4bnet-datacenter-v4, x4bnet-datacenter-v6: MIT"), "{err}");
    assert!(err.contains("update done: 14 sources checked"), "{err}");
    let mut expected: Vec<String> = locgate::config::preset::FREE
        .iter()
        .map(|p| p.file.to_string())
        .chain([".locgate-update.json".to_string()])
        .collect();
    expected.sort();
    assert_eq!(listing(&data), expected);
    assert!(
        std::fs::read(data.join("dbip-city-lite.mmdb")).unwrap() == city,
        "the city database is installed decompressed, byte for byte"
    );
    let cf = std::fs::read_to_string(data.join("cloudflare-v4.txt")).unwrap();
    assert!(
        cf.contains("198.51.100.48/28"),
        "the last line without a newline: {cf}"
    );

    // A gateway config with nothing but `[data] dir` uses every file: the city database (the
    // test plan puts 127.1.0.0/16 in Austin) and each list with its category.
    let cfg = write_config(dir.path(), "[data]\ndir = \"data\"\n");
    let cases: &[(&str, &str)] = &[
        ("192.0.2.10", "tor_exit"),
        ("192.0.2.33", "anonymous_vpn"),
        ("2001:db8:1::1", "anonymous_vpn"),
        ("192.0.2.65", "hosting_provider"),
        ("2001:db8:2::1", "hosting_provider"),
        ("198.51.100.1", "hosting_provider"),
        ("2001:db8:3::1", "hosting_provider"),
        ("198.51.100.17", "hosting_provider"),
        ("2001:db8:4::1", "hosting_provider"),
        ("198.51.100.33", "hosting_provider"),
        ("198.51.100.49", "hosting_provider"),
        ("2001:db8:5::1", "hosting_provider"),
        ("203.0.113.1", "hosting_provider"),
        ("203.0.113.17", "hosting_provider"),
    ];
    let mut ips: Vec<&str> = cases.iter().map(|(ip, _)| *ip).collect();
    ips.extend([common::US_CLIENT, "192.0.2.200"]);
    let events = check(&cfg, &ips);
    for (ip, category) in cases {
        let e = &events[*ip];
        assert_eq!(categories(e), [*category], "{ip}: {e}");
    }
    assert_eq!(
        events[common::US_CLIENT]["source"]["geo"]["city_name"],
        "Austin"
    );
    assert!(categories(&events["192.0.2.200"]).is_empty());

    // In January, before January's files are out: December's city file is new and installed,
    // December's ASN file is the installed one (asked with its ETag: 304), and the lists are
    // asked conditionally too.
    serve_dbip(&srv, "city", "2026-12", &common::city_db_bytes());
    let out = update_with(&args, &[("LOCGATE_UPDATE_TODAY", "2027-01-02")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let err = &out.stderr;
    assert!(
        err.contains("dbip-city-lite: installed") && err.contains("dbip-asn-lite: up to date"),
        "{err}"
    );
    assert!(err.contains("tor-exits: up to date"), "{err}");
    let asn = srv.requests("/download.db-ip.com/free/dbip-asn-lite-2026-12");
    assert_eq!(
        asn.last()
            .and_then(|g| g.headers.get("if-none-match"))
            .map(String::as_str),
        Some("\"asn-2026-12\"")
    );
}

#[test]
fn preset_in_the_config_with_own_sources_added_and_one_replaced() {
    let srv = preset_mirror();
    serve_dbip(&srv, "city", "2026-12", &common::city_db_bytes());
    // No ASN file for this month nor the last: that source fails, the others are installed.
    srv.set(
        "/my/ServiceTags_Public_20261130.json",
        Reply::Ok {
            body: preset_fixture("ServiceTags_Public.json"),
            etag: None,
        },
    );
    srv.set(
        "/my/tor.txt",
        Reply::Ok {
            body: b"192.0.2.99\n".to_vec(),
            etag: None,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[data]\ndir = \"data\"\n[update]\npreset = \"free\"\npreset_mirror = \"{}\"\n{}{}",
        srv.base,
        source(
            "azure",
            &srv.url("/my/ServiceTags_Public_20261130.json"),
            "azure",
            None,
            &dir.path().join("data/azure.txt")
        ),
        source(
            "tor-exits",
            &srv.url("/my/tor.txt"),
            "list",
            Some("tor_exit"),
            &dir.path().join("data/tor-exits.txt")
        ),
    )
    .replace(
        "[data]\ndir = \"data\"\n",
        "[data]\ndir = \"data\"\nlists = [{ path = \"data/azure.txt\", category = \"hosting_provider\" }]\n",
    );
    let cfg = write_config(dir.path(), &text);
    let out = update(&cfg, &[("LOCGATE_UPDATE_TODAY", "2026-12-15")]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let err = &out.stderr;
    let failed: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(failed.len(), 1, "{err}");
    assert!(
        failed[0].starts_with("error: dbip-asn-lite: neither 2026-12 (HTTP 404")
            && failed[0].contains("nor 2026-11 (HTTP 404"),
        "{err}"
    );
    let data = dir.path().join("data");
    assert!(!data.join("dbip-asn-lite.mmdb").exists());
    assert!(data.join("dbip-city-lite.mmdb").is_file());
    // The config's own tor-exits replaced the preset's; the preset's URL was never asked.
    assert!(srv.requests("/check.torproject.org/").is_empty());
    let events = check(
        &cfg,
        &["192.0.2.99", "192.0.2.10", "203.0.113.33", "198.51.100.1"],
    );
    assert_eq!(categories(&events["192.0.2.99"]), ["tor_exit"]);
    assert!(categories(&events["192.0.2.10"]).is_empty());
    assert_eq!(categories(&events["203.0.113.33"]), ["hosting_provider"]);
    assert_eq!(categories(&events["198.51.100.1"]), ["hosting_provider"]);

    // `--preset --dir` on the command line replaces the config's preset (its files go to --dir);
    // the config's own sources still replace the preset's.
    let other = dir.path().join("other");
    let (cfg_arg, other_arg) = (cfg.display().to_string(), other.display().to_string());
    let out = update_with(
        &[
            "-c", &cfg_arg, "--preset", "free", "--dir", &other_arg, "--mirror", &srv.base,
        ],
        &[("LOCGATE_UPDATE_TODAY", "2026-12-15")],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(other.join("aws.txt").is_file(), "{}", out.stderr);
    assert!(other.join("dbip-city-lite.mmdb").is_file());
    assert!(!other.join("tor-exits.txt").exists());
    assert!(srv.requests("/check.torproject.org/").is_empty());
}

#[test]
fn preset_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[update]\npreset = \"free\"\n");
    let out = update(&cfg, &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("locgate.toml:2: update.preset:") && out.stderr.contains("[data] dir"),
        "{}",
        out.stderr
    );
    let cfg = write_config(
        dir.path(),
        "[data]\ndir = \"d\"\n[update]\npreset = \"gratis\"\n",
    );
    let out = update(&cfg, &[]);
    assert!(
        out.stderr.contains("unknown preset `gratis` (known: free)"),
        "{}",
        out.stderr
    );
    let out = update_with(&["--preset", "free"], &[]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("give --dir DIR"), "{}", out.stderr);
    let d = dir.path().display().to_string();
    let out = update_with(
        &["--preset", "free", "--dir", &d],
        &[("LOCGATE_UPDATE_TODAY", "December")],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("`December` is not a date"),
        "{}",
        out.stderr
    );

    let list = common::locgate_bin(&["update", "--list"]);
    assert!(list.status.success(), "{}", list.stderr);
    for p in locgate::config::preset::FREE {
        assert!(
            list.stdout.contains(p.url) && list.stdout.contains(p.licence),
            "{}",
            p.name
        );
    }
    assert!(
        list.stdout
            .contains("attribution required: \"IP Geolocation by DB-IP")
    );
}
