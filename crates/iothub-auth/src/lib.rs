//! SAS tokens and connection strings, exactly as the official Azure IoT SDKs build them (pure, no I/O).
