//! The IoT Hub dialect of MQTT served to devices and modules: transports, authentication, sessions, topic dispatch.
