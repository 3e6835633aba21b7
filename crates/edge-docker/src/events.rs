//! Docker's event stream, read for the exits and health changes of our containers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptions;
use edge_agent::Health;
use edge_deployment::ModuleName;
use edge_process::{ExitCause, ModuleExit};
use futures_util::StreamExt;
use tokio::sync::broadcast;

use crate::Timestamp;
use crate::container::{MODULE_LABEL, OWNER_LABEL};

/// The first wait before the event stream is opened again after it broke.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// The longest wait between attempts to open the event stream.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// A change of a module's health-check result (Docker's `health_status` events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChange {
    pub name: ModuleName,
    /// [`Health::Healthy`] or [`Health::Unhealthy`].
    pub health: Health,
    pub at: Timestamp,
}

/// One event about one of our containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContainerEvent {
    Died {
        container_id: String,
        name: ModuleName,
        exit_code: i64,
        at: Timestamp,
    },
    Health(HealthChange),
}

/// Reads a Docker event; `None` for events of other owners, other kinds or without the
/// attributes Docker always sends.
pub(crate) fn container_event(event: &EventMessage, owner: &str) -> Option<ContainerEvent> {
    let actor = event.actor.as_ref()?;
    let attributes = actor.attributes.as_ref()?;
    if attributes.get(OWNER_LABEL).map(String::as_str) != Some(owner) {
        return None;
    }
    let name = ModuleName::new(attributes.get(MODULE_LABEL)?).ok()?;
    let at = event_time(event)?;
    let action = event.action.as_deref()?;
    if action == "die" {
        let exit_code = attributes
            .get("exitCode")
            .and_then(|code| code.parse::<i64>().ok())
            .unwrap_or(-1);
        return Some(ContainerEvent::Died {
            container_id: actor.id.clone()?,
            name,
            exit_code,
            at,
        });
    }
    let status = action.strip_prefix("health_status:")?.trim();
    let health = match status {
        "healthy" => Health::Healthy,
        "unhealthy" => Health::Unhealthy,
        _ => return None,
    };
    Some(ContainerEvent::Health(HealthChange { name, health, at }))
}

fn event_time(event: &EventMessage) -> Option<Timestamp> {
    match (event.time_nano, event.time) {
        (Some(nanos), _) => Some(chrono::DateTime::from_timestamp_nanos(nanos)),
        (None, Some(seconds)) => chrono::DateTime::from_timestamp(seconds, 0),
        (None, None) => None,
    }
}

/// Docker's `since` parameter with nanoseconds: `<seconds>.<nanoseconds>`.
fn since_parameter(time: Timestamp) -> String {
    format!("{}.{:09}", time.timestamp(), time.timestamp_subsec_nanos())
}

/// How long a stop's cause waits for its die event before it is dropped (the event stream
/// may have been down when the container died).
const PENDING_STOP_LIFETIME: Duration = Duration::from_secs(600);

/// Why each container we stopped is about to die, keyed by container id; the die event takes
/// the entry, even when the container has been removed in the meantime (as `update` does). A
/// die without an entry is the module's own exit.
#[derive(Debug, Default)]
pub(crate) struct PendingStops {
    causes: Mutex<HashMap<String, (ExitCause, tokio::time::Instant)>>,
}

impl PendingStops {
    pub fn expect(&self, container_id: &str, cause: ExitCause) {
        let now = tokio::time::Instant::now();
        let mut causes = lock(&self.causes);
        causes.retain(|_, (_, since)| now.duration_since(*since) < PENDING_STOP_LIFETIME);
        causes.insert(container_id.to_owned(), (cause, now));
    }

    /// Drops the cause of a stop that failed, so that no die event is expected for it.
    pub fn forget(&self, container_id: &str) {
        lock(&self.causes).remove(container_id);
    }

    fn take(&self, container_id: &str) -> ExitCause {
        lock(&self.causes)
            .remove(container_id)
            .map_or(ExitCause::Exited, |(cause, _)| cause)
    }
}

/// Where the watcher delivers what it reads.
pub(crate) struct EventSinks {
    pub pending_stops: Arc<PendingStops>,
    pub exits: broadcast::Sender<ModuleExit>,
    pub health: broadcast::Sender<HealthChange>,
}

/// Follows Docker's events for our containers from `since` on, forever: it reopens the stream
/// after the daemon restarts, asking for the events it missed (Docker keeps the last ones).
pub(crate) async fn watch_events(
    docker: Docker,
    owner: String,
    since: Timestamp,
    sinks: EventSinks,
) {
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        (
            "event".to_owned(),
            vec!["die".to_owned(), "health_status".to_owned()],
        ),
        ("label".to_owned(), vec![format!("{OWNER_LABEL}={owner}")]),
    ]);
    let mut resume_from = since;
    let mut seen = SeenEvents::default();
    let mut delay = FIRST_RECONNECT_DELAY;
    loop {
        let options = EventsOptions {
            since: Some(since_parameter(resume_from)),
            until: None,
            filters: Some(filters.clone()),
        };
        let mut events = docker.events(Some(options));
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(message = "The Docker event stream broke.", %error);
                    break;
                }
            };
            delay = FIRST_RECONNECT_DELAY;
            if let Some(time) = event_time(&event) {
                resume_from = resume_from.max(time);
            }
            if !seen.first_time(&event) {
                continue;
            }
            match container_event(&event, &owner) {
                Some(ContainerEvent::Died {
                    container_id,
                    name,
                    exit_code,
                    at,
                }) => {
                    let cause = sinks.pending_stops.take(&container_id);
                    let _ = sinks.exits.send(ModuleExit {
                        name,
                        exit_code,
                        finished_at: at,
                        cause,
                    });
                }
                Some(ContainerEvent::Health(change)) => {
                    let _ = sinks.health.send(change);
                }
                None => {}
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
}

/// Drops events delivered twice when the stream is reopened from the last event's time.
#[derive(Debug, Default)]
struct SeenEvents {
    latest_nanos: i64,
    at_latest: HashSet<(String, String)>,
}

impl SeenEvents {
    fn first_time(&mut self, event: &EventMessage) -> bool {
        let nanos = event.time_nano.unwrap_or_default();
        let key = (
            event
                .actor
                .as_ref()
                .and_then(|actor| actor.id.clone())
                .unwrap_or_default(),
            event.action.clone().unwrap_or_default(),
        );
        if nanos < self.latest_nanos {
            return false;
        }
        if nanos > self.latest_nanos {
            self.latest_nanos = nanos;
            self.at_latest.clear();
        }
        self.at_latest.insert(key)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // No code panics while holding this lock; if one ever did, the map is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use bollard::models::EventActor;
    use expect_test::{Expect, expect};

    use super::*;

    fn event(action: &str, attributes: &[(&str, &str)], time_nano: i64) -> EventMessage {
        EventMessage {
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some("c0ffee".to_owned()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                        .collect(),
                ),
            }),
            time: Some(time_nano / 1_000_000_000),
            time_nano: Some(time_nano),
            ..Default::default()
        }
    }

    fn check(event: EventMessage, expect: Expect) {
        expect.assert_eq(&format!("{:?}", container_event(&event, "outpost")));
    }

    const OURS: [(&str, &str); 2] = [(OWNER_LABEL, "outpost"), (MODULE_LABEL, "sensor")];
    const TIME: i64 = 1_795_000_000_123_456_789;

    #[test]
    fn reads_die_and_health_events_of_our_containers() {
        let mut died = OURS.to_vec();
        died.push(("exitCode", "3"));
        check(
            event("die", &died, TIME),
            expect![[
                r#"Some(Died { container_id: "c0ffee", name: ModuleName("sensor"), exit_code: 3, at: 2026-11-18T11:06:40.123456789Z })"#
            ]],
        );
        check(
            event("health_status: unhealthy", &OURS, TIME),
            expect![[
                r#"Some(Health(HealthChange { name: ModuleName("sensor"), health: Unhealthy, at: 2026-11-18T11:06:40.123456789Z }))"#
            ]],
        );
        check(
            event("health_status: healthy", &OURS, TIME),
            expect![[
                r#"Some(Health(HealthChange { name: ModuleName("sensor"), health: Healthy, at: 2026-11-18T11:06:40.123456789Z }))"#
            ]],
        );
        check(
            event(
                "die",
                &[(OWNER_LABEL, "other"), (MODULE_LABEL, "sensor")],
                TIME,
            ),
            expect!["None"],
        );
        check(
            event("die", &[(OWNER_LABEL, "outpost")], TIME),
            expect!["None"],
        );
        check(event("start", &OURS, TIME), expect!["None"]);
        check(
            event("health_status: starting", &OURS, TIME),
            expect!["None"],
        );
    }

    #[test]
    fn since_keeps_nanoseconds_and_repeated_events_are_dropped() {
        assert_eq!(
            since_parameter(chrono::DateTime::from_timestamp_nanos(TIME)),
            "1795000000.123456789"
        );
        assert_eq!(
            since_parameter(chrono::DateTime::from_timestamp_nanos(1_000_000_000)),
            "1.000000000"
        );
        let mut seen = SeenEvents::default();
        let first = event("die", &OURS, TIME);
        let other_action = event("health_status: healthy", &OURS, TIME);
        let later = event("die", &OURS, TIME + 1);
        let verdicts: Vec<bool> = [&first, &other_action, &first, &later, &first, &later]
            .into_iter()
            .map(|event| seen.first_time(event))
            .collect();
        assert_eq!(verdicts, [true, true, false, true, false, false]);
    }
}
