//! IoT Hub MQTT topics: parse and format every topic the SDKs use, as typed values (pure, no I/O).
