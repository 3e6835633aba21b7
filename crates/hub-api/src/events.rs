//! Telemetry streaming (`GET /events`) and consumer-group offsets.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hub_core::{AccessRight, ConsumerStart, TelemetryConsumer, TelemetryEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::routes::{ApiResult, ApiState, authorize};

/// The consumer group used when the request names none.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";
/// Events read from the log per batch.
const EVENTS_PER_BATCH: usize = 256;

/// One event as a line of `GET /events`.
pub fn event_json(event: &TelemetryEvent) -> Value {
    let (body, encoding) = match std::str::from_utf8(&event.message.body) {
        Ok(text) => (Value::String(text.to_owned()), "utf-8"),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(&event.message.body)),
            "base64",
        ),
    };
    let mut system = Map::new();
    for (property, value) in event.message.system.iter() {
        system.insert(
            property.amqp_name().to_owned(),
            Value::String(value.to_owned()),
        );
    }
    let mut application = Map::new();
    for (name, value) in &event.message.application {
        application.insert(
            name.clone(),
            value.clone().map_or(Value::Null, Value::String),
        );
    }
    json!({
        "deviceId": event.identity.device.as_str(),
        "moduleId": event.identity.module.as_ref().map(|module| module.as_str()),
        "body": body,
        "bodyEncoding": encoding,
        "systemProperties": system,
        "applicationProperties": application,
        "enqueuedTime": crate::wire::time_json(Some(event.enqueued_time)),
        "offset": event.offset,
    })
}

/// The same line as [`event_json`], serialized straight from the event (no intermediate JSON
/// tree, no copies of its strings) and appended to `out`.
pub fn write_event_json(event: &TelemetryEvent, out: &mut Vec<u8>) {
    /// Field names in the order `serde_json`'s sorted map writes them, so both forms agree.
    #[derive(Serialize)]
    struct Line<'a> {
        #[serde(rename = "applicationProperties")]
        application: BTreeMap<&'a str, Option<&'a str>>,
        body: Cow<'a, str>,
        #[serde(rename = "bodyEncoding")]
        body_encoding: &'static str,
        #[serde(rename = "deviceId")]
        device_id: &'a str,
        #[serde(rename = "enqueuedTime")]
        enqueued_time: String,
        #[serde(rename = "moduleId")]
        module_id: Option<&'a str>,
        offset: u64,
        #[serde(rename = "systemProperties")]
        system: BTreeMap<&'static str, &'a str>,
    }
    let (body, body_encoding) = match std::str::from_utf8(&event.message.body) {
        Ok(text) => (Cow::Borrowed(text), "utf-8"),
        Err(_) => (
            Cow::Owned(base64::engine::general_purpose::STANDARD.encode(&event.message.body)),
            "base64",
        ),
    };
    let line = Line {
        application: event
            .message
            .application
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
            .collect(),
        body,
        body_encoding,
        device_id: event.identity.device.as_str(),
        enqueued_time: twin::TwinTimestamp::from_datetime(event.enqueued_time).to_string(),
        module_id: event.identity.module.as_ref().map(|module| module.as_str()),
        offset: event.offset,
        system: event
            .message
            .system
            .iter()
            .map(|(property, value)| (property.amqp_name(), value))
            .collect(),
    };
    serde_json::to_writer(out, &line).expect("serializing to memory cannot fail");
}

fn parse_start(text: Option<&String>) -> Result<ConsumerStart, ApiError> {
    match text.map(String::as_str) {
        None | Some("committed") => Ok(ConsumerStart::Committed),
        Some("start") => Ok(ConsumerStart::Start),
        Some("now" | "end") => Ok(ConsumerStart::End),
        Some(offset) => offset
            .parse::<u64>()
            .map(ConsumerStart::Offset)
            .map_err(|_| {
                ApiError::invalid(format!(
                    "from must be start, now, committed or an offset, not {offset:?}"
                ))
            }),
    }
}

fn parse_number(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    query
        .get(name)
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| ApiError::invalid(format!("{name} must be a number, not {text:?}")))
        })
        .transpose()
}

struct StreamState {
    consumer: TelemetryConsumer,
    remaining: Option<u64>,
    idle_timeout: Option<Duration>,
    auto_commit: bool,
    /// Only events sent by this device (or its modules) are written.
    device: Option<String>,
}

async fn next_chunk(
    mut state: StreamState,
) -> Option<(Result<Bytes, std::io::Error>, StreamState)> {
    if state.remaining == Some(0) {
        return None;
    }
    let batch_size = state.remaining.map_or(EVENTS_PER_BATCH, |remaining| {
        usize::try_from(remaining)
            .unwrap_or(EVENTS_PER_BATCH)
            .min(EVENTS_PER_BATCH)
    });
    let batch = match state.idle_timeout {
        None => state.consumer.next_batch(batch_size).await,
        Some(idle_timeout) => {
            match tokio::time::timeout(idle_timeout, state.consumer.next_batch(batch_size)).await {
                Ok(batch) => batch,
                Err(_) => return None,
            }
        }
    };
    let events = match batch {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(%error, "telemetry stream failed");
            return Some((
                Err(std::io::Error::other(error.to_string())),
                StreamState {
                    remaining: Some(0),
                    ..state
                },
            ));
        }
    };
    let mut chunk = Vec::new();
    let mut written: u64 = 0;
    let wanted = |event: &&TelemetryEvent| {
        state
            .device
            .as_deref()
            .is_none_or(|device| event.identity.device.as_str() == device)
    };
    for event in events.iter().filter(wanted) {
        if state
            .remaining
            .is_some_and(|remaining| written >= remaining)
        {
            break;
        }
        write_event_json(event, &mut chunk);
        chunk.push(b'\n');
        written += 1;
    }
    if let Some(remaining) = state.remaining.as_mut() {
        *remaining = remaining.saturating_sub(written);
    }
    if state.auto_commit
        && let Err(error) = state.consumer.commit().await
    {
        tracing::warn!(%error, "cannot commit the consumer group offset");
    }
    Some((Ok(Bytes::from(chunk)), state))
}

/// `GET /events?consumerGroup=&from=&limit=&idleTimeoutSecs=&autoCommit=&deviceId=`.
pub(crate) async fn stream_events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::ServiceConnect])?;
    let group = query
        .get("consumerGroup")
        .map_or(DEFAULT_CONSUMER_GROUP, String::as_str);
    let start = parse_start(query.get("from"))?;
    let consumer = state.hub.telemetry_consumer(group, start)?;
    let auto_commit = match query.get("autoCommit").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "autoCommit must be true or false, not {other:?}"
            )));
        }
    };
    let stream_state = StreamState {
        consumer,
        remaining: parse_number(&query, "limit")?,
        idle_timeout: parse_number(&query, "idleTimeoutSecs")?.map(Duration::from_secs),
        auto_commit,
        device: query.get("deviceId").cloned(),
    };
    let stream = futures_util::stream::unfold(stream_state, next_chunk);
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Body of `PUT /events/consumerGroups/{group}`.
#[derive(Debug, Deserialize)]
pub(crate) struct OffsetBody {
    offset: Option<u64>,
}

/// `GET /events/consumerGroups/{group}`: `{"consumerGroup", "offset"}` (`offset` null when never committed).
pub(crate) async fn get_consumer_group(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(group): Path<String>,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::ServiceConnect])?;
    let offset = state.hub.consumer_offset(&group)?;
    let (first_offset, next_offset) = state.hub.telemetry_bounds();
    Ok(Json(json!({
        "consumerGroup": group,
        "offset": offset,
        "firstOffset": first_offset,
        "nextOffset": next_offset,
    }))
    .into_response())
}

/// `PUT /events/consumerGroups/{group}` with `{"offset": N}`: N is the offset the group reads next.
pub(crate) async fn put_consumer_group(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(group): Path<String>,
    body: Bytes,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::ServiceConnect])?;
    let body: OffsetBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::invalid(format!("invalid offset body: {error}")))?;
    let offset = body
        .offset
        .ok_or_else(|| ApiError::invalid("offset is required"))?;
    state.hub.commit_consumer_offset(&group, offset).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use iothub_types::{DeviceId, Identity, Message, ModuleId};

    use super::*;

    #[test]
    fn the_streamed_line_is_the_json_event() {
        let device = DeviceId::new("dev-1").unwrap();
        let mut text = Message::new("{\"t\": 21.5, \"quote\": \"\\\"\"}")
            .with_application_property("b", Some("2"))
            .with_application_property("a", None::<String>)
            .with_application_property("b", Some("last wins"));
        text.system.message_id = Some("m-1".to_owned());
        text.system.content_type = Some("application/json".to_owned());
        let binary = Message::new(vec![0xff, 0x00, 0x80]);
        let events = [
            (Identity::device(device.clone()), text),
            (
                Identity::module(device, ModuleId::new("filter").unwrap()),
                binary,
            ),
        ];
        for (offset, (identity, message)) in events.into_iter().enumerate() {
            let event = TelemetryEvent {
                offset: offset as u64,
                identity,
                message,
                enqueued_time: Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap(),
            };
            let mut line = Vec::new();
            write_event_json(&event, &mut line);
            assert_eq!(
                String::from_utf8(line).unwrap(),
                event_json(&event).to_string()
            );
        }
    }
}
