//! The close event of a pass-through tunnel (TCP connection or UDP flow).
//!
//! The connect event is built when the tunnel opens (and written unless the allow throttle
//! folds it away); a copy is kept as the close event's template, so the close event carries
//! the same decision fields without keeping the runtime state (data, policy) alive for the
//! hours a tunnel may last. At the end the template gets a fresh id, `event.type = ["connection",
//! "end"]`, the duration, the bytes each way and how it ended, and is written unthrottled.

use std::time::{Duration, Instant};

use crate::audit::event::{IdentityOut, User};
use crate::audit::{Auditor, Destination, Event, TunnelEnd, TunnelOut};
use crate::history::vpn_sessions::TunnelSlot;

/// When, after a stop is asked for, pass-through tunnels still open are cut: inside the serve
/// layer's drain time (30 s), so their close events are written before the final flush.
pub const TUNNEL_CUT: Duration = Duration::from_secs(27);

/// An open tunnel's record.
pub struct Tunnel {
    template: Event,
    start_id: Option<String>,
    started: Instant,
    upstream: String,
}

/// How a tunnel ended and what crossed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// Who or what ended it.
    pub end: TunnelEnd,
    /// Bytes the client sent to the upstream.
    pub to_upstream: u64,
    /// Bytes the upstream sent to the client.
    pub to_client: u64,
    /// For [`TunnelEnd::Error`]: which side failed, and how.
    pub error: Option<String>,
    /// For [`TunnelEnd::Blocked`]: the re-decision that closed it.
    pub blocked_by: Option<crate::policy::Decision>,
}

impl Tunnel {
    /// A tunnel whose connect event is `template` (`start_id` when it was written).
    pub fn new(template: Event, start_id: Option<String>, upstream: String) -> Tunnel {
        Tunnel {
            template,
            start_id,
            started: Instant::now(),
            upstream,
        }
    }

    /// Names, in the close event, the person the tunnel's VPN server reported and a re-decision
    /// judged it as (`slot`), when there was one: the connect event could not know them.
    pub fn name_from(&mut self, slot: &TunnelSlot) {
        if let Some((user, by)) = slot.decided() {
            self.template.user = Some(User::named(user.clone(), by.verified));
            self.template.locgate.identity = Some(IdentityOut {
                source: Some(by.source),
                verified: by.verified,
                presented: (by.user != user).then(|| by.user.clone()),
                problems: Vec::new(),
            });
        }
    }

    /// Writes the close event and adds the bytes to `/metrics`.
    pub fn close(self, auditor: &Auditor, ended: Ended) {
        let stats = &auditor.stats;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        stats
            .tunnel_bytes_to_upstream
            .fetch_add(ended.to_upstream, relaxed);
        stats
            .tunnel_bytes_to_client
            .fetch_add(ended.to_client, relaxed);
        auditor.record(self.close_event(auditor.next_id(), ended));
    }

    fn close_event(self, id: String, ended: Ended) -> Event {
        let elapsed = self.started.elapsed();
        let mut e = self.template;
        e.timestamp = crate::audit::timestamp_now();
        e.event.id = id;
        e.event.kind = "event";
        e.event.category = Some(&["network"]);
        e.event.types = Some(match ended.end {
            TunnelEnd::Blocked => &["connection", "end", "denied"],
            _ => &["connection", "end"],
        });
        e.event.outcome = Some(match ended.end {
            TunnelEnd::Blocked | TunnelEnd::Error => "failure",
            _ => "success",
        });
        // The connect event carried the reasons (and counted them); this one says how it ended.
        e.event.reason = Vec::new();
        e.event.duration = Some(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        e.source.bytes = Some(ended.to_upstream);
        e.destination = Some(Destination::upstream(&self.upstream, ended.to_client));
        e.network.bytes = Some(ended.to_upstream.saturating_add(ended.to_client));
        let how = match ended.end {
            TunnelEnd::ClientClosed => "closed by the client",
            TunnelEnd::UpstreamClosed => "closed by the upstream",
            TunnelEnd::IdleTimeout => "idle timeout",
            TunnelEnd::Error => "ended by an error",
            TunnelEnd::Shutdown => "cut at shutdown",
            TunnelEnd::Blocked => "closed: blocked on re-decision",
        };
        e.message = format!(
            "{} {} from {} to {}: {} after {:.1} s, {} bytes sent, {} received",
            e.network.transport,
            if e.network.transport == "udp" {
                "flow"
            } else {
                "tunnel"
            },
            e.source.ip,
            self.upstream,
            how,
            elapsed.as_secs_f64(),
            ended.to_upstream,
            ended.to_client,
        );
        if let Some(err) = &ended.error {
            e.message.push_str("; ");
            e.message.push_str(err);
        }
        if let Some(d) = &ended.blocked_by {
            e.event.kind = "alert";
            e.event.action = d.action;
            e.locgate.verdict = d.verdict;
            e.event.reason = d.reasons.iter().map(|r| r.code.as_str()).collect();
            for r in &d.reasons {
                e.message.push_str("; ");
                e.message.push_str(&r.detail);
            }
        }
        e.locgate.error = ended.error;
        e.locgate.suppressed_allows = None;
        e.locgate.tunnel = Some(TunnelOut {
            start_id: self.start_id,
            end: ended.end,
        });
        e
    }
}
