//! TLS material: a private CA, server and client certificates, and rustls configurations.
