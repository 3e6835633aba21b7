//! The edge hub's durable store-and-forward: every routed message is written once to a byte-bounded
//! on-disk log and queued per endpoint and priority until that endpoint acknowledges it.
