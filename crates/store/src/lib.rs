//! Durable, checksummed, segment-based append-only log with group commit, byte bounds and TTL reclaim.
