//! Tests of the edge runtime's pure parts and files: configuration, identity sync plans, the
//! desired-properties follower and the stored deployment. The whole runtime (hub, agent, modules)
//! is exercised end to end by `crates/outpost/tests/edge.rs`.

mod config;
mod desired;
mod identities;
