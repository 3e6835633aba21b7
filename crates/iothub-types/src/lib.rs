//! IoT Hub domain vocabulary: validated identifiers and the message model (pure, no I/O).
