//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex};

use store::{FaultInjector, FileOperation};

/// Fails the next `count` operations of a kind, on command, with "no space left on device";
/// can also hold the writer thread inside an operation until the test releases it.
#[derive(Debug, Default)]
pub struct ScriptedFaults {
    state: Mutex<FaultState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct FaultState {
    armed: HashMap<FileOperation, u32>,
    /// Armed operations of a kind let this many through before failing.
    skipped: HashMap<FileOperation, u32>,
    hold: Option<FileOperation>,
    holding: bool,
}

impl ScriptedFaults {
    pub fn new() -> Arc<ScriptedFaults> {
        Arc::new(ScriptedFaults::default())
    }

    pub fn fail_next(&self, operation: FileOperation, count: u32) {
        *self
            .state
            .lock()
            .unwrap()
            .armed
            .entry(operation)
            .or_default() += count;
    }

    /// Lets the next `skip` operations of a kind through, then fails `count` of them.
    pub fn fail_after(&self, operation: FileOperation, skip: u32, count: u32) {
        let mut state = self.state.lock().unwrap();
        *state.skipped.entry(operation).or_default() += skip;
        *state.armed.entry(operation).or_default() += count;
    }

    pub fn disarm(&self) {
        let mut state = self.state.lock().unwrap();
        state.armed.clear();
        state.skipped.clear();
    }

    /// The next `operation` blocks until [`ScriptedFaults::release`].
    pub fn hold_next(&self, operation: FileOperation) {
        self.state.lock().unwrap().hold = Some(operation);
    }

    /// Blocks until an operation is being held.
    pub fn wait_until_held(&self) {
        let mut state = self.state.lock().unwrap();
        while !state.holding {
            state = self.changed.wait(state).unwrap();
        }
    }

    pub fn release(&self) {
        let mut state = self.state.lock().unwrap();
        state.hold = None;
        self.changed.notify_all();
    }
}

impl FaultInjector for ScriptedFaults {
    fn before(&self, operation: FileOperation) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        if state.hold == Some(operation) {
            state.holding = true;
            self.changed.notify_all();
            while state.hold.is_some() {
                state = self.changed.wait(state).unwrap();
            }
            state.holding = false;
        }
        if let Some(skip) = state.skipped.get_mut(&operation)
            && *skip > 0
        {
            *skip -= 1;
            return Ok(());
        }
        match state.armed.get_mut(&operation) {
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
