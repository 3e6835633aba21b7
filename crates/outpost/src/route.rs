//! `outpost route`: show, replace, test and count the hub's message routing through the service
//! REST API (`GET`/`PUT /routing`, `POST /routing/test`, `GET /routing/stats`).
//!
//! The configuration is the JSON document of the `hub-routing` crate (`endpoints.webhooks`,
//! `endpoints.files`, `routes`, `fallbackRoute`). Replacing it needs a policy with every right
//! (the owner policy the hub writes to `DATA_DIR/owner-connection-string`).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Map, Value, json};

use crate::manage::{HubConnection, OutputFormat};

#[derive(Args)]
pub struct RouteArgs {
    #[command(flatten)]
    hub: HubConnection,
    #[command(subcommand)]
    command: RouteCommand,
}

#[derive(Subcommand)]
pub enum RouteCommand {
    /// Print the routing configuration in force (JSON, defaults spelt out).
    Show,
    /// Replace the routing configuration with the JSON document in FILE (`-` reads standard
    /// input). The hub validates it, stores it and applies it at once, without a restart.
    Set { file: PathBuf },
    /// Show which routes a sample message matches and where it would go; nothing is sent.
    Test {
        /// The message body, e.g. '{"temp": 30}'.
        #[arg(long, default_value = "")]
        body: String,
        /// Application property `key=value`; repeat for several.
        #[arg(long = "property", short = 'p', value_name = "KEY=VALUE")]
        properties: Vec<String>,
        /// `$contentType`; `$body` conditions need `application/json`.
        #[arg(long)]
        content_type: Option<String>,
        /// `$contentEncoding` [default: utf-8 when --content-type is given].
        #[arg(long)]
        content_encoding: Option<String>,
        /// The routing source: DeviceMessages, TwinChangeEvents or DeviceLifecycleEvents.
        #[arg(long, default_value = "DeviceMessages")]
        source: String,
        /// The sending device (`$connectionDeviceId`); its twin answers `$twin` conditions.
        #[arg(long)]
        device: Option<String>,
        /// A twin for `$twin` conditions instead of the device's, e.g. '{"tags": {"env": "prod"}}'.
        #[arg(long)]
        twin: Option<String>,
    },
    /// Print message counts of the events endpoint and delivery counters of every custom endpoint.
    Stats,
}

const STATS_COLUMNS: &[(&str, &str)] = &[
    ("ENDPOINT", "/name"),
    ("KIND", "/kind"),
    ("DELIVERED", "/delivered"),
    ("RETRIES", "/retries"),
    ("DEAD-LETTERED", "/deadLettered"),
    ("DROPPED", "/droppedQueueFull"),
    ("QUEUED", "/queued"),
    ("LAST ERROR", "/lastError"),
];

fn read_document(file: &PathBuf) -> anyhow::Result<Value> {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the routing configuration from standard input")?;
        text
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the routing configuration {}", file.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))
}

/// The `POST /routing/test` request for the `test` arguments.
fn test_request(
    body: String,
    properties: Vec<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    source: String,
    device: Option<String>,
    twin: Option<String>,
) -> anyhow::Result<Value> {
    let mut app_properties = Map::new();
    for property in properties {
        let (key, value) = property
            .split_once('=')
            .ok_or_else(|| anyhow!("--property `{property}` must look like key=value"))?;
        app_properties.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    let mut system_properties = Map::new();
    if let Some(content_type) = content_type {
        system_properties.insert("contentType".to_owned(), Value::String(content_type));
        let encoding = content_encoding
            .clone()
            .unwrap_or_else(|| "utf-8".to_owned());
        system_properties.insert("contentEncoding".to_owned(), Value::String(encoding));
    } else if let Some(encoding) = content_encoding {
        system_properties.insert("contentEncoding".to_owned(), Value::String(encoding));
    }
    if let Some(device) = device {
        system_properties.insert("connectionDeviceId".to_owned(), Value::String(device));
    }
    let mut request = json!({
        "routingSource": source,
        "message": {"body": body, "appProperties": app_properties, "systemProperties": system_properties},
    });
    if let Some(twin) = twin {
        request["twin"] = serde_json::from_str(&twin)
            .with_context(|| format!("--twin is not valid JSON: {twin}"))?;
    }
    Ok(request)
}

fn list(value: &Value) -> String {
    let names: Vec<&str> = value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

pub async fn route(args: RouteArgs) -> anyhow::Result<()> {
    let client = args.hub.client()?;
    let json_output = args.hub.output == OutputFormat::Json;
    match args.command {
        RouteCommand::Show => {
            let document = client
                .call(Method::GET, "/routing", None, &[])
                .await?
                .success()?
                .json()?;
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
        RouteCommand::Set { file } => {
            let document = read_document(&file)?;
            let applied = client
                .call(Method::PUT, "/routing", Some(document), &[])
                .await?
                .success()?
                .json()?;
            if json_output {
                println!("{}", serde_json::to_string_pretty(&applied)?);
            } else {
                let count = |pointer: &str| {
                    applied
                        .pointer(pointer)
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                };
                println!(
                    "routing applied: {} routes, {} webhooks, {} files, fallback route {}",
                    count("/routes"),
                    count("/endpoints/webhooks"),
                    count("/endpoints/files"),
                    if applied["fallbackRoute"]["isEnabled"] == Value::Bool(false) {
                        "disabled"
                    } else {
                        "enabled"
                    }
                );
            }
        }
        RouteCommand::Test {
            body,
            properties,
            content_type,
            content_encoding,
            source,
            device,
            twin,
        } => {
            let request = test_request(
                body,
                properties,
                content_type,
                content_encoding,
                source,
                device,
                twin,
            )?;
            let answer = client
                .call(Method::POST, "/routing/test", Some(request), &[])
                .await?
                .success()?
                .json()?;
            if json_output {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                println!("matched routes: {}", list(&answer["matchedRoutes"]));
                if answer["fallbackApplied"] == Value::Bool(true) {
                    println!("fallback route: applied");
                }
                println!("endpoints:      {}", list(&answer["endpoints"]));
            }
        }
        RouteCommand::Stats => {
            let stats = client
                .call(Method::GET, "/routing/stats", None, &[])
                .await?
                .success()?
                .json()?;
            if json_output {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                let Some(endpoints) = stats.get("endpoints") else {
                    bail!("the hub answered routing stats without endpoints: {stats}");
                };
                println!(
                    "events: {} appended, unrouted: {}",
                    stats["eventsAppended"], stats["unrouted"]
                );
                args.hub.print(endpoints, STATS_COLUMNS);
            }
        }
    }
    Ok(())
}
