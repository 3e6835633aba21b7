//! The edge device's scope: the identities (its modules and its child devices) the edge hub may
//! authenticate, fetched from the hub and kept in an encrypted local cache for offline operation.
