//! OpenVPN's management interface, read-only: `status 3` asked every `poll`, its `CLIENT_LIST`
//! rows read by their `HEADER` (columns differ between versions), nothing else ever sent.
//!
//! locgate never uses `management-client-auth` or `client-kill`: it must not become part of
//! OpenVPN's authentication, and a block is locgate closing the tunnel it carries.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::{Reported, Reporter, parse_address};
use crate::config::{Management, OpenVpnUser};

/// Longest line or reply accepted from the management interface (a status of thousands of
/// clients is a few MB; a line is short).
const MAX_LINE: usize = 8 * 1024;
const MAX_STATUS_LINES: usize = 200_000;

/// How long one exchange (connect, password, one status) may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the `CLIENT_LIST` of a `status 3` reply (tab-separated, one `HEADER CLIENT_LIST` row
/// naming the columns). `user` picks the name; a username of `UNDEF` (the server asks for
/// none) falls back to the common name.
pub fn parse_status(text: &str, user: OpenVpnUser) -> Result<Vec<Reported>, String> {
    let mut columns: Option<Vec<&str>> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        match fields.next() {
            Some("HEADER") if line.starts_with("HEADER\tCLIENT_LIST\t") => {
                columns = Some(fields.skip(1).collect());
            }
            Some("CLIENT_LIST") => {
                let cols = columns
                    .as_ref()
                    .ok_or("a CLIENT_LIST row before its HEADER (not `status 3` output?)")?;
                let row: Vec<&str> = fields.collect();
                let get = |name: &str| {
                    cols.iter()
                        .position(|c| *c == name)
                        .and_then(|i| row.get(i).copied())
                        .filter(|v| !v.is_empty() && *v != "UNDEF")
                };
                let Some(real) = get("Real Address") else {
                    return Err("a CLIENT_LIST row without a Real Address".into());
                };
                let addr = parse_address(real)
                    .ok_or_else(|| format!("cannot read the Real Address {real:?}"))?;
                let common_name = get("Common Name");
                let name = match user {
                    OpenVpnUser::CommonName => common_name,
                    OpenVpnUser::Username => get("Username").or(common_name),
                };
                out.push(Reported {
                    user: name.map(str::to_owned),
                    addr,
                });
            }
            _ => {}
        }
    }
    if columns.is_none() {
        return Err("no CLIENT_LIST header (not `status 3` output?)".into());
    }
    Ok(out)
}

/// A connection to the management interface, kept open between polls.
pub struct Client {
    io: BufReader<Box<dyn Io>>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Client {
    /// Connects, gives the password when asked, and reads past the banner.
    pub async fn connect(at: &Management, password: Option<&str>) -> Result<Client, String> {
        tokio::time::timeout(EXCHANGE_TIMEOUT, Self::open(at, password))
            .await
            .map_err(|_| format!("{}: no answer within {EXCHANGE_TIMEOUT:?}", show(at)))?
    }

    async fn open(at: &Management, password: Option<&str>) -> Result<Client, String> {
        let io: Box<dyn Io> = match at {
            Management::Tcp(a) => Box::new(
                tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(|e| format!("{a}: {e}"))?,
            ),
            #[cfg(unix)]
            Management::Unix(p) => Box::new(
                tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| format!("{}: {e}", p.display()))?,
            ),
            #[cfg(not(unix))]
            Management::Unix(p) => return Err(format!("{}: unix sockets need unix", p.display())),
        };
        let mut client = Client {
            io: BufReader::new(io),
        };
        // The first thing said is either the password prompt (no newline after it) or the
        // `>INFO:` banner.
        let first = client.read_prompt_or_line().await?;
        if first.starts_with("ENTER PASSWORD:") {
            let Some(pw) = password else {
                return Err(
                    "the management interface asks for a password: set password_file".into(),
                );
            };
            client.send(pw).await?;
            let answer = client.read_line().await?;
            // Some versions print the banner right after SUCCESS, which the next read skips.
            if !answer.contains("SUCCESS") {
                return Err("the management interface refused the password".into());
            }
        } else if !first.starts_with(">INFO:") {
            return Err(format!(
                "not an OpenVPN management interface (it said {:?})",
                first.chars().take(60).collect::<String>()
            ));
        }
        Ok(client)
    }

    /// The sessions the server has now (`status 3`).
    pub async fn status(&mut self, user: OpenVpnUser) -> Result<Vec<Reported>, String> {
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.status_text())
            .await
            .map_err(|_| format!("no status within {EXCHANGE_TIMEOUT:?}"))?
            .and_then(|text| parse_status(&text, user))
    }

    async fn status_text(&mut self) -> Result<String, String> {
        self.send("status 3").await?;
        let mut text = String::new();
        for _ in 0..MAX_STATUS_LINES {
            let line = self.read_line().await?;
            // Real-time notifications (`>INFO`, `>LOG` ...) may come between; not ours.
            if line.starts_with('>') {
                continue;
            }
            if line.starts_with("ERROR:") {
                return Err(format!("status refused: {line}"));
            }
            if line == "END" {
                return Ok(text);
            }
            text.push_str(&line);
            text.push('\n');
        }
        Err(format!(
            "status longer than {MAX_STATUS_LINES} lines without END"
        ))
    }

    async fn send(&mut self, line: &str) -> Result<(), String> {
        let io = self.io.get_mut();
        io.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        io.flush().await.map_err(|e| format!("write: {e}"))
    }

    /// One line, without its `\r\n`; a closed connection or an over-long line is an error.
    async fn read_line(&mut self) -> Result<String, String> {
        let mut buf = Vec::new();
        let n = (&mut self.io)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the management interface closed the connection".into());
        }
        if buf.last() != Some(&b'\n') {
            return Err(format!("a line longer than {MAX_LINE} bytes"));
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// The password prompt (`ENTER PASSWORD:`, no newline follows it) or one line.
    async fn read_prompt_or_line(&mut self) -> Result<String, String> {
        const PROMPT: &[u8] = b"ENTER PASSWORD:";
        let mut buf = Vec::new();
        loop {
            let chunk = self.io.fill_buf().await.map_err(|e| format!("read: {e}"))?;
            if chunk.is_empty() {
                return Err("the management interface closed the connection".into());
            }
            let take = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => chunk.len(),
            };
            buf.extend_from_slice(&chunk[..take]);
            self.io.consume(take);
            if buf.ends_with(b"\n") || buf.starts_with(PROMPT) {
                break;
            }
            if buf.len() > MAX_LINE {
                return Err(format!("a line longer than {MAX_LINE} bytes"));
            }
        }
        Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
    }
}

/// Polls the management interface until the listener stops, keeping one connection open and
/// opening another when it fails.
pub async fn run(
    mut reporter: Reporter,
    at: Management,
    password: Option<String>,
    user: OpenVpnUser,
    poll: Duration,
) {
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut client: Option<Client> = None;
    loop {
        tick.tick().await;
        let c = match client.as_mut() {
            Some(c) => c,
            None => match Client::connect(&at, password.as_deref()).await {
                Ok(c) => client.insert(c),
                Err(problem) => {
                    reporter.failed(problem);
                    continue;
                }
            },
        };
        match c.status(user).await {
            Ok(sessions) => reporter.snapshot(sessions),
            Err(problem) => {
                reporter.failed(format!("{}: {problem}", show(&at)));
                client = None;
            }
        }
    }
}

fn show(at: &Management) -> String {
    match at {
        Management::Tcp(a) => a.clone(),
        Management::Unix(p) => p.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As OpenVPN 2.6 prints it (Debian 13's openvpn), one client without a username.
    const STATUS: &str = "TITLE\tOpenVPN 2.6.3 x86_64-pc-linux-gnu [SSL (OpenSSL)]\n\
TIME\t2026-12-02 13:00:00\t1796216400\n\
HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher\n\
CLIENT_LIST\talice\t127.0.0.1:51000\t10.8.0.2\t\t4120\t3512\t2026-12-02 12:59:00\t1796216340\tUNDEF\t0\t0\tAES-256-GCM\n\
CLIENT_LIST\tbob-laptop\t[2001:db8::7]:40000\t10.8.0.3\t\t1\t2\t2026-12-02 12:59:30\t1796216370\tbob\t1\t1\tAES-256-GCM\n\
HEADER\tROUTING_TABLE\tVirtual Address\tCommon Name\tReal Address\tLast Ref\tLast Ref (time_t)\n\
ROUTING_TABLE\t10.8.0.2\talice\t127.0.0.1:51000\t2026-12-02 13:00:00\t1796216400\n\
GLOBAL_STATS\tMax bcast/mcast queue length\t0\n";

    #[test]
    fn client_list_rows_name_users_by_username_else_common_name() {
        let got = parse_status(STATUS, OpenVpnUser::Username).expect("parses");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].user.as_deref(), Some("alice"));
        assert_eq!(got[0].addr, "127.0.0.1:51000".parse().expect("addr"));
        assert_eq!(got[1].user.as_deref(), Some("bob"));
        assert_eq!(got[1].addr, "[2001:db8::7]:40000".parse().expect("addr"));
        let by_cn = parse_status(STATUS, OpenVpnUser::CommonName).expect("parses");
        assert_eq!(by_cn[1].user.as_deref(), Some("bob-laptop"));
    }

    #[test]
    fn an_empty_server_and_garbage_are_told_apart() {
        let empty =
            "TITLE\tx\nHEADER\tCLIENT_LIST\tCommon Name\tReal Address\nGLOBAL_STATS\tx\t0\n";
        assert_eq!(parse_status(empty, OpenVpnUser::Username), Ok(vec![]));
        assert!(parse_status("hello\n", OpenVpnUser::Username).is_err());
        let headless = "CLIENT_LIST\talice\t1.2.3.4:5\n";
        assert!(parse_status(headless, OpenVpnUser::Username).is_err());
        let bad = "HEADER\tCLIENT_LIST\tCommon Name\tReal Address\nCLIENT_LIST\talice\tnowhere\n";
        assert!(parse_status(bad, OpenVpnUser::Username).is_err());
    }
}
