//! The edge hub: a local IoT Hub for modules and leaf devices, with routes, durable
//! store-and-forward, a twin cache and offline operation.
