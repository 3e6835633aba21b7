//! The IoT Hub query language: twin queries, routing conditions and edge route statements (pure, no I/O).
