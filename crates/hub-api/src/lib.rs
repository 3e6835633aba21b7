//! The cloud hub's service REST API (the one azure-iot-hub calls) and its HTTPS/WebSocket listener.
