//! A [`ModuleRuntime`] that keeps modules in memory, for tests of the reconcile loop.
//!
//! Time is whatever [`InMemoryRuntime::set_now`] last set. Tests make modules crash, turn
//! unhealthy or disappear, and make the next operation on a module fail, then read the journal
//! of operations the agent performed.

use std::collections::{BTreeMap, VecDeque};
use std::io::Cursor;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use edge_deployment::{ModuleKind, ModuleName, ModuleSpec};

use crate::Timestamp;
use crate::runtime::{
    Health, LogOptions, ModuleDetails, ModuleRuntime, ModuleState, RuntimeError, RuntimeOperation,
};

/// An in-memory module runtime.
#[derive(Debug)]
pub struct InMemoryRuntime {
    state: Mutex<InMemoryState>,
}

#[derive(Debug)]
struct InMemoryState {
    now: Timestamp,
    modules: BTreeMap<ModuleName, InMemoryModule>,
    injected_failures: VecDeque<(RuntimeOperation, ModuleName, String)>,
    journal: Vec<String>,
}

#[derive(Debug, Clone)]
struct InMemoryModule {
    spec: ModuleSpec,
    state: ModuleState,
    output: Vec<u8>,
}

impl InMemoryRuntime {
    /// An empty runtime whose clock reads `now`.
    pub fn new(now: Timestamp) -> InMemoryRuntime {
        InMemoryRuntime {
            state: Mutex::new(InMemoryState {
                now,
                modules: BTreeMap::new(),
                injected_failures: VecDeque::new(),
                journal: Vec::new(),
            }),
        }
    }

    /// Sets the time the runtime stamps on starts and exits.
    pub fn set_now(&self, now: Timestamp) {
        self.lock().now = now;
    }

    /// The module exits on its own with `exit_code` (a crash, or a clean exit for 0).
    pub fn exit_module(&self, name: &ModuleName, exit_code: i64) {
        let mut state = self.lock();
        let now = state.now;
        if let Some(module) = state.modules.get_mut(name)
            && matches!(module.state, ModuleState::Running { .. })
        {
            module.state = ModuleState::Exited {
                exit_code,
                finished_at: now,
            };
        }
    }

    /// Sets the health check result of a running module.
    pub fn set_health(&self, name: &ModuleName, health: Health) {
        let mut state = self.lock();
        if let Some(module) = state.modules.get_mut(name)
            && let ModuleState::Running { started_at, .. } = module.state
        {
            module.state = ModuleState::Running { started_at, health };
        }
    }

    /// Marks a module dead, as Docker does when it cannot clean a container up.
    pub fn kill_beyond_repair(&self, name: &ModuleName) {
        if let Some(module) = self.lock().modules.get_mut(name) {
            module.state = ModuleState::Dead;
        }
    }

    /// Simulates a host reboot: every running module is stopped (SIGTERM, exit code 143).
    pub fn reboot(&self) {
        let mut state = self.lock();
        let now = state.now;
        for module in state.modules.values_mut() {
            if matches!(module.state, ModuleState::Running { .. }) {
                module.state = ModuleState::Exited {
                    exit_code: 143,
                    finished_at: now,
                };
            }
        }
    }

    /// Makes the next `operation` on `name` fail with `message`.
    pub fn fail_next(&self, operation: RuntimeOperation, name: &ModuleName, message: &str) {
        self.lock()
            .injected_failures
            .push_back((operation, name.clone(), message.to_owned()));
    }

    /// Appends output that `logs` will return.
    pub fn write_output(&self, name: &ModuleName, output: &[u8]) {
        if let Some(module) = self.lock().modules.get_mut(name) {
            module.output.extend_from_slice(output);
        }
    }

    /// The mutating operations performed so far (`create m`, `start m`, …), and clears them.
    pub fn take_journal(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().journal)
    }

    /// The spec a module was last created or updated with.
    pub fn spec(&self, name: &ModuleName) -> Option<ModuleSpec> {
        self.lock()
            .modules
            .get(name)
            .map(|module| module.spec.clone())
    }

    fn lock(&self) -> MutexGuard<'_, InMemoryState> {
        // A panic while holding the lock only happens in a failing test; keep going with the
        // state as it was.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one operation: consumes an injected failure if one matches, journals success.
    fn operate<T>(
        &self,
        operation: RuntimeOperation,
        name: &ModuleName,
        action: impl FnOnce(&mut InMemoryState) -> Result<T, RuntimeError>,
    ) -> Result<T, RuntimeError> {
        let mut state = self.lock();
        if let Some(position) =
            state
                .injected_failures
                .iter()
                .position(|(failing_operation, failing_name, _)| {
                    *failing_operation == operation && failing_name == name
                })
            && let Some((_, _, message)) = state.injected_failures.remove(position)
        {
            return Err(RuntimeError::Failed {
                operation,
                module: name.to_string(),
                message,
            });
        }
        let result = action(&mut state)?;
        if !matches!(
            operation,
            RuntimeOperation::List | RuntimeOperation::Inspect | RuntimeOperation::Logs
        ) {
            state.journal.push(format!("{operation} {name}"));
        }
        Ok(result)
    }
}

fn details(name: &ModuleName, module: &InMemoryModule) -> ModuleDetails {
    let image = match &module.spec.kind {
        ModuleKind::Docker(docker) => docker.image.to_string(),
        ModuleKind::Process(process) => process.path.clone(),
    };
    ModuleDetails {
        name: name.clone(),
        module_type: module.spec.type_name().to_owned(),
        config_hash: Some(module.spec.config_hash()),
        state: module.state,
        image: Some(image),
        image_hash: None,
        description: None,
    }
}

fn tail_lines(output: &[u8], tail: Option<u64>) -> Vec<u8> {
    let Some(tail) = tail else {
        return output.to_vec();
    };
    let lines: Vec<&[u8]> = output.split_inclusive(|byte| *byte == b'\n').collect();
    let keep = usize::try_from(tail).unwrap_or(usize::MAX).min(lines.len());
    lines[lines.len() - keep..].concat()
}

impl ModuleRuntime for InMemoryRuntime {
    type Logs = Cursor<Vec<u8>>;

    async fn create(&self, spec: &ModuleSpec) -> Result<(), RuntimeError> {
        self.operate(RuntimeOperation::Create, &spec.name, |state| {
            if state.modules.contains_key(&spec.name) {
                return Err(RuntimeError::AlreadyExists(spec.name.clone()));
            }
            state.modules.insert(
                spec.name.clone(),
                InMemoryModule {
                    spec: spec.clone(),
                    state: ModuleState::Created,
                    output: Vec::new(),
                },
            );
            Ok(())
        })
    }

    async fn update(&self, spec: &ModuleSpec) -> Result<(), RuntimeError> {
        self.operate(RuntimeOperation::Update, &spec.name, |state| {
            let module = state
                .modules
                .get_mut(&spec.name)
                .ok_or_else(|| RuntimeError::NotFound(spec.name.clone()))?;
            module.spec = spec.clone();
            module.state = ModuleState::Created;
            Ok(())
        })
    }

    async fn start(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        self.operate(RuntimeOperation::Start, name, |state| {
            let now = state.now;
            let module = state
                .modules
                .get_mut(name)
                .ok_or_else(|| RuntimeError::NotFound(name.clone()))?;
            match module.state {
                ModuleState::Running { .. } => Ok(()),
                ModuleState::Dead | ModuleState::Unknown => Err(RuntimeError::Failed {
                    operation: RuntimeOperation::Start,
                    module: name.to_string(),
                    message: "the module is dead".to_owned(),
                }),
                ModuleState::Created | ModuleState::Exited { .. } => {
                    module.state = ModuleState::Running {
                        started_at: now,
                        health: Health::None,
                    };
                    Ok(())
                }
            }
        })
    }

    async fn stop(&self, name: &ModuleName, _grace_period: Duration) -> Result<(), RuntimeError> {
        self.operate(RuntimeOperation::Stop, name, |state| {
            let now = state.now;
            let module = state
                .modules
                .get_mut(name)
                .ok_or_else(|| RuntimeError::NotFound(name.clone()))?;
            if matches!(module.state, ModuleState::Running { .. }) {
                module.state = ModuleState::Exited {
                    exit_code: 0,
                    finished_at: now,
                };
            }
            Ok(())
        })
    }

    async fn restart(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        self.operate(RuntimeOperation::Restart, name, |state| {
            let now = state.now;
            let module = state
                .modules
                .get_mut(name)
                .ok_or_else(|| RuntimeError::NotFound(name.clone()))?;
            module.state = ModuleState::Running {
                started_at: now,
                health: Health::None,
            };
            Ok(())
        })
    }

    async fn remove(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        self.operate(RuntimeOperation::Remove, name, |state| {
            let module = state
                .modules
                .get(name)
                .ok_or_else(|| RuntimeError::NotFound(name.clone()))?;
            if matches!(module.state, ModuleState::Running { .. }) {
                return Err(RuntimeError::Failed {
                    operation: RuntimeOperation::Remove,
                    module: name.to_string(),
                    message: "the module is running; stop it first".to_owned(),
                });
            }
            state.modules.remove(name);
            Ok(())
        })
    }

    async fn list(&self) -> Result<Vec<ModuleDetails>, RuntimeError> {
        let state = self.lock();
        Ok(state
            .modules
            .iter()
            .map(|(name, module)| details(name, module))
            .collect())
    }

    async fn inspect(&self, name: &ModuleName) -> Result<ModuleDetails, RuntimeError> {
        self.operate(RuntimeOperation::Inspect, name, |state| {
            state
                .modules
                .get(name)
                .map(|module| details(name, module))
                .ok_or_else(|| RuntimeError::NotFound(name.clone()))
        })
    }

    async fn logs(
        &self,
        name: &ModuleName,
        options: &LogOptions,
    ) -> Result<Cursor<Vec<u8>>, RuntimeError> {
        self.operate(RuntimeOperation::Logs, name, |state| {
            state
                .modules
                .get(name)
                .map(|module| Cursor::new(tail_lines(&module.output, options.tail)))
                .ok_or_else(|| RuntimeError::NotFound(name.clone()))
        })
    }
}
