//! Syslog (RFC 5424) to a local socket (`unix:///dev/log`), or a remote collector over UDP
//! (RFC 5426: one message per datagram) or TCP (RFC 6587 octet counting: `LEN SP MSG`).
//!
//! The message is the event's ECS JSON, so a collector that parses JSON (rsyslog `mmjsonparse`,
//! syslog-ng `json-parser`, Vector, Fluent Bit) gets every field; the header carries the
//! event's time, the host, `locgate`, the process id, the action as MSGID, and the IANA
//! `origin` structured-data element (RFC 5424 §7.2) naming the software and its version.
//! No byte-order mark precedes the JSON (RFC 5424 allows any MSG encoding without one), since
//! JSON parsers reject it.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::flat::Severity;
use super::{Deliver, Failure};
use crate::audit::event::Origin;

/// Where syslog messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A local datagram socket (`unix:///dev/log`).
    Unix(PathBuf),
    /// A collector over UDP (`udp://host:514`).
    Udp(String),
    /// A collector over TCP (`tcp://host:601`).
    Tcp(String),
}

impl Transport {
    /// Reads `unix:///path`, `udp://host:port` or `tcp://host:port` (the port is required:
    /// 514 and 601 are conventions, not defaults anyone can rely on).
    pub fn parse(address: &str) -> Result<Transport, String> {
        let host_port = |rest: &str| -> Result<String, String> {
            match rest.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) =>
                {
                    Ok(rest.to_owned())
                }
                _ => Err(format!(
                    "`{address}` needs a host and a port (udp://host:514)"
                )),
            }
        };
        if let Some(path) = address.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "`{address}`: give an absolute path (unix:///dev/log)"
                ));
            }
            Ok(Transport::Unix(PathBuf::from(path)))
        } else if let Some(rest) = address.strip_prefix("udp://") {
            host_port(rest).map(Transport::Udp)
        } else if let Some(rest) = address.strip_prefix("tcp://") {
            host_port(rest).map(Transport::Tcp)
        } else {
            Err(format!(
                "`{address}` is not unix:///path, udp://host:port or tcp://host:port"
            ))
        }
    }
}

/// `[events.syslog]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Where to send.
    pub transport: Transport,
    /// Facility code (RFC 5424 §6.2.1: 0 kern .. 23 local7); default 16 (local0).
    pub facility: u8,
    /// APP-NAME; default `locgate`.
    pub app_name: String,
    /// Queue bound, in events.
    pub queue: usize,
}

/// The facility names syslog.conf uses, by code.
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// The syslog output's thread state.
pub struct Syslog {
    config: SyslogConfig,
    hostname: String,
    pid: u32,
    /// The open connection or socket, made again after a failure.
    conn: Option<Conn>,
}

enum Conn {
    Unix(UnixDatagram),
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// How long a connect or a write to the collector may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

impl Syslog {
    /// An output for `config`; nothing is opened until the first event.
    pub fn new(config: SyslogConfig, origin: &Origin) -> Syslog {
        Syslog {
            config,
            hostname: header_token(&origin.host.hostname, 255),
            pid: std::process::id(),
            conn: None,
        }
    }

    /// One RFC 5424 message for an event's JSON line.
    pub fn message(&self, line: &str) -> String {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let severity = Severity::of(&event).syslog_code();
        let pri = u16::from(self.config.facility) * 8 + u16::from(severity);
        let timestamp = event["@timestamp"].as_str().unwrap_or("-");
        let msgid = event["event"]["action"]
            .as_str()
            .map_or_else(|| "-".to_owned(), |a| header_token(a, 32));
        format!(
            "<{pri}>1 {timestamp} {} {} {} {msgid} [origin software=\"locgate\" swVersion=\"{}\"] {line}",
            self.hostname,
            header_token(&self.config.app_name, 48),
            self.pid,
            env!("CARGO_PKG_VERSION"),
        )
    }

    fn connect(&self) -> std::io::Result<Conn> {
        match &self.config.transport {
            Transport::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(Conn::Unix(s))
            }
            Transport::Udp(addr) => {
                let target = resolve(addr)?;
                let bind = if target.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(bind)?;
                s.connect(target)?;
                Ok(Conn::Udp(s))
            }
            Transport::Tcp(addr) => {
                let s = TcpStream::connect_timeout(&resolve(addr)?, IO_TIMEOUT)?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                s.set_nodelay(true)?;
                Ok(Conn::Tcp(s))
            }
        }
    }
}

fn resolve(addr: &str) -> std::io::Result<std::net::SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{addr}: no address found"),
        )
    })
}

/// A header field as RFC 5424 wants it: printable US-ASCII without spaces, at most `max`
/// characters; `-` (the nil value) when nothing is left.
fn header_token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() { "-".to_owned() } else { t }
}

impl Deliver for Syslog {
    fn batch_size(&self) -> usize {
        64
    }

    fn deliver(&mut self, lines: &[Arc<str>]) -> Result<(), Failure> {
        let conn = match self.conn.take() {
            Some(c) => c,
            None => self
                .connect()
                .map_err(|e| Failure::Retry(format!("connect: {e}")))?,
        };
        let mut conn = conn;
        let sent = lines.iter().try_for_each(|line| {
            let msg = self.message(line);
            match &mut conn {
                Conn::Unix(s) => s.send(msg.as_bytes()).map(drop),
                Conn::Udp(s) => s.send(msg.as_bytes()).map(drop),
                Conn::Tcp(s) => s.write_all(format!("{} {msg}", msg.len()).as_bytes()),
            }
        });
        match sent {
            Ok(()) => {
                self.conn = Some(conn);
                Ok(())
            }
            // Dropped connection: the next try connects again (a TCP collector may have taken
            // part of the batch; syslog has no acknowledgement to know better).
            Err(e) => Err(Failure::Retry(format!("send: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            Transport::parse("unix:///dev/log"),
            Ok(Transport::Unix("/dev/log".into()))
        );
        assert_eq!(
            Transport::parse("udp://10.0.0.5:514"),
            Ok(Transport::Udp("10.0.0.5:514".into()))
        );
        assert_eq!(
            Transport::parse("tcp://[::1]:601"),
            Ok(Transport::Tcp("[::1]:601".into()))
        );
        assert!(Transport::parse("udp://collector").is_err());
        assert!(Transport::parse("tcp://host:0").is_err());
        assert!(Transport::parse("unix://dev/log").is_err());
        assert!(Transport::parse("http://x:1").is_err());
    }

    #[test]
    fn message_is_rfc5424_with_the_event_as_msg() {
        let origin = Origin::new(Some("gw-1"));
        let out = Syslog::new(
            SyslogConfig {
                transport: Transport::Udp("127.0.0.1:1".into()),
                facility: 16,
                app_name: "locgate".into(),
                queue: 1,
            },
            &origin,
        );
        let line = r#"{"@timestamp":"2026-11-25T08:33:31.027Z","event":{"action":"block"}}"#;
        let msg = out.message(line);
        // local0 (16) * 8 + warning (4) = 132
        let want = format!(
            "<132>1 2026-11-25T08:33:31.027Z {} locgate {} block [origin software=\"locgate\" swVersion=\"{}\"] {line}",
            header_token(&origin.host.hostname, 255),
            std::process::id(),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(msg, want);
    }
}
