//! A real PostgreSQL for the shared-store tests, from Debian's packages
//! (`/usr/lib/postgresql/<version>/bin`): its own cluster in a temporary directory, on a free
//! loopback port, a password for the `locgate` role (SCRAM), optionally TLS only with a
//! certificate from a private CA. Run as `nobody` when the tests run as root (PostgreSQL refuses
//! root). Without the binaries the tests say so and pass, unless `LOCGATE_REQUIRE_POSTGRES` is
//! set (as CI does where it installed them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of the `locgate` role.
pub const PASSWORD: &str = "test-only-postgres-password";

/// A running (or stopped) test cluster.
pub struct PgServer {
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
    root: bool,
    /// The private CA's certificate (PEM) when the server speaks TLS only.
    pub ca_pem: Option<String>,
}

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").is_file() && b.join("postgres").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

impl PgServer {
    /// Starts a cluster; `tls` makes it accept TLS connections only. `None` (skip) when
    /// PostgreSQL is not installed and not required.
    pub fn start(tls: bool) -> Option<PgServer> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("LOCGATE_REQUIRE_POSTGRES").is_none(),
                "PostgreSQL not found under /usr/lib/postgresql, and LOCGATE_REQUIRE_POSTGRES is set"
            );
            eprintln!("SKIPPED: PostgreSQL not installed (apt-get install postgresql)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let root = unsafe { libc::geteuid() } == 0;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).expect("pwfile");
        let mut pg = PgServer {
            dir,
            bin,
            port,
            child: None,
            root,
            ca_pem: None,
        };
        pg.chown(pg.dir.path());
        pg.chown(&pwfile);
        let data = pg.data();
        let out = pg
            .command("initdb")
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "locgate",
                "-E",
                "UTF8",
                "--no-sync",
                "--auth-local=trust",
            ])
            .args(["--auth-host=scram-sha-256", "--pwfile"])
            .arg(&pwfile)
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if tls {
            pg.make_tls();
        }
        pg.run();
        pg.wait_ready();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn chown(&self, path: &Path) {
        if self.root {
            let ok = Command::new("chown")
                .args(["-R", "nobody"])
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown nobody {}", path.display());
        }
    }

    /// A PostgreSQL program, as `nobody` when we are root.
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// TLS only: a private CA, a server certificate for 127.0.0.1, `hostssl` lines only.
    fn make_tls(&mut self) {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "locgate test database CA");
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &issuer).expect("server cert");
        let data = self.data();
        std::fs::write(data.join("server.crt"), cert.pem()).expect("crt");
        let key_path = data.join("server.key");
        std::fs::write(&key_path, key.serialize_pem()).expect("key");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod key");
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("pg_hba");
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        conf.push_str("\nssl = on\n");
        std::fs::write(data.join("postgresql.conf"), conf).expect("conf");
        self.chown(&data);
        self.ca_pem = Some(ca_cert.pem());
    }

    fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log");
        self.chown(&self.dir.path().join("server.log"));
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
    }

    /// Runs `f` with a superuser connection to `db`, on a thread of its own: the synchronous
    /// client starts a runtime, which a thread already driving the test's runtime may not.
    pub fn with_client<T: Send>(
        &self,
        db: &str,
        f: impl FnOnce(&mut postgres::Client) -> T + Send,
    ) -> Result<T, postgres::Error> {
        std::thread::scope(|s| {
            s.spawn(|| self.client(db).map(|mut c| f(&mut c)))
                .join()
                .expect("database thread")
        })
    }

    /// Superuser connection over the unix socket (no TLS, no password).
    fn client(&self, db: &str) -> Result<postgres::Client, postgres::Error> {
        postgres::Config::new()
            .host_path(self.dir.path())
            .port(self.port)
            .user("locgate")
            .dbname(db)
            .connect_timeout(Duration::from_secs(2))
            .connect(postgres::NoTls)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.with_client("postgres", |_| ()) {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!(
                    "postgres did not come up: {e}\n{}",
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Creates database `name`; the URL locgate is given for it (no password: that is in
    /// [`Self::password_file`]).
    pub fn database(&self, name: &str) -> String {
        self.with_client("postgres", |c| {
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create database")
        })
        .expect("connect");
        format!("postgres://locgate@127.0.0.1:{}/{name}", self.port)
    }

    /// Writes the password file locgate reads.
    pub fn password_file(&self) -> PathBuf {
        let p = self.dir.path().join("locgate-password");
        std::fs::write(&p, format!("{PASSWORD}\n")).expect("password file");
        p
    }

    /// `kill -9` the server (the postmaster; its backends follow it down).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Backends may outlive the postmaster a moment and hold the port and shared memory.
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Starts the server again on the same data and port (crash recovery runs).
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(self.data().join("postmaster.pid"));
        self.run();
        self.wait_ready();
    }

    /// Ids of the events in database `db`.
    pub fn event_ids(&self, db: &str) -> std::collections::HashSet<String> {
        self.with_client(db, |c| {
            c.query("SELECT id FROM events", &[])
                .expect("select")
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
        .expect("connect")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
