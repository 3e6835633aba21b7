//! The cloud hub's state: identity registry, twins, C2D queues, method dispatch, behind storage traits.
