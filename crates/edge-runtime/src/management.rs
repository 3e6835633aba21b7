//! The runtime's management API: HTTP over a Unix socket (`DATA_DIR/mgmt.sock`, mode 0600) that
//! `outpost edge list`, `logs` and `restart` talk to, and its client.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /status` | `200` the agent's status: `{deviceId, hubConnected, lastDesiredVersion, lastDesiredStatus, modules: [...]}` |
//! | `GET /modules/{name}/logs?tail=N&follow=true&timestamps=true` | `200` the module's output as a byte stream |
//! | `POST /modules/{name}/restart` | `200 {}`; `404` for an unknown module |
//!
//! Errors are `{"message": "..."}` as in Azure's management API. Access is controlled by the
//! socket file's mode: only the runtime's user can connect.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use edge_agent::{LogOptions, ModuleRuntime, RuntimeError};
use edge_deployment::ModuleName;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::Engine;

/// A request the agent loop must handle itself.
#[derive(Debug)]
pub enum ManagementCommand {
    /// Restart a module now (an operator's request; its restart count is not touched).
    Restart {
        module: ModuleName,
        reply: oneshot::Sender<Result<(), RuntimeError>>,
    },
}

#[derive(Clone)]
struct ServerState {
    status: watch::Receiver<Value>,
    engine: Engine,
    commands: mpsc::Sender<ManagementCommand>,
}

/// Serves the management API on `path` until the returned task is aborted. A stale socket file
/// is replaced; the socket is made mode 0600.
pub async fn serve(
    path: &Path,
    status: watch::Receiver<Value>,
    engine: Engine,
    commands: mpsc::Sender<ManagementCommand>,
) -> io::Result<tokio::task::JoinHandle<()>> {
    if let Some(parent) = path.parent() {
        crate::files::create_private_dir(parent)?;
    }
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let router = Router::new()
        .route("/status", get(get_status))
        .route("/modules/{name}/logs", get(get_logs))
        .route("/modules/{name}/restart", post(post_restart))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .with_state(ServerState {
            status,
            engine,
            commands,
        });
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(message = "The management socket stopped.", %error);
        }
    }))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"message": message.into()}))).into_response()
}

fn module_name(text: &str) -> Result<ModuleName, Box<Response>> {
    ModuleName::new(text).map_err(|problem| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("bad module name: {problem}"),
        ))
    })
}

async fn get_status(State(state): State<ServerState>) -> Response {
    let status = state.status.borrow().clone();
    axum::Json(status).into_response()
}

async fn get_logs(
    State(state): State<ServerState>,
    UrlPath(name): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let module = match module_name(&name) {
        Ok(module) => module,
        Err(response) => return *response,
    };
    let tail = match query.get("tail").map(String::as_str) {
        None | Some("all") => None,
        Some(text) => match text.parse::<u64>() {
            Ok(count) => Some(count),
            Err(_) => return error(StatusCode::BAD_REQUEST, "tail must be a number or all"),
        },
    };
    let flag = |key: &str| query.get(key).is_some_and(|value| value == "true");
    let options = LogOptions {
        follow: flag("follow"),
        tail,
        since: None,
        until: None,
        timestamps: flag("timestamps"),
    };
    match state.engine.logs(&module, &options).await {
        Ok(reader) => {
            let stream = futures_util::stream::unfold(reader, |mut reader| async move {
                let mut buffer = vec![0_u8; 8192];
                match reader.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(count) => {
                        buffer.truncate(count);
                        Some((Ok::<Bytes, io::Error>(Bytes::from(buffer)), reader))
                    }
                    Err(read_error) => Some((Err(read_error), reader)),
                }
            });
            Response::new(Body::from_stream(stream))
        }
        Err(RuntimeError::NotFound(_)) => error(
            StatusCode::NOT_FOUND,
            format!("module {module} does not exist"),
        ),
        Err(other) => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

async fn post_restart(
    State(state): State<ServerState>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let module = match module_name(&name) {
        Ok(module) => module,
        Err(response) => return *response,
    };
    let (reply, answer) = oneshot::channel();
    if state
        .commands
        .send(ManagementCommand::Restart {
            module: module.clone(),
            reply,
        })
        .await
        .is_err()
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        );
    }
    match answer.await {
        Ok(Ok(())) => axum::Json(json!({})).into_response(),
        Ok(Err(RuntimeError::NotFound(_))) => error(
            StatusCode::NOT_FOUND,
            format!("module {module} does not exist"),
        ),
        Ok(Err(other)) => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        ),
    }
}

/// Why a management call failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error(
        "cannot reach the edge runtime at {path}: {source}; is `outpost edge run` running with this data directory?"
    )]
    Unreachable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the edge runtime refused: {status} {message}")]
    Refused { status: StatusCode, message: String },
    #[error("the management connection failed: {0}")]
    Connection(String),
}

/// Talks to a running agent over its management socket.
#[derive(Debug, Clone)]
pub struct ManagementClient {
    path: PathBuf,
}

impl ManagementClient {
    pub fn new(path: PathBuf) -> ManagementClient {
        ManagementClient { path }
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ManagementError> {
        let stream = UnixStream::connect(&self.path).await.map_err(|source| {
            ManagementError::Unreachable {
                path: self.path.clone(),
                source,
            }
        })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| ManagementError::Connection(error.to_string()))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", "mgmt.sock")
            .body(Full::new(Bytes::new()))
            .map_err(|error| ManagementError::Connection(error.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| ManagementError::Connection(error.to_string()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|value| value.get("message")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(ManagementError::Refused { status, message })
    }

    /// The agent's status document (see the module documentation).
    pub async fn status(&self) -> Result<Value, ManagementError> {
        let response = self.send(Method::GET, "/status").await?;
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| ManagementError::Connection(error.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body)
            .map_err(|error| ManagementError::Connection(error.to_string()))
    }

    /// Restarts a module.
    pub async fn restart(&self, module: &ModuleName) -> Result<(), ManagementError> {
        self.send(Method::POST, &format!("/modules/{module}/restart"))
            .await
            .map(drop)
    }

    /// Copies a module's output to `output` (until the module's log ends, or forever with
    /// `follow` while the module runs).
    pub async fn logs(
        &self,
        module: &ModuleName,
        tail: Option<u64>,
        follow: bool,
        output: &mut (impl std::io::Write + Send),
    ) -> Result<(), ManagementError> {
        let mut query = format!("/modules/{module}/logs?follow={follow}");
        if let Some(tail) = tail {
            query.push_str(&format!("&tail={tail}"));
        }
        let response = self.send(Method::GET, &query).await?;
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| ManagementError::Connection(error.to_string()))?;
            if let Some(data) = frame.data_ref() {
                output
                    .write_all(data)
                    .and_then(|()| output.flush())
                    .map_err(|error| ManagementError::Connection(error.to_string()))?;
            }
        }
        Ok(())
    }
}
