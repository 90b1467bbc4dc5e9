//! The connection layer in front of the HTTP engine: TLS termination, PROXY protocol, limits,
//! TCP pass-through and UDP forwarding (issue 4).
//!
//! `proxy/mod.rs` accepts; everything that happens to a connection before its first HTTP request
//! (or instead of HTTP) lives here.

pub mod limits;
pub mod proxy_proto;
pub mod sni;
pub mod tcp;
pub mod tls;
pub mod tunnel;
pub mod udp;

pub use tls::reload_tls;
