//! The employee directory as an identity provider pushes it: a SCIM 2.0 server (RFC 7643 and
//! RFC 7644) for Okta and Microsoft Entra provisioning.
//!
//! HR declarations often live in the IdP already (a user's `addresses` and `timezone`), so
//! asking for a second export file invites drift. Provisioning pushes each change as it happens;
//! locgate keeps the users durably ([`store`]), turns each one into an employee record
//! ([`mapping`], placed offline by [`geocode`]) and merges them after the directory file, which
//! wins every conflict ([`crate::employees::Directory::with_added`]).
//!
//! Everything here is load-time or pure apart from [`store`] (SQLite); the HTTP routes live on
//! the admin listener (`admin/scim.rs`), which calls [`ScimUsers`] on the blocking pool and asks
//! `state::Shared::scim_changed` to swap the merged directory in after each committed write.
//! This module imports only `employees/`, `country`, `intel::LatLon` and `values`: it sits in
//! the load-time layer beside `employees/`.
//!
//! SCIM-sourced records are directory entries like the file's: they say where a person declared
//! they live and never make an identity source more trusted.

pub mod error;
pub mod filter;
pub mod geocode;
pub mod mapping;
pub mod patch;
pub mod resource;
pub mod store;
pub mod users;

pub use error::ScimError;
pub use users::{ScimUsers, Snapshot};
