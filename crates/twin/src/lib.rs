//! Twin documents: tags, desired and reported sections, versions, metadata and merge-patch semantics (pure, no I/O).
