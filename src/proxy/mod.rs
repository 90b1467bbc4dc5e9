//! HTTP, and only HTTP: the exchange spine ([`exchange`]) and the two engines that drive it,
//! HTTP/1.1 on locgate's own code ([`h1`]) and HTTP/2 on hyper ([`h2`]).
//!
//! The engines keep only protocol code (reading heads and bodies, framing, writing bytes, the
//! upstream connection); deciding, routing, header hygiene ([`headers`]), the failure table
//! ([`failure`]) and recording are the spine's. The connection under them was opened by the edge
//! (`crate::edge`), which they import; nothing below imports them.

pub mod exchange;
pub mod failure;
pub mod h1;
pub mod h2;
pub mod headers;
mod health;
mod refuse;
mod upstream;
mod whoami;
