//! MQTT 3.1.1 packet model and codec (pure, no I/O).
