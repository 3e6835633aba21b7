//! The routing shell end to end: real webhooks on 127.0.0.1, file endpoints, the stored
//! configuration and reconfiguration without restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use expect_test::{Expect, expect};
use http_body_util::{BodyExt, Full};
use hub_routing::{
    BoxFuture, CONFIG_FILE_NAME, DispatchError, EventsAppendError, EventsEndpoint, RoutedMessage,
    Router, RouterError, RouterOptions, RoutingDocument, RoutingSource,
};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use iothub_types::Message;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const GRACE: Duration = Duration::from_secs(20);

// === helpers ===

/// The `events` endpoint in memory; offsets are positions in `messages`.
#[derive(Default)]
struct MemoryEvents {
    messages: Mutex<Vec<RoutedMessage>>,
}

impl EventsEndpoint for MemoryEvents {
    fn append<'a>(
        &'a self,
        message: &'a RoutedMessage,
    ) -> BoxFuture<'a, Result<u64, EventsAppendError>> {
        Box::pin(async move {
            let mut messages = self.messages.lock().unwrap();
            messages.push(message.clone());
            Ok(messages.len() as u64 - 1)
        })
    }
}

impl MemoryEvents {
    fn bodies(&self) -> Vec<String> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|routed| String::from_utf8_lossy(&routed.message.body).into_owned())
            .collect()
    }
}

/// An `events` endpoint whose log is broken.
struct FailingEvents;

impl EventsEndpoint for FailingEvents {
    fn append<'a>(&'a self, _: &'a RoutedMessage) -> BoxFuture<'a, Result<u64, EventsAppendError>> {
        Box::pin(async { Err("disk full".into()) })
    }
}

/// One request a [`TestServer`] received.
struct ReceivedRequest {
    target: String,
    headers: hyper::HeaderMap,
    body: Bytes,
}

/// An HTTP/1.1 server on 127.0.0.1 that answers the n-th request (0-based) with `status(n)`.
struct TestServer {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<ReceivedRequest>>>,
}

impl TestServer {
    async fn start(status: fn(usize) -> u16) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<ReceivedRequest>>> = Arc::default();
        let shared = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let requests = Arc::clone(&shared);
                let service = service_fn(move |request: Request<Incoming>| {
                    let requests = Arc::clone(&requests);
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let index = {
                            let mut requests = requests.lock().unwrap();
                            requests.push(ReceivedRequest {
                                target: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            });
                            requests.len() - 1
                        };
                        let response = Response::builder()
                            .status(status(index))
                            .body(Full::new(Bytes::from_static(b"answer")))
                            .unwrap();
                        Ok::<_, hyper::Error>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestServer { address, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// A port on 127.0.0.1 where nothing listens.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn telemetry(device_id: &str, properties: &[(&str, &str)], body: &str) -> Message {
    let mut message = Message::new(Bytes::from(body.to_owned()));
    for (name, value) in properties {
        message = message.with_application_property(*name, Some(*value));
    }
    message.system.connection_device_id = Some(device_id.to_owned());
    message.system.enqueued_time = Some("2030-01-02T03:04:05.000Z".to_owned());
    message
}

fn json_telemetry(device_id: &str, body: &Value) -> Message {
    let mut message = telemetry(device_id, &[], &body.to_string());
    message.system.content_type = Some("application/json".to_owned());
    message.system.content_encoding = Some("utf-8".to_owned());
    message
}

fn document(json: Value) -> RoutingDocument {
    serde_json::from_value(json).unwrap()
}

async fn open_router(directory: &Path, events: Arc<dyn EventsEndpoint>) -> Router {
    Router::open(
        RouterOptions::new(directory.join("config"), directory.join("files")),
        events,
    )
    .await
    .unwrap()
}

/// Renders the router's counters, with `redactions` (such as port numbers) replaced.
fn check_stats(router: &Router, redactions: &[(&str, &str)], expected: Expect) {
    let mut rendered = serde_json::to_string_pretty(&router.stats()).unwrap();
    for (from, to) in redactions {
        rendered = rendered.replace(from, to);
    }
    expected.assert_eq(&(rendered + "\n"));
}

// === webhooks ===

#[tokio::test]
async fn webhook_retries_server_errors_and_delivers_once() {
    let server = TestServer::start(|index| if index < 2 { 500 } else { 200 }).await;
    let directory = tempfile::tempdir().unwrap();
    let router = open_router(directory.path(), Arc::new(MemoryEvents::default())).await;
    router
        .apply(&document(json!({
            "endpoints": {"webhooks": [{
                "name": "hook", "url": server.url("/ingest?key=1"), "headers": {"x-api-key": "secret"},
                "maxAttempts": 5, "initialBackoffMs": 1, "maxBackoffMs": 4
            }]},
            "routes": [{"name": "all", "source": "DeviceMessages", "endpointNames": ["hook"]}]
        })))
        .await
        .unwrap();
    let outcome = router
        .dispatch(
            RoutingSource::DeviceMessages,
            json_telemetry("dev1", &json!({"Weather": {"Temperature": 55}})),
            None,
        )
        .await
        .unwrap();
    assert_eq!((outcome.queued, outcome.events_offset), (1, None));
    assert!(router.shutdown(GRACE).await);

    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 3);
    for request in requests.iter() {
        assert_eq!(request.target, "/ingest?key=1");
        assert_eq!(request.headers["x-api-key"], "secret");
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(request.body, requests[0].body);
    }
    expect![[r#"{"EnqueuedTimeUtc":"2030-01-02T03:04:05.000Z","Properties":{},"SystemProperties":{"contentType":"application/json","contentEncoding":"utf-8","connectionDeviceId":"dev1","enqueuedTime":"2030-01-02T03:04:05.000Z"},"Body":{"Weather":{"Temperature":55}}}"#]].assert_eq(&String::from_utf8_lossy(&requests[0].body));
    check_stats(
        &router,
        &[],
        expect![[r#"
        {
          "eventsAppended": 0,
          "unrouted": 0,
          "endpoints": [
            {
              "name": "hook",
              "kind": "webhook",
              "delivered": 1,
              "retries": 2,
              "deadLettered": 0,
              "droppedQueueFull": 0,
              "queued": 0,
              "lastError": "the webhook answered 500 Internal Server Error"
            }
          ]
        }
    "#]],
    );
}

#[tokio::test]
async fn failing_webhooks_dead_letter() {
    let always_failing = TestServer::start(|_| 503).await;
    let rejecting = TestServer::start(|_| 400).await;
    let refused_port = closed_port().await;
    let directory = tempfile::tempdir().unwrap();
    let router = open_router(directory.path(), Arc::new(MemoryEvents::default())).await;
    let retry = json!({"maxAttempts": 3, "initialBackoffMs": 1, "maxBackoffMs": 2});
    let webhook = |name: &str, url: String| {
        let mut endpoint = retry.clone();
        endpoint["name"] = json!(name);
        endpoint["url"] = json!(url);
        endpoint
    };
    router
        .apply(&document(json!({
            "endpoints": {"webhooks": [
                webhook("unavailable", always_failing.url("/")),
                webhook("rejecting", rejecting.url("/")),
                webhook("refused", format!("http://127.0.0.1:{refused_port}/")),
            ]},
            "routes": [{"name": "all", "source": "DeviceMessages",
                        "endpointNames": ["unavailable", "rejecting", "refused", "events"]}]
        })))
        .await
        .unwrap();
    for index in 0..2 {
        let outcome = router
            .dispatch(
                RoutingSource::DeviceMessages,
                telemetry("dev1", &[], &format!("message {index}")),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            (outcome.queued, outcome.events_offset),
            (3, Some(index as u64))
        );
    }
    assert!(router.shutdown(GRACE).await);
    // Every attempt reached the failing server, the permanent 400 was not retried.
    assert_eq!(always_failing.request_count(), 6);
    assert_eq!(rejecting.request_count(), 2);
    check_stats(
        &router,
        &[(&refused_port.to_string(), "PORT")],
        expect![[r#"
            {
              "eventsAppended": 2,
              "unrouted": 0,
              "endpoints": [
                {
                  "name": "unavailable",
                  "kind": "webhook",
                  "delivered": 0,
                  "retries": 4,
                  "deadLettered": 2,
                  "droppedQueueFull": 0,
                  "queued": 0,
                  "lastError": "the webhook answered 503 Service Unavailable"
                },
                {
                  "name": "rejecting",
                  "kind": "webhook",
                  "delivered": 0,
                  "retries": 0,
                  "deadLettered": 2,
                  "droppedQueueFull": 0,
                  "queued": 0,
                  "lastError": "the webhook answered 400 Bad Request"
                },
                {
                  "name": "refused",
                  "kind": "webhook",
                  "delivered": 0,
                  "retries": 4,
                  "deadLettered": 2,
                  "droppedQueueFull": 0,
                  "queued": 0,
                  "lastError": "cannot connect to 127.0.0.1:PORT: Connection refused (os error 111)"
                }
              ]
            }
        "#]],
    );
}

// === file endpoints ===

#[tokio::test]
async fn file_endpoint_appends_json_lines() {
    let directory = tempfile::tempdir().unwrap();
    let events = Arc::new(MemoryEvents::default());
    let router = open_router(directory.path(), events.clone()).await;
    router
        .apply(&document(json!({
            "endpoints": {"files": [{"name": "archive", "path": "archive/telemetry.jsonl"}]},
            "routes": [
                {"name": "archive", "source": "DeviceMessages", "endpointNames": ["archive", "events"]},
                {"name": "twins", "source": "TwinChangeEvents", "condition": "opType = 'updateTwin'", "endpointNames": ["archive"]}
            ]
        })))
        .await
        .unwrap();
    let device_id = iothub_types::DeviceId::new("dev1").unwrap();
    let twin_change = hub_routing::twin_change_event(
        &hub_routing::NotificationContext {
            hub_name: "outpost",
            device_id: &device_id,
            module_id: None,
            operation_time: chrono::DateTime::from_timestamp(1_893_553_445, 0).unwrap(),
        },
        hub_routing::TwinChangeOperation::UpdateTwin,
        &hub_routing::twin_change_body(2, Some(&json!({"env": "prod"})), None, None),
    );
    let messages = [
        (
            RoutingSource::DeviceMessages,
            json_telemetry("dev1", &json!({"temperature": 21.5})),
        ),
        (
            RoutingSource::DeviceMessages,
            telemetry("dev2", &[("processingPath", "cold")], "\u{1}binary"),
        ),
        (RoutingSource::TwinChangeEvents, twin_change),
    ];
    for (source, message) in messages {
        // Through a spawned task: the dispatch future is `Send`, as the hub's tasks need.
        let router = router.clone();
        tokio::spawn(async move { router.dispatch(source, message, None).await })
            .await
            .unwrap()
            .unwrap();
    }
    assert!(router.shutdown(GRACE).await);
    let written =
        std::fs::read_to_string(directory.path().join("files/archive/telemetry.jsonl")).unwrap();
    expect![[r#"
        {"EnqueuedTimeUtc":"2030-01-02T03:04:05.000Z","Properties":{},"SystemProperties":{"contentType":"application/json","contentEncoding":"utf-8","connectionDeviceId":"dev1","enqueuedTime":"2030-01-02T03:04:05.000Z"},"Body":{"temperature":21.5}}
        {"EnqueuedTimeUtc":"2030-01-02T03:04:05.000Z","Properties":{"processingPath":"cold"},"SystemProperties":{"connectionDeviceId":"dev2","enqueuedTime":"2030-01-02T03:04:05.000Z"},"Body":"AWJpbmFyeQ=="}
        {"EnqueuedTimeUtc":"2030-01-02T03:04:05.000Z","Properties":{"deviceId":"dev1","hubName":"outpost","iothub-message-schema":"twinChangeNotification","opType":"updateTwin","operationTimestamp":"2030-01-02T03:04:05.000Z"},"SystemProperties":{"contentType":"application/json","contentEncoding":"utf-8","connectionDeviceId":"dev1","enqueuedTime":"2030-01-02T03:04:05.000Z","messageSource":"twinChangeEvents"},"Body":{"tags":{"env":"prod"},"version":2}}
    "#]].assert_eq(&written);
    assert_eq!(events.bodies().len(), 2);
    check_stats(
        &router,
        &[],
        expect![[r#"
        {
          "eventsAppended": 2,
          "unrouted": 0,
          "endpoints": [
            {
              "name": "archive",
              "kind": "file",
              "delivered": 3,
              "retries": 0,
              "deadLettered": 0,
              "droppedQueueFull": 0,
              "queued": 0
            }
          ]
        }
    "#]],
    );
}

#[tokio::test]
async fn full_queues_drop_and_count() {
    let directory = tempfile::tempdir().unwrap();
    let port = closed_port().await;
    let mut options = RouterOptions::new(directory.path().join("config"), directory.path());
    options.endpoint_queue_capacity = 1;
    let router = Router::open(options, Arc::new(MemoryEvents::default()))
        .await
        .unwrap();
    router
        .apply(&document(json!({
            "endpoints": {"webhooks": [{"name": "slow", "url": format!("http://127.0.0.1:{port}/"), "maxAttempts": 1}]},
            "routes": [{"name": "all", "source": "DeviceMessages", "endpointNames": ["slow"]}]
        })))
        .await
        .unwrap();
    // On this single-threaded runtime the delivery task cannot run between these dispatches
    // (none of them awaits anything), so the queue of one fills at once.
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let outcome = router
            .dispatch(
                RoutingSource::DeviceMessages,
                telemetry("dev1", &[], "x"),
                None,
            )
            .await
            .unwrap();
        outcomes.push((outcome.queued, outcome.dropped_queue_full));
    }
    assert_eq!(outcomes, [(1, 0), (0, 1), (0, 1)]);
    assert!(router.shutdown(GRACE).await);
    let stats = router.stats();
    assert_eq!(
        (
            stats.endpoints[0].dropped_queue_full,
            stats.endpoints[0].dead_lettered
        ),
        (2, 1)
    );
}

// === events, configuration and lifecycle ===

#[tokio::test]
async fn events_failure_queues_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let router = open_router(directory.path(), Arc::new(FailingEvents)).await;
    router
        .apply(&document(json!({
            "endpoints": {"files": [{"name": "copy", "path": "copy.jsonl"}]},
            "routes": [{"name": "both", "source": "DeviceMessages", "endpointNames": ["copy", "events"]}]
        })))
        .await
        .unwrap();
    let error = router
        .dispatch(
            RoutingSource::DeviceMessages,
            telemetry("dev1", &[], "x"),
            None,
        )
        .await
        .unwrap_err();
    expect!["appending to the events endpoint failed: disk full"].assert_eq(&error.to_string());
    assert!(router.shutdown(GRACE).await);
    assert!(!directory.path().join("files/copy.jsonl").exists());
    assert!(matches!(
        router
            .dispatch(
                RoutingSource::DeviceMessages,
                telemetry("dev1", &[], "x"),
                None
            )
            .await,
        Err(DispatchError::ShutDown)
    ));
    assert!(matches!(
        router.apply(&RoutingDocument::default()).await,
        Err(RouterError::ShutDown)
    ));
}

#[tokio::test]
async fn configuration_is_stored_and_swapped_without_restart() {
    let directory = tempfile::tempdir().unwrap();
    let config_file = directory.path().join("config").join(CONFIG_FILE_NAME);
    let events = Arc::new(MemoryEvents::default());
    let router = open_router(directory.path(), events.clone()).await;
    let hot = || telemetry("dev1", &[("processingPath", "hot")], "hot");
    let cold = || telemetry("dev1", &[("processingPath", "cold")], "cold");

    // A new hub: everything falls back to events; nothing is stored yet.
    router
        .dispatch(RoutingSource::DeviceMessages, hot(), None)
        .await
        .unwrap();
    assert!(!config_file.exists());

    // Hot messages now go to a file only; cold ones still fall back to events.
    let hot_path = document(json!({
        "endpoints": {"files": [{"name": "hot", "path": "hot.jsonl"}]},
        "routes": [{"name": "hot", "source": "DeviceMessages", "condition": "processingPath = 'hot'", "endpointNames": ["hot"]}]
    }));
    router.apply(&hot_path).await.unwrap();
    let explanation = router.explain(RoutingSource::DeviceMessages, &hot(), None);
    assert_eq!(explanation.matched_routes[0].as_str(), "hot");
    router
        .dispatch(RoutingSource::DeviceMessages, hot(), None)
        .await
        .unwrap();
    router
        .dispatch(RoutingSource::DeviceMessages, cold(), None)
        .await
        .unwrap();
    let stored = std::fs::read(&config_file).unwrap();
    assert_eq!(
        serde_json::from_slice::<RoutingDocument>(&stored).unwrap(),
        router.document()
    );

    // An invalid configuration is refused and changes nothing, on disk or live.
    let invalid = document(json!({
        "routes": [{"name": "r", "source": "DeviceMessages", "condition": "a = = 1", "endpointNames": ["gone"]}]
    }));
    let error = router.apply(&invalid).await.unwrap_err();
    expect![[r#"
        invalid routing configuration (2 problems)
        - route "r": condition does not parse
        error: expected expression, found `=`
         --> 1:5
          |
        1 | a = = 1
          |     ^
        - route "r": unknown endpoint "gone""#]]
    .assert_eq(&error.to_string());
    assert_eq!(std::fs::read(&config_file).unwrap(), stored);

    // Removing the file endpoint retires its task, which still drains what was queued.
    router
        .apply(&document(json!({"fallbackRoute": {"isEnabled": false}})))
        .await
        .unwrap();
    let outcome = router
        .dispatch(RoutingSource::DeviceMessages, hot(), None)
        .await
        .unwrap();
    assert!(outcome.is_unrouted());
    assert!(router.shutdown(GRACE).await);
    assert_eq!(events.bodies(), ["hot", "cold"]);
    let hot_file = std::fs::read_to_string(directory.path().join("files/hot.jsonl")).unwrap();
    assert_eq!(hot_file.lines().count(), 1);
    check_stats(
        &router,
        &[],
        expect![[r#"
        {
          "eventsAppended": 2,
          "unrouted": 1,
          "endpoints": []
        }
    "#]],
    );

    // A restarted router finds the stored configuration.
    let restarted = open_router(directory.path(), events.clone()).await;
    assert_eq!(restarted.document(), router.document());
    assert!(restarted.shutdown(GRACE).await);

    // A damaged file is reported, not silently replaced by the default.
    std::fs::write(&config_file, b"{\"routes\": [").unwrap();
    let error = Router::open(
        RouterOptions::new(directory.path().join("config"), directory.path()),
        events,
    )
    .await
    .unwrap_err()
    .to_string()
    .replace(&directory.path().display().to_string(), "DIR");
    expect!["the stored routing configuration DIR/config/routing.json is unusable: routing configuration is not valid JSON of the expected shape: EOF while parsing a list at line 1 column 12"].assert_eq(&error);
}

#[tokio::test]
async fn twin_is_loaded_only_when_a_condition_reads_it() {
    let directory = tempfile::tempdir().unwrap();
    let events = Arc::new(MemoryEvents::default());
    let router = open_router(directory.path(), events.clone()).await;
    let loads = std::sync::atomic::AtomicUsize::new(0);
    let load = || async {
        loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(json!({"tags": {"env": "prod"}}))
    };
    // The default configuration never reads the twin.
    router
        .dispatch_loading_twin(
            RoutingSource::DeviceMessages,
            telemetry("dev1", &[], "a"),
            load,
        )
        .await
        .unwrap();
    assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 0);

    router
        .apply(&document(json!({
            "routes": [{"name": "prod", "source": "DeviceMessages",
                        "condition": "$twin.tags.env = 'prod'", "endpointNames": ["events"]}],
            "fallbackRoute": {"isEnabled": false}
        })))
        .await
        .unwrap();
    assert!(router.needs_twin(RoutingSource::DeviceMessages));
    assert!(!router.may_route(RoutingSource::TwinChangeEvents));
    let outcome = router
        .dispatch_loading_twin(
            RoutingSource::DeviceMessages,
            telemetry("dev1", &[], "b"),
            load,
        )
        .await
        .unwrap();
    assert!(outcome.endpoints.contains_events());
    let outcome = router
        .dispatch_loading_twin(
            RoutingSource::DeviceMessages,
            telemetry("dev1", &[], "c"),
            || async {
                loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Some(json!({"tags": {"env": "test"}}))
            },
        )
        .await
        .unwrap();
    assert!(outcome.is_unrouted());
    assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(router.shutdown(GRACE).await);
    assert_eq!(events.bodies(), ["a", "b"]);
}
