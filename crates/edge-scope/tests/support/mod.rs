//! Shared helpers of the edge-scope tests.

#![allow(dead_code)]

use iothub_auth::SymmetricKey;
use iothub_types::{DeviceId, Identity, ModuleId};

/// A 32-byte key of `byte`s, so tests can tell keys apart by their first byte.
pub fn key(byte: u8) -> SymmetricKey {
    SymmetricKey::from_bytes(vec![byte; 32]).expect("key")
}

/// `device` or `device/module`.
pub fn identity(text: &str) -> Identity {
    match text.split_once('/') {
        None => Identity::device(DeviceId::new(text).expect("device id")),
        Some((device, module)) => Identity::module(
            DeviceId::new(device).expect("device id"),
            ModuleId::new(module).expect("module id"),
        ),
    }
}
