//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use store::{FaultInjector, FileOperation};

/// Fails the next `count` operations of a kind, on command, with "no space left on device".
#[derive(Debug, Default)]
pub struct ScriptedFaults {
    armed: Mutex<HashMap<FileOperation, u32>>,
}

impl ScriptedFaults {
    pub fn new() -> Arc<ScriptedFaults> {
        Arc::new(ScriptedFaults::default())
    }

    pub fn fail_next(&self, operation: FileOperation, count: u32) {
        *self.armed.lock().unwrap().entry(operation).or_default() += count;
    }

    pub fn disarm(&self) {
        self.armed.lock().unwrap().clear();
    }
}

impl FaultInjector for ScriptedFaults {
    fn before(&self, operation: FileOperation) -> io::Result<()> {
        let mut armed = self.armed.lock().unwrap();
        match armed.get_mut(&operation) {
            Some(remaining) if *remaining > 0 => {
                *remaining -= 1;
                Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!("injected failure of {operation}"),
                ))
            }
            _ => Ok(()),
        }
    }
}
