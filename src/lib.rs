//! locgate: a location-verification gateway.
//!
//! A reverse proxy that IT puts in front of remote-access endpoints. For every request it finds
//! the real client address, looks it up, compares it with policy, decides allow / flag / block
//! with reason codes, acts, and records an audit event. The module list mirrors that path:
//! [`client_addr`] -> [`intel`] -> [`policy`] -> [`proxy`] -> [`audit`]. See ARCHITECTURE.md.

pub mod admin;
pub mod audit;
pub mod cli;
pub mod client_addr;
pub mod config;
pub mod country;
pub mod employees;
pub mod explain;
pub mod forwarding;
pub mod geo;
pub mod history;
pub mod http_client;
pub mod identity;
pub mod intel;
pub mod listen;
pub mod listeners;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod replay;
pub mod review_cli;
pub mod server;
pub mod state;
pub mod update;
