//! A gateway's own log lines as the session source (GlobalProtect, AnyConnect/ocserv,
//! FortiGate, strongSwan, RADIUS accounting...): a file followed as it grows (and across
//! rotation and truncation), or syslog datagrams on a UDP socket, each line tried against
//! `pattern` (a session starts: named captures `user`, `ip`, optional `port`) and
//! `end_pattern` (it ends: `user`, optional `ip`/`port`).
//!
//! A file is read from its end when first opened (old lines name sessions long gone, whose
//! addresses a new tunnel may reuse) and a file that replaces it from its start.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Reported, Reporter};
use crate::config::LogInput;

/// How often a followed file is looked at.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// How long to wait before opening a file or binding a socket again after a failure.
const RETRY: Duration = Duration::from_secs(5);

/// Longest line kept; a longer one is skipped whole.
const MAX_LINE: usize = 64 * 1024;

/// What one line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    /// A session started.
    Start(Reported),
    /// A session ended: `user`'s at `addr` when the line gives it, else all of `user`'s.
    End {
        /// Whose.
        user: String,
        /// Where, when the line says.
        addr: Option<SocketAddr>,
    },
}

/// Reads one line: `end_pattern` first (a line that matches both ends a session), then
/// `pattern`. A line matching neither, or whose address does not parse, says nothing.
pub fn read_line(line: &str, pattern: &Regex, end_pattern: Option<&Regex>) -> Option<LogLine> {
    if let Some(caps) = end_pattern.and_then(|p| p.captures(line)) {
        let user = caps.name("user")?.as_str().to_owned();
        let addr = caps
            .name("ip")
            .and_then(|ip| address(ip.as_str(), caps.name("port").map(|p| p.as_str())));
        return Some(LogLine::End { user, addr });
    }
    let caps = pattern.captures(line)?;
    let user = caps.name("user")?.as_str();
    if user.is_empty() {
        return None;
    }
    let addr = address(
        caps.name("ip")?.as_str(),
        caps.name("port").map(|p| p.as_str()),
    )?;
    Some(LogLine::Start(Reported {
        user: Some(user.to_owned()),
        addr,
    }))
}

/// `ip` (brackets allowed) and an optional port (0 when absent).
fn address(ip: &str, port: Option<&str>) -> Option<SocketAddr> {
    let ip: IpAddr = ip.trim_matches(['[', ']']).parse().ok()?;
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    Some(SocketAddr::new(crate::client_addr::normalize(ip), port))
}

/// Reads the input until the listener stops.
pub async fn run(
    mut reporter: Reporter,
    input: LogInput,
    pattern: Regex,
    end_pattern: Option<Regex>,
) {
    let mut apply = move |reporter: &mut Reporter, line: &str| match read_line(
        line,
        &pattern,
        end_pattern.as_ref(),
    ) {
        Some(LogLine::Start(r)) => reporter.started(r),
        Some(LogLine::End { user, addr }) => reporter.ended(&user, addr),
        None => {}
    };
    match input {
        LogInput::File(path) => follow(&mut reporter, &path, &mut apply).await,
        LogInput::Syslog(addr) => syslog(&mut reporter, addr, &mut apply).await,
    }
}

/// Syslog datagrams, one message each (the regex finds its fields anywhere in it).
async fn syslog(
    reporter: &mut Reporter,
    addr: SocketAddr,
    apply: &mut impl FnMut(&mut Reporter, &str),
) {
    let socket = loop {
        match tokio::net::UdpSocket::bind(addr).await {
            Ok(s) => break s,
            Err(e) => {
                reporter.failed(format!("cannot listen for syslog on {addr}: {e}"));
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    reporter.ready();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, _from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        for line in text.lines() {
            apply(reporter, line);
        }
    }
}

/// An open file and where reading stopped.
struct Followed {
    file: tokio::fs::File,
    id: (u64, u64),
    offset: u64,
}

/// Follows `path`: new lines as they are written, across rotation (a new file at the path is
/// read from its start once the old one is finished) and truncation (read again from 0).
async fn follow(reporter: &mut Reporter, path: &Path, apply: &mut impl FnMut(&mut Reporter, &str)) {
    let mut current: Option<Followed> = None;
    let mut partial: Vec<u8> = Vec::new();
    let mut first_open = true;
    loop {
        let Some(f) = current.as_mut() else {
            match open(path, first_open).await {
                Ok(f) => {
                    current = Some(f);
                    first_open = false;
                    partial.clear();
                    reporter.ready();
                }
                Err(e) => {
                    reporter.failed(e);
                    tokio::time::sleep(RETRY).await;
                }
            }
            continue;
        };
        if let Err(e) = read_new(f, &mut partial, |line| apply(reporter, line)).await {
            reporter.failed(format!("{}: {e}", path.display()));
            current = None;
            tokio::time::sleep(RETRY).await;
            continue;
        }
        // Rotated (another file at the path) or truncated (shorter than what was read)?
        match tokio::fs::metadata(path).await {
            Ok(m) if file_id(&m) != f.id => current = None,
            Ok(m) if m.len() < f.offset => {
                f.offset = 0;
                partial.clear();
                if f.file.seek(std::io::SeekFrom::Start(0)).await.is_err() {
                    current = None;
                }
            }
            Ok(_) => tokio::time::sleep(FOLLOW_EVERY).await,
            // Moved away and not yet replaced: keep reading the old one.
            Err(_) => tokio::time::sleep(FOLLOW_EVERY).await,
        }
    }
}

/// Opens `path`, at its end when `at_end`.
async fn open(path: &Path, at_end: bool) -> Result<Followed, String> {
    let show = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = tokio::fs::File::open(path).await.map_err(show)?;
    let meta = file.metadata().await.map_err(show)?;
    let offset = if at_end { meta.len() } else { 0 };
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(show)?;
    Ok(Followed {
        file,
        id: file_id(&meta),
        offset,
    })
}

/// Reads what was appended and hands over each complete line (longer than [`MAX_LINE`]:
/// skipped whole).
async fn read_new(
    f: &mut Followed,
    partial: &mut Vec<u8>,
    mut line: impl FnMut(&str),
) -> std::io::Result<()> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut skipping = false;
    loop {
        let n = f.file.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        f.offset += n as u64;
        for piece in chunk[..n].split_inclusive(|&b| b == b'\n') {
            let complete = piece.ends_with(b"\n");
            if !skipping {
                partial.extend_from_slice(piece);
            }
            if partial.len() > MAX_LINE {
                partial.clear();
                skipping = true;
            }
            if complete {
                if !skipping {
                    let text = String::from_utf8_lossy(partial);
                    line(text.trim_end_matches(['\n', '\r']));
                }
                partial.clear();
                skipping = false;
            }
        }
    }
}

/// What tells one file from another at the same path (device and inode on unix).
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real formats, as the gateways write them (from their documentation).
    #[test]
    fn gateway_log_lines_name_user_and_address() {
        // ocserv (OpenConnect / AnyConnect clients).
        let ocserv = Regex::new(
            r"main\[(?P<user>[^\]]+)\]:(?P<ip>[0-9a-fA-F.:]+):(?P<port>\d+) user logged in",
        )
        .expect("regex");
        let ocserv_end = Regex::new(
            r"main\[(?P<user>[^\]]+)\]:(?P<ip>[0-9a-fA-F.:]+):(?P<port>\d+) user disconnected",
        )
        .expect("regex");
        let line =
            "Dec  2 13:01:02 vpn ocserv[1234]: main[alice]:198.51.100.20:40112 user logged in";
        assert_eq!(
            read_line(line, &ocserv, Some(&ocserv_end)),
            Some(LogLine::Start(Reported {
                user: Some("alice".into()),
                addr: "198.51.100.20:40112".parse().expect("addr"),
            }))
        );
        let end = "Dec  2 14:00:00 vpn ocserv[1234]: main[alice]:198.51.100.20:40112 user disconnected (reason: user disconnected, rx: 1, tx: 2)";
        assert_eq!(
            read_line(end, &ocserv, Some(&ocserv_end)),
            Some(LogLine::End {
                user: "alice".into(),
                addr: Some("198.51.100.20:40112".parse().expect("addr")),
            })
        );
        // GlobalProtect (PAN-OS syslog, GLOBALPROTECT log: no port).
        let gp = Regex::new(
            r"GLOBALPROTECT,.*?,gateway-connected,.*?,(?P<user>[^,]+),[^,]*,[^,]*,(?P<ip>[0-9.]+),",
        )
        .expect("regex");
        let gp_line = "1,2026/12/02 13:01:02,012345678901,GLOBALPROTECT,0,2817,2026/12/02 13:01:02,vsys1,gateway-connected,connected,,IPSec,bob,US,WIN-BOB,203.0.113.9,0.0.0.0,10.10.0.5,0.0.0.0,";
        assert_eq!(
            read_line(gp_line, &gp, None),
            Some(LogLine::Start(Reported {
                user: Some("bob".into()),
                addr: "203.0.113.9:0".parse().expect("addr"),
            }))
        );
        // Noise says nothing; a bad address says nothing.
        assert_eq!(
            read_line("sshd[1]: session opened", &ocserv, Some(&ocserv_end)),
            None
        );
        let bad = "main[alice]:999.1.1.1:5 user logged in";
        assert_eq!(read_line(bad, &ocserv, None), None);
    }

    #[tokio::test]
    async fn a_followed_file_gives_whole_lines_across_appends_and_skips_monsters() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("vpn.log");
        std::fs::write(&path, "old line\n").expect("write");
        let mut f = open(&path, true).await.expect("open");
        let mut partial = Vec::new();
        let mut got = Vec::new();
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("append");
        w.write_all(b"first\nsec").expect("write");
        read_new(&mut f, &mut partial, |l| got.push(l.to_owned()))
            .await
            .expect("read");
        w.write_all(b"ond\r\n").expect("write");
        w.write_all(&vec![b'x'; MAX_LINE + 10]).expect("write");
        w.write_all(b"\nthird\n").expect("write");
        read_new(&mut f, &mut partial, |l| got.push(l.to_owned()))
            .await
            .expect("read");
        assert_eq!(got, vec!["first", "second", "third"]);
    }
}
