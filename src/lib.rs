//! locgate: a location-verification gateway.
//!
//! A reverse proxy that IT puts in front of remote-access endpoints. For every request it finds
//! the real client address, looks it up, compares it with policy, decides allow / flag / block
//! with reason codes, acts, and records an audit event. The module list mirrors that path:
//! [`client_addr`] -> [`intel`] -> [`policy`] -> [`proxy`] -> [`audit`]. See ARCHITECTURE.md.
//!
//! [`values`] is the ground floor under [`config`], [`identity`] and [`employees`]: the checked
//! value types (`Dur`, `Net`) and the located [`values::ConfigError`] they all use. It imports
//! nothing else from the crate, so none of those modules has to import another in a circle.

pub mod admin;
pub mod audit;
pub mod cli;
pub mod client_addr;
pub mod command;
pub mod config;
pub mod country;
pub mod decide;
pub mod edge;
pub mod employees;
pub mod explain;
#[doc(hidden)]
pub mod fuzzing;
pub mod geo;
pub mod history;
pub mod http_client;
pub mod identity;
pub mod intel;
pub mod policy;
pub mod proxy;
pub mod replay;
pub mod replay_cli;
pub mod review_cli;
pub mod scim;
pub mod serve;
pub mod sqlite;
pub mod state;
pub mod update;
pub mod values;
pub mod vpn;
