//! Planner snapshots through one `check(current, desired, expect)` helper, and property tests
//! against a model of the runtime: applying the plan reaches the desired state, and planning
//! again afterwards gives nothing to do.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use edge_agent::{Command, NextStart, ObservedModule, ObservedState, plan};
use edge_deployment::{
    ConfigHash, DesiredStatus, EnvVarName, ImagePullPolicy, ModuleKind, ModuleName, ModuleSpec,
    ProcessSettings, RestartPolicy,
};
use expect_test::{Expect, expect};
use proptest::prelude::*;

fn spec(name: &str, startup_order: u32, status: DesiredStatus, version: &str) -> ModuleSpec {
    ModuleSpec {
        name: ModuleName::new(name).unwrap(),
        version: Some(version.to_owned()),
        status,
        restart_policy: RestartPolicy::Always,
        startup_order,
        image_pull_policy: ImagePullPolicy::OnCreate,
        kind: ModuleKind::Process(ProcessSettings {
            path: format!("/usr/bin/{name}"),
            args: Vec::new(),
            working_dir: None,
            user: None,
        }),
        env: BTreeMap::new(),
    }
}

fn running(name: &str, order: u32) -> ModuleSpec {
    spec(name, order, DesiredStatus::Running, "1")
}

fn stopped(name: &str, order: u32) -> ModuleSpec {
    spec(name, order, DesiredStatus::Stopped, "1")
}

/// The runtime's view of a module created from `spec`.
fn observed(spec: &ModuleSpec, state: ObservedState, next_start: NextStart) -> ObservedModule {
    ObservedModule {
        name: spec.name.clone(),
        config_hash: Some(spec.config_hash()),
        state,
        next_start,
    }
}

fn up(spec: &ModuleSpec) -> ObservedModule {
    observed(spec, ObservedState::Running, NextStart::NotScheduled)
}

fn check(current: &[ObservedModule], desired: &[ModuleSpec], expect: Expect) {
    let planned = plan(current, desired);
    expect.assert_eq(&planned.to_string());
}

fn time(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
}

#[test]
fn start_up_is_the_diff_from_nothing() {
    check(
        &[],
        &[
            running("sensor", 2),
            running("edgeHub", 0),
            stopped("spare", 1),
            running("filter", 1),
            running("last", u32::MAX),
        ],
        expect![[r#"
            create edgeHub (order 0, config ef1081f5c53d)
            start edgeHub
            create filter (order 1, config 2e1a35c9b487)
            start filter
            create spare (order 1, config 6b936e17b172)
            create sensor (order 2, config d48cb7a95fb3)
            start sensor
            create last (order 4294967295, config 30129c90a7fd)
            start last
        "#]],
    );
}

#[test]
fn nothing_to_do_when_everything_matches() {
    let hub = running("edgeHub", 0);
    let spare = stopped("spare", 1);
    check(
        &[
            up(&hub),
            observed(&spare, ObservedState::NotRunning, NextStart::NotScheduled),
        ],
        &[hub, spare],
        expect![""],
    );
}

#[test]
fn only_changed_modules_are_recreated() {
    let hub = running("edgeHub", 0);
    let old_sensor = running("sensor", 2);
    let mut new_sensor = spec("sensor", 2, DesiredStatus::Running, "2");
    new_sensor
        .env
        .insert(EnvVarName::new("INTERVAL").unwrap(), "5".to_owned());
    let mut filter = running("filter", 1);
    filter.restart_policy = RestartPolicy::Never;
    filter.startup_order = 7;
    check(
        &[up(&hub), up(&old_sensor), up(&running("filter", 1))],
        &[hub, new_sensor, filter],
        expect![[r#"
            update sensor (order 2, config d48cb7a95fb3 -> ccfdc996e273)
            start sensor
        "#]],
    );
}

#[test]
fn removals_come_first_then_stops_then_creations_in_order() {
    let hub = running("edgeHub", 0);
    let early = running("early", 1);
    let late = running("late", 5);
    check(
        &[
            up(&hub),
            up(&running("gone", 3)),
            observed(
                &running("gone-stopped", 3),
                ObservedState::NotRunning,
                NextStart::NotScheduled,
            ),
            up(&early),
            up(&late),
        ],
        &[
            hub,
            stopped("early", 1),
            stopped("late", 5),
            running("new", 2),
        ],
        expect![[r#"
            stop gone
            remove gone
            remove gone-stopped
            stop late
            stop early
            create new (order 2, config 5c668949928c)
            start new
        "#]],
    );
}

#[test]
fn restart_states_decide_starts_of_unchanged_modules() {
    let waiting = running("waiting", 1);
    let due = running("due", 1);
    let held = running("held", 1);
    let unhealthy_due = running("sick", 1);
    let unhealthy_waiting = running("queasy", 1);
    let fresh = running("fresh", 1);
    check(
        &[
            observed(&waiting, ObservedState::NotRunning, NextStart::At(time(10))),
            observed(&due, ObservedState::NotRunning, NextStart::Now),
            observed(&held, ObservedState::NotRunning, NextStart::NotScheduled),
            observed(&unhealthy_due, ObservedState::Unhealthy, NextStart::Now),
            observed(
                &unhealthy_waiting,
                ObservedState::Unhealthy,
                NextStart::At(time(10)),
            ),
            observed(&fresh, ObservedState::NotRunning, NextStart::Now),
        ],
        &[waiting, due, held, unhealthy_due, unhealthy_waiting, fresh],
        expect![[r#"
            start due
            start fresh
            restart sick
        "#]],
    );
}

#[test]
fn dead_and_unknown_configurations_are_replaced() {
    let dead = running("dead", 1);
    let dead_stopped = stopped("corpse", 1);
    let unknown = running("foreign", 2);
    check(
        &[
            observed(&dead, ObservedState::Dead, NextStart::NotScheduled),
            observed(&dead_stopped, ObservedState::Dead, NextStart::NotScheduled),
            ObservedModule {
                config_hash: None,
                ..up(&unknown)
            },
        ],
        &[dead, dead_stopped, unknown],
        expect![[r#"
            remove corpse
            create corpse (order 1, config ccfeb891b2ad)
            remove dead
            create dead (order 1, config 9a72dd2c6c69)
            start dead
            update foreign (order 2, config unknown -> f50d69e62632)
            start foreign
        "#]],
    );
}

#[test]
fn a_changed_module_that_should_stop_is_recreated_without_starting() {
    let old = running("m", 1);
    let new = spec("m", 1, DesiredStatus::Stopped, "2");
    check(
        &[up(&old)],
        &[new],
        expect![[r#"
            update m (order 1, config 1ddf81c5b43e -> c879f557c4c6)
        "#]],
    );
}

// === Model-based properties ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ModelModule {
    config_hash: Option<ConfigHash>,
    state: ObservedState,
    next_start: NextStart,
}

/// Applies a command to the model runtime, asserting the preconditions a real runtime has.
fn apply(model: &mut BTreeMap<ModuleName, ModelModule>, command: &Command) -> Result<(), String> {
    let name = command.module_name().clone();
    match command {
        Command::Create(spec) => {
            if model.contains_key(&name) {
                return Err(format!("create of existing {name}"));
            }
            model.insert(
                name,
                ModelModule {
                    config_hash: Some(spec.config_hash()),
                    state: ObservedState::NotRunning,
                    next_start: NextStart::Now,
                },
            );
        }
        Command::Update { spec, .. } => {
            let module = model
                .get_mut(&name)
                .ok_or(format!("update of missing {name}"))?;
            *module = ModelModule {
                config_hash: Some(spec.config_hash()),
                state: ObservedState::NotRunning,
                next_start: NextStart::Now,
            };
        }
        Command::Start(_) => {
            let module = model
                .get_mut(&name)
                .ok_or(format!("start of missing {name}"))?;
            if module.state != ObservedState::NotRunning {
                return Err(format!("start of {name} in state {:?}", module.state));
            }
            module.state = ObservedState::Running;
            module.next_start = NextStart::NotScheduled;
        }
        Command::Restart(_) => {
            let module = model
                .get_mut(&name)
                .ok_or(format!("restart of missing {name}"))?;
            if !matches!(
                module.state,
                ObservedState::Running | ObservedState::Unhealthy
            ) {
                return Err(format!("restart of {name} in state {:?}", module.state));
            }
            module.state = ObservedState::Running;
            module.next_start = NextStart::NotScheduled;
        }
        Command::Stop(_) => {
            let module = model
                .get_mut(&name)
                .ok_or(format!("stop of missing {name}"))?;
            module.state = ObservedState::NotRunning;
            module.next_start = NextStart::NotScheduled;
        }
        Command::Remove(_) => {
            let module = model
                .get(&name)
                .ok_or(format!("remove of missing {name}"))?;
            if matches!(
                module.state,
                ObservedState::Running | ObservedState::Unhealthy
            ) {
                return Err(format!("remove of running {name}"));
            }
            model.remove(&name);
        }
    }
    Ok(())
}

fn to_observed(model: &BTreeMap<ModuleName, ModelModule>) -> Vec<ObservedModule> {
    model
        .iter()
        .map(|(name, module)| ObservedModule {
            name: name.clone(),
            config_hash: module.config_hash,
            state: module.state,
            next_start: module.next_start,
        })
        .collect()
}

const NAMES: [&str; 5] = ["a", "b", "c", "d", "edgeHub"];

fn arbitrary_desired() -> impl Strategy<Value = Vec<ModuleSpec>> {
    prop::collection::btree_map(
        prop::sample::select(NAMES.to_vec()),
        (0_u32..4, any::<bool>(), 0_u8..3),
        0..=NAMES.len(),
    )
    .prop_map(|modules| {
        modules
            .into_iter()
            .map(|(name, (order, running, version))| {
                let status = if running {
                    DesiredStatus::Running
                } else {
                    DesiredStatus::Stopped
                };
                spec(name, order, status, &version.to_string())
            })
            .collect()
    })
}

fn arbitrary_current() -> impl Strategy<Value = BTreeMap<ModuleName, ModelModule>> {
    let state = prop_oneof![
        Just(ObservedState::Running),
        Just(ObservedState::Unhealthy),
        Just(ObservedState::NotRunning),
        Just(ObservedState::Dead),
    ];
    let next_start = prop_oneof![
        Just(NextStart::Now),
        Just(NextStart::NotScheduled),
        (1_i64..100).prop_map(|seconds| NextStart::At(time(seconds))),
    ];
    prop::collection::btree_map(
        prop::sample::select(NAMES.to_vec()),
        (0_u8..4, state, next_start),
        0..=NAMES.len(),
    )
    .prop_map(|modules| {
        modules
            .into_iter()
            .map(|(name, (version, state, next_start))| {
                // Version 3 stands for a configuration the runtime cannot name.
                let config_hash = (version < 3).then(|| {
                    spec(name, 0, DesiredStatus::Running, &version.to_string()).config_hash()
                });
                (
                    ModuleName::new(name).unwrap(),
                    ModelModule {
                        config_hash,
                        state,
                        next_start,
                    },
                )
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn applying_the_plan_reaches_the_desired_state(
        current in arbitrary_current(),
        desired in arbitrary_desired(),
    ) {
        let planned = plan(&to_observed(&current), &desired);
        let mut model = current.clone();
        for command in &planned.commands {
            if let Err(problem) = apply(&mut model, command) {
                return Err(TestCaseError::fail(format!("{problem} in plan:\n{planned}")));
            }
        }

        let desired_by_name: BTreeMap<&ModuleName, &ModuleSpec> =
            desired.iter().map(|spec| (&spec.name, spec)).collect();
        for name in model.keys() {
            prop_assert!(desired_by_name.contains_key(name), "{name} should have been removed");
        }
        for spec in &desired {
            let module = model.get(&spec.name).expect("desired module exists");
            prop_assert_eq!(module.config_hash, Some(spec.config_hash()));
            prop_assert_ne!(module.state, ObservedState::Dead);
            match spec.status {
                DesiredStatus::Stopped => prop_assert_eq!(module.state, ObservedState::NotRunning),
                DesiredStatus::Running => {
                    let before = current.get(&spec.name);
                    let untouched_and_waiting = before.is_some_and(|before| {
                        before.config_hash == Some(spec.config_hash())
                            && before.state != ObservedState::Dead
                            && before.next_start != NextStart::Now
                    });
                    if untouched_and_waiting {
                        prop_assert_eq!(Some(module), before, "a waiting module is left alone");
                    } else {
                        prop_assert_eq!(module.state, ObservedState::Running);
                    }
                }
            }
        }

        // Planning again after applying the plan finds nothing to do.
        let again = plan(&to_observed(&model), &desired);
        prop_assert!(again.is_empty(), "second plan:\n{again}");
    }

    #[test]
    fn plans_respect_the_ordering_rules(
        current in arbitrary_current(),
        desired in arbitrary_desired(),
    ) {
        let planned = plan(&to_observed(&current), &desired);
        let desired_by_name: BTreeMap<&ModuleName, &ModuleSpec> =
            desired.iter().map(|spec| (&spec.name, spec)).collect();
        let first_creation = planned.commands.iter().position(|command| {
            matches!(command, Command::Create(_) | Command::Update { .. } | Command::Start(_) | Command::Restart(_))
        });
        for (index, command) in planned.commands.iter().enumerate() {
            let name = command.module_name();
            let is_desired = desired_by_name.contains_key(name);
            if !is_desired {
                prop_assert!(first_creation.is_none_or(|first| index < first),
                    "removal of {name} after a creation:\n{planned}");
            }
        }
        // Creations, updates, starts and restarts go in ascending startup order.
        let orders: Vec<u32> = planned.commands.iter()
            .filter(|command| matches!(command, Command::Create(_) | Command::Update { .. } | Command::Start(_) | Command::Restart(_)))
            .map(|command| desired_by_name[command.module_name()].startup_order)
            .collect();
        prop_assert!(orders.windows(2).all(|pair| pair[0] <= pair[1]), "orders {orders:?}:\n{planned}");
        // Only modules whose configuration differs are recreated.
        for command in &planned.commands {
            if let Command::Update { spec, previous_config_hash } = command {
                prop_assert_ne!(*previous_config_hash, Some(spec.config_hash()));
            }
        }
    }
}
