//! Black-box tests of the client: against the real MQTT front end with an in-test backend
//! (`frontend`), against the real cloud hub behind it (`cloud_hub`), and against a scripted raw
//! MQTT server for what the front end never does (`scripted_server`).

mod cloud_hub;
mod frontend;
mod scripted_server;
mod support;
