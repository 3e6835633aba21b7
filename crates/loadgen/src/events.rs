//! Reading device-to-cloud messages as the hub's consumers do, through the streaming `GET /events`
//! API (one JSON object per line), counting them and noting when the first and the last arrived:
//! both when this process read them and when the hub enqueued them (`enqueuedTime`).

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use crate::service::ServiceConnection;

/// Seconds in a day, for comparing times of day.
const DAY_SECONDS: f64 = 86_400.0;

/// What an event counter saw.
#[derive(Clone, Copy, Debug)]
pub struct EventsSeen {
    pub count: u64,
    /// When this process read the first and the last counted event.
    pub first_read: Instant,
    pub last_read: Instant,
    /// The hub's `enqueuedTime` of the first and the last counted event, as seconds since midnight UTC.
    pub first_enqueued: Option<f64>,
    pub last_enqueued: Option<f64>,
}

/// Opens `GET /events?{query}` on the hub and returns a task that passes over the first `skip`
/// events, then counts events until `expected` have arrived. The consumer exists on the hub once this
/// returns, so with `from=now` every event enqueued afterwards is counted.
pub async fn start_event_counter(
    https_address: SocketAddr,
    ca_pem: &str,
    owner_connection_string: &str,
    query: &str,
    skip: u64,
    expected: u64,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<EventsSeen>>> {
    let mut service =
        ServiceConnection::open(https_address, ca_pem, owner_connection_string).await?;
    let response = service
        .send(Method::GET, &format!("/events?{query}"), None)
        .await?;
    if !response.status().is_success() {
        bail!("the hub refused the event stream: {}", response.status());
    }
    let mut body = response.into_body();
    Ok(tokio::spawn(async move {
        let _service = service;
        let mut pending: Vec<u8> = Vec::new();
        let mut count = 0u64;
        let mut skipped = 0u64;
        let mut first: Option<(Instant, Option<f64>)> = None;
        while count < expected {
            let frame = body
                .frame()
                .await
                .ok_or_else(|| {
                    anyhow::anyhow!("the hub closed the event stream after {count} events")
                })?
                .context("reading the event stream")?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            let mut consumed = 0;
            while let Some(offset) = pending[consumed..].iter().position(|byte| *byte == b'\n') {
                let line = &pending[consumed..consumed + offset];
                consumed += offset + 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if skipped < skip {
                    skipped += 1;
                    continue;
                }
                count += 1;
                if count == 1 {
                    first = Some((Instant::now(), enqueued_seconds_of_day(line)));
                }
                if count == expected {
                    let (first_read, first_enqueued) = first.unwrap_or((Instant::now(), None));
                    return Ok(EventsSeen {
                        count,
                        first_read,
                        last_read: Instant::now(),
                        first_enqueued,
                        last_enqueued: enqueued_seconds_of_day(line),
                    });
                }
            }
            pending.drain(..consumed);
        }
        bail!("no events were expected")
    }))
}

/// The `enqueuedTime` of one event line as seconds since midnight UTC.
pub fn enqueued_seconds_of_day(line: &[u8]) -> Option<f64> {
    let event: Value = serde_json::from_slice(line).ok()?;
    time_of_day_seconds(event["enqueuedTime"].as_str()?)
}

/// Seconds since midnight of an ISO 8601 UTC timestamp such as `2026-11-27T06:42:11.1234567Z`.
pub fn time_of_day_seconds(timestamp: &str) -> Option<f64> {
    let (_, time) = timestamp.split_once('T')?;
    let time = time.strip_suffix('Z').unwrap_or(time);
    let mut fields = time.split(':');
    let hours: f64 = fields.next()?.parse().ok()?;
    let minutes: f64 = fields.next()?.parse().ok()?;
    let seconds: f64 = fields.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// The wall clock now, as seconds since midnight UTC.
pub fn now_seconds_of_day() -> f64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    since_epoch % DAY_SECONDS
}

/// `later - earlier` for two times of day, taking the shorter way round midnight.
pub fn seconds_between(earlier: f64, later: f64) -> f64 {
    let difference = (later - earlier).rem_euclid(DAY_SECONDS);
    if difference > DAY_SECONDS / 2.0 {
        difference - DAY_SECONDS
    } else {
        difference
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn times_of_day() {
        let line = br#"{"deviceId":"e","enqueuedTime":"2026-11-27T06:42:11.1234567Z","offset":3}"#;
        let rendered = format!(
            "{:?} {:?} {:?} {:?} {:.3} {:.3} {:.3}",
            enqueued_seconds_of_day(line),
            time_of_day_seconds("2026-11-27T00:00:01Z"),
            time_of_day_seconds("not a time"),
            enqueued_seconds_of_day(b"{}"),
            seconds_between(10.0, 10.25),
            seconds_between(86_399.5, 0.5),
            seconds_between(0.5, 86_399.5),
        );
        expect!["Some(24131.1234567) Some(1.0) None None 0.250 1.000 -1.000"].assert_eq(&rendered);
    }
}
