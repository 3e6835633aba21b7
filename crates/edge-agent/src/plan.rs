//! The planner: what to do to turn the modules that exist into the modules that are desired.

use std::collections::BTreeMap;
use std::fmt;

use edge_deployment::{ConfigHash, DesiredStatus, ModuleName, ModuleSpec};

use crate::restart::NextStart;

/// How a module the runtime knows is doing, as the planner needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedState {
    /// Running, healthy or without a health check.
    Running,
    /// Running but reported unhealthy.
    Unhealthy,
    /// Created, stopped or exited.
    NotRunning,
    /// Dead or in an unknown state: it must be removed and created again.
    Dead,
}

impl ObservedState {
    fn is_running(self) -> bool {
        matches!(self, ObservedState::Running | ObservedState::Unhealthy)
    }
}

/// One module that exists in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedModule {
    pub name: ModuleName,
    /// The hash of the configuration it was created with; `None` when the runtime cannot tell,
    /// which is treated as a different configuration.
    pub config_hash: Option<ConfigHash>,
    pub state: ObservedState,
    /// What its restart tracker advises ([`crate::RestartTracker::next_start`]).
    pub next_start: NextStart,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Create a module (pulling its image first under `on-create`); it is not started.
    Create(Box<ModuleSpec>),
    /// Replace an existing module with a new configuration (stop, remove, create); it is not
    /// started.
    Update {
        spec: Box<ModuleSpec>,
        previous_config_hash: Option<ConfigHash>,
    },
    Start(ModuleName),
    Stop(ModuleName),
    /// Stop and start a running (unhealthy) module.
    Restart(ModuleName),
    /// Remove a module that is not running.
    Remove(ModuleName),
}

impl Command {
    /// The module this command acts on.
    pub fn module_name(&self) -> &ModuleName {
        match self {
            Command::Create(spec) | Command::Update { spec, .. } => &spec.name,
            Command::Start(name)
            | Command::Stop(name)
            | Command::Restart(name)
            | Command::Remove(name) => name,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Create(spec) => write!(
                formatter,
                "create {} (order {}, config {})",
                spec.name,
                spec.startup_order,
                spec.config_hash().short()
            ),
            Command::Update {
                spec,
                previous_config_hash,
            } => write!(
                formatter,
                "update {} (order {}, config {} -> {})",
                spec.name,
                spec.startup_order,
                previous_config_hash.map_or_else(|| "unknown".to_owned(), |hash| hash.short()),
                spec.config_hash().short()
            ),
            Command::Start(name) => write!(formatter, "start {name}"),
            Command::Stop(name) => write!(formatter, "stop {name}"),
            Command::Restart(name) => write!(formatter, "restart {name}"),
            Command::Remove(name) => write!(formatter, "remove {name}"),
        }
    }
}

/// An ordered list of commands; run them one after the other.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub commands: Vec<Command>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for command in &self.commands {
            writeln!(formatter, "{command}")?;
        }
        Ok(())
    }
}

/// Plans the commands that turn `current` into `desired`.
///
/// The plan has three parts, in this order:
///
/// 1. Modules that are no longer desired, by name: `stop` (when running), then `remove`.
/// 2. Modules whose deployment now says `status: stopped` and that run with an unchanged
///    configuration, highest `startupOrder` first: `stop`.
/// 3. Every desired module, lowest `startupOrder` first (ties by name):
///    - missing: `create`, then `start` when desired running;
///    - a different configuration hash: `update`, then `start` when desired running;
///    - dead: `remove`, `create`, then `start` when desired running;
///    - unchanged and desired running: `start` when it is not running and its restart tracker
///      says [`NextStart::Now`], `restart` when it is unhealthy and due; nothing otherwise
///      (running, waiting for a back-off, or held by its policy).
///
/// Only modules whose configuration hash changed are recreated; a change of status, policy or
/// order alone never recreates. Starting from nothing is the same computation with an empty
/// `current`. When `desired` names a module twice, the last spec wins.
pub fn plan<'a>(
    current: &[ObservedModule],
    desired: impl IntoIterator<Item = &'a ModuleSpec>,
) -> Plan {
    let desired: BTreeMap<&ModuleName, &ModuleSpec> =
        desired.into_iter().map(|spec| (&spec.name, spec)).collect();
    let current: BTreeMap<&ModuleName, &ObservedModule> = current
        .iter()
        .map(|module| (&module.name, module))
        .collect();
    let mut commands = Vec::new();

    for (name, module) in &current {
        if desired.contains_key(name) {
            continue;
        }
        if module.state.is_running() {
            commands.push(Command::Stop((*name).clone()));
        }
        commands.push(Command::Remove((*name).clone()));
    }

    let mut by_startup_order: Vec<&ModuleSpec> = desired.values().copied().collect();
    by_startup_order.sort_by(|left, right| {
        (left.startup_order, &left.name).cmp(&(right.startup_order, &right.name))
    });

    for spec in by_startup_order.iter().rev() {
        let Some(module) = current.get(&spec.name) else {
            continue;
        };
        let unchanged = module.config_hash == Some(spec.config_hash());
        if unchanged && spec.status == DesiredStatus::Stopped && module.state.is_running() {
            commands.push(Command::Stop(spec.name.clone()));
        }
    }

    for spec in by_startup_order {
        let desired_running = spec.status == DesiredStatus::Running;
        let start_if_desired = |commands: &mut Vec<Command>| {
            if desired_running {
                commands.push(Command::Start(spec.name.clone()));
            }
        };
        match current.get(&spec.name) {
            None => {
                commands.push(Command::Create(Box::new(spec.clone())));
                start_if_desired(&mut commands);
            }
            Some(module) if module.state == ObservedState::Dead => {
                commands.push(Command::Remove(spec.name.clone()));
                commands.push(Command::Create(Box::new(spec.clone())));
                start_if_desired(&mut commands);
            }
            Some(module) if module.config_hash != Some(spec.config_hash()) => {
                commands.push(Command::Update {
                    spec: Box::new(spec.clone()),
                    previous_config_hash: module.config_hash,
                });
                start_if_desired(&mut commands);
            }
            Some(module) if desired_running && module.next_start == NextStart::Now => {
                match module.state {
                    ObservedState::NotRunning => {
                        commands.push(Command::Start(spec.name.clone()));
                    }
                    ObservedState::Unhealthy => {
                        commands.push(Command::Restart(spec.name.clone()));
                    }
                    ObservedState::Running | ObservedState::Dead => {}
                }
            }
            Some(_) => {}
        }
    }

    Plan { commands }
}
