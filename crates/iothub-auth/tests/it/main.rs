//! Integration tests for `iothub-auth`, in one binary to keep link time down on small machines.

mod connection_strings;
mod keys;
mod properties;
mod sas_tokens;
mod sdk_vectors;
