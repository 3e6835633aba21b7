//! The edge device's scope: the identities (its modules and its child devices) the edge hub may
//! authenticate, fetched from the hub and kept in an encrypted local cache for offline operation.
//!
//! - [`ScopeIdentity`] is one identity of the scope with its credentials, and checks what a
//!   connecting client presents: a SAS token ([`ScopeIdentity::verify_sas`]) or a self-signed
//!   X.509 certificate's thumbprints ([`ScopeIdentity::verify_thumbprint`]). A refusal is a
//!   [`ScopeRefusal`], whose messages never carry secrets.
//! - [`parse_scope_page`] turns the hub's `devicesAndModulesInDeviceScope` answer into identities
//!   (pure, no I/O).
//! - [`ScopeCache`] holds the scope in memory and in one AES-256-GCM encrypted file keyed from the
//!   edge device's key, so children authenticate while the hub is unreachable.
//! - [`ScopeClient`] fetches every page of the scope from the hub over HTTPS, signed with the edge
//!   device's own key, through [`https::HubEndpoint`] (one bounded, timed HTTPS call to the hub,
//!   for any device-signed call of the edge runtime).
//!
//! **Invariants:** keys never appear in `Debug` output or error messages; signatures and
//! thumbprints are compared in constant time; the cache file is written atomically with mode 0600.

#![forbid(unsafe_code)]

mod cache;
mod client;
mod error;
pub mod https;
mod identity;
mod sealed;
mod wire;

pub use cache::{CACHE_KEY_CONTEXT, ScopeCache, ScopeDiff};
pub use client::{SCOPE_API_VERSION, SCOPE_PAGE_SIZE, ScopeClient};
pub use error::ScopeError;
pub use identity::{ScopeAuth, ScopeIdentity, ScopeRefusal};
pub use sealed::{SealingKey, write_private_file};
pub use wire::{ScopePage, parse_scope_page};
