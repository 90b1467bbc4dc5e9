//! The connection layer, below HTTP: everything that happens to a connection before its first
//! HTTP request, or instead of HTTP.
//!
//! - [`context`]: what a listener's connections share ([`context::ListenerCtx`]) and what one
//!   connection learned ([`context::ConnMeta`]);
//! - [`open`]: PROXY header, per-client cap, TLS handshake ([`tls`], [`proxy_proto`],
//!   [`limits`]);
//! - [`tcp`], [`udp`]: pass-through relays, decided at connect time ([`events`]) with their
//!   close events ([`tunnel`]); [`sni`] peeks at a ClientHello; [`udp_batch`] moves many
//!   datagrams per system call for [`udp`];
//! - [`tcp_info`]: what the kernel measured of a client's socket (RTT, MSS).
//!
//! The edge imports downwards only (decide, policy, intel, identity, audit); the HTTP engines
//! in `proxy/` sit above it and `serve/` above both, which hands each opened connection to the
//! engine its listener runs.

pub mod coalesce;
pub mod context;
pub mod events;
pub mod limits;
pub mod open;
pub mod proxy_proto;
pub mod sni;
pub mod tcp;
pub mod tcp_info;
pub mod tls;
pub mod tunnel;
pub mod udp;
pub mod udp_batch;

pub use tls::reload_tls;
