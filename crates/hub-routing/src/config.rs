//! The validated routing configuration: endpoints, routes and the fallback route.
//!
//! [`RoutingConfig::from_document`] is the only way from the wire shape ([`RoutingDocument`]) to
//! a configuration; it reports every problem it finds, not just the first, so an operator can
//! fix a configuration in one round trip.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use query::{Condition, MessageView, ParseError};

use crate::names::{EndpointName, NameError, RouteName, RoutingSource};
use crate::wire::{
    EndpointsDocument, FallbackRouteDocument, FileEndpointDocument, RouteDocument, RoutingDocument,
    WebhookEndpointDocument,
};

/// The most custom endpoints one configuration may define (the built-in `events` is extra).
pub const MAX_CUSTOM_ENDPOINTS: usize = 63;

/// The most routes one configuration may define (the IoT Hub limit).
pub const MAX_ROUTES: usize = 100;

/// The longest route condition, in bytes (the IoT Hub limit).
pub const MAX_CONDITION_LENGTH: usize = 1024;

/// The conventional name of the fallback route.
pub const FALLBACK_ROUTE_NAME: &str = "$fallback";

/// Request headers a webhook configuration may not set, because the sender owns them.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "upgrade",
];

/// One problem in a routing configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("endpoint name {name:?} is invalid: {error}")]
    InvalidEndpointName { name: String, error: NameError },
    #[error("endpoint name {name:?} is reserved (events, fileNotifications and $default are)")]
    ReservedEndpointName { name: String },
    #[error("endpoint {name:?} is defined more than once (names are compared ignoring case)")]
    DuplicateEndpointName { name: String },
    #[error("{count} custom endpoints are defined, the limit is {limit}")]
    TooManyEndpoints { count: usize, limit: usize },
    #[error("endpoint {endpoint:?}: url {url:?} is invalid: {reason}")]
    InvalidUrl {
        endpoint: String,
        url: String,
        reason: String,
    },
    #[error("endpoint {endpoint:?}: header {header:?} is invalid: {reason}")]
    InvalidHeader {
        endpoint: String,
        header: String,
        reason: String,
    },
    #[error("endpoint {endpoint:?}: invalid retry policy: {reason}")]
    InvalidRetryPolicy { endpoint: String, reason: String },
    #[error("endpoint {endpoint:?}: file path {path:?} is invalid: {reason}")]
    InvalidFilePath {
        endpoint: String,
        path: String,
        reason: String,
    },
    #[error("endpoint {endpoint:?}: file path {path:?} is already used by endpoint {other:?}")]
    DuplicateFilePath {
        endpoint: String,
        path: String,
        other: String,
    },
    #[error("route name {name:?} is invalid: {error}")]
    InvalidRouteName { name: String, error: NameError },
    #[error("route {name:?} is defined more than once (names are compared ignoring case)")]
    DuplicateRouteName { name: String },
    #[error("{count} routes are defined, the limit is {limit}")]
    TooManyRoutes { count: usize, limit: usize },
    #[error(
        "route {route:?}: unknown source {source_name:?}, expected DeviceMessages, TwinChangeEvents or DeviceLifecycleEvents"
    )]
    UnknownSource { route: String, source_name: String },
    #[error("route {route:?}: endpointNames is empty")]
    NoEndpoints { route: String },
    #[error("route {route:?}: unknown endpoint {endpoint:?}")]
    UnknownEndpoint { route: String, endpoint: String },
    #[error("route {route:?}: condition is {length} bytes long, the limit is {limit}")]
    ConditionTooLong {
        route: String,
        length: usize,
        limit: usize,
    },
    #[error("route {route:?}: condition does not parse\n{rendered}")]
    InvalidCondition {
        route: String,
        condition: String,
        error: ParseError,
        /// The query crate's caret diagram of the error in `condition`.
        rendered: String,
    },
    #[error("fallback route: {reason}")]
    InvalidFallbackRoute { reason: String },
}

/// Every problem found in one routing configuration, in document order.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "invalid routing configuration ({} problem{})",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            write!(formatter, "\n- {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Why routing configuration text could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    #[error("routing configuration is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

/// A validated routing configuration. The built-in `events` endpoint is implicit.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    endpoints: Vec<EndpointDefinition>,
    routes: Vec<RouteDefinition>,
    fallback: FallbackRoute,
}

/// A configured custom endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointDefinition {
    pub name: EndpointName,
    pub kind: EndpointKind,
}

/// What a custom endpoint delivers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointKind {
    Webhook(WebhookEndpoint),
    File(FileEndpoint),
}

impl EndpointKind {
    /// `webhook` or `file`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            EndpointKind::Webhook(_) => "webhook",
            EndpointKind::File(_) => "file",
        }
    }
}

/// An HTTP endpoint with its retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub url: WebhookUrl,
    /// Extra request headers, sorted by name.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub retry: RetryPolicy,
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    text: String,
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
}

impl WebhookUrl {
    /// Parses an absolute `http://host[:port][/path][?query]` URL. `https` is refused: the
    /// webhook sender speaks plain HTTP only.
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        let uri: Uri = text
            .parse()
            .map_err(|error| format!("not a URL ({error})"))?;
        match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => {}
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => {
                return Err("https is not supported, the webhook sender speaks plain http".into());
            }
            Some(scheme) => return Err(format!("unsupported scheme {scheme:?}, expected http")),
            None => return Err("expected an absolute http:// URL".into()),
        }
        let authority = uri.authority().ok_or("the URL has no host")?;
        if authority.as_str().contains('@') {
            return Err("credentials in the URL are not supported, use headers".into());
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        let port = authority.port_u16().unwrap_or(80);
        if port == 0 {
            return Err("port 0 is not a valid destination".into());
        }
        let path_and_query = uri
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str());
        let path_and_query = if path_and_query.is_empty() {
            "/"
        } else {
            path_and_query
        };
        Ok(WebhookUrl {
            text: text.to_owned(),
            host: host.to_owned(),
            port,
            authority: authority.as_str().to_owned(),
            path_and_query: path_and_query.to_owned(),
        })
    }

    /// The URL as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host to connect to (IPv6 literals without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `Host` header value.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The request target, e.g. `/alerts?x=1`.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }
}

/// How a webhook retries: up to `max_attempts` tries, waiting `initial_backoff` after the first
/// failure and doubling the wait each time up to `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// The limit on one attempt, connecting included.
    pub attempt_timeout: Duration,
}

impl RetryPolicy {
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
    pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
    pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
    const MAX_ATTEMPTS_LIMIT: u32 = 100;
    const MAX_BACKOFF_LIMIT: Duration = Duration::from_secs(3600);
    const MAX_TIMEOUT_LIMIT: Duration = Duration::from_secs(300);

    /// The wait after failed attempt number `failed_attempt` (1-based):
    /// `min(initial_backoff * 2^(failed_attempt - 1), max_backoff)`.
    pub fn backoff_after(&self, failed_attempt: u32) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1_u32 << doublings)
            .min(self.max_backoff)
    }
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: RetryPolicy::DEFAULT_MAX_ATTEMPTS,
            initial_backoff: RetryPolicy::DEFAULT_INITIAL_BACKOFF,
            max_backoff: RetryPolicy::DEFAULT_MAX_BACKOFF,
            attempt_timeout: RetryPolicy::DEFAULT_ATTEMPT_TIMEOUT,
        }
    }
}

/// A JSON-lines file endpoint; `relative_path` is `/`-separated, relative to the router's file
/// directory, and contains no `.` or `..` segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEndpoint {
    pub relative_path: String,
}

/// A named route.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteDefinition {
    pub name: RouteName,
    pub source: RoutingSource,
    pub condition: RouteCondition,
    /// The endpoints, without duplicates, in the order given.
    pub endpoint_names: Vec<EndpointName>,
    pub enabled: bool,
}

/// The fallback route. It only ever applies to [`RoutingSource::DeviceMessages`] and only ever
/// sends to `events`.
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackRoute {
    pub name: String,
    pub condition: RouteCondition,
    pub enabled: bool,
}

/// A compiled routing condition with its source text.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCondition {
    text: String,
    /// `None` for the literal `true`, which needs no evaluation.
    compiled: Option<Condition>,
    /// Whether the text may read the sender's twin (see [`RouteCondition::references_twin`]).
    references_twin: bool,
}

impl RouteCondition {
    /// The condition `true`.
    pub fn always() -> RouteCondition {
        RouteCondition {
            text: "true".to_owned(),
            compiled: None,
            references_twin: false,
        }
    }

    /// Parses a routing query condition.
    pub fn parse(text: &str) -> Result<RouteCondition, ParseError> {
        if text.trim().eq_ignore_ascii_case("true") {
            return Ok(RouteCondition {
                text: text.to_owned(),
                compiled: None,
                references_twin: false,
            });
        }
        Ok(RouteCondition {
            text: text.to_owned(),
            compiled: Some(Condition::parse(text)?),
            references_twin: mentions_twin(text),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether evaluating the condition may read the sender's twin (`$twin...`), so the caller
    /// must supply it. Conservative: true whenever `$twin` appears in the text (ASCII case
    /// ignored), even inside a string literal, which only costs an unneeded twin load. A `$twin`
    /// path always starts with that identifier verbatim, so no real reference is missed.
    pub fn references_twin(&self) -> bool {
        self.references_twin
    }

    /// Whether the condition is the literal `true`.
    pub fn is_always(&self) -> bool {
        self.compiled.is_none()
    }

    /// Whether `message` satisfies the condition (only a boolean `true` does).
    pub fn matches<M: MessageView + ?Sized>(&self, message: &M) -> bool {
        self.compiled
            .as_ref()
            .is_none_or(|condition| condition.evaluate(message))
    }
}

/// Whether `text` contains `$twin`, ignoring ASCII case.
fn mentions_twin(text: &str) -> bool {
    text.as_bytes()
        .windows(5)
        .any(|window| window.eq_ignore_ascii_case(b"$twin"))
}

impl Default for RoutingConfig {
    /// A new IoT Hub's routing: no custom endpoints, no routes, fallback route enabled, so every
    /// device message goes to `events`.
    fn default() -> RoutingConfig {
        RoutingConfig {
            endpoints: Vec::new(),
            routes: Vec::new(),
            fallback: FallbackRoute {
                name: FALLBACK_ROUTE_NAME.to_owned(),
                condition: RouteCondition::always(),
                enabled: true,
            },
        }
    }
}

// === impl RoutingConfig ===

impl RoutingConfig {
    /// Validates a routing document, reporting every problem found.
    pub fn from_document(document: &RoutingDocument) -> Result<RoutingConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let endpoints = validate_endpoints(&document.endpoints, &mut errors);
        let routes = validate_routes(&document.routes, &endpoints, &mut errors);
        let fallback = validate_fallback(document.fallback_route.as_ref(), &mut errors);
        if errors.is_empty() {
            Ok(RoutingConfig {
                endpoints,
                routes,
                fallback,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Parses and validates routing JSON.
    pub fn from_json(json: &[u8]) -> Result<RoutingConfig, ConfigLoadError> {
        let document: RoutingDocument = serde_json::from_slice(json)?;
        Ok(RoutingConfig::from_document(&document)?)
    }

    /// The configuration as a document, with every default spelt out.
    pub fn to_document(&self) -> RoutingDocument {
        let mut endpoints = EndpointsDocument::default();
        for endpoint in &self.endpoints {
            match &endpoint.kind {
                EndpointKind::Webhook(webhook) => {
                    endpoints.webhooks.push(WebhookEndpointDocument {
                        name: endpoint.name.to_string(),
                        url: webhook.url.as_str().to_owned(),
                        headers: webhook
                            .headers
                            .iter()
                            .map(|(name, value)| {
                                (
                                    name.as_str().to_owned(),
                                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                                )
                            })
                            .collect(),
                        max_attempts: Some(webhook.retry.max_attempts),
                        initial_backoff_ms: Some(duration_ms(webhook.retry.initial_backoff)),
                        max_backoff_ms: Some(duration_ms(webhook.retry.max_backoff)),
                        timeout_ms: Some(duration_ms(webhook.retry.attempt_timeout)),
                    })
                }
                EndpointKind::File(file) => endpoints.files.push(FileEndpointDocument {
                    name: endpoint.name.to_string(),
                    path: file.relative_path.clone(),
                }),
            }
        }
        RoutingDocument {
            endpoints,
            routes: self
                .routes
                .iter()
                .map(|route| RouteDocument {
                    name: route.name.to_string(),
                    source: route.source.as_str().to_owned(),
                    condition: Some(route.condition.text().to_owned()),
                    endpoint_names: route
                        .endpoint_names
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    is_enabled: route.enabled,
                })
                .collect(),
            fallback_route: Some(FallbackRouteDocument {
                name: Some(self.fallback.name.clone()),
                source: Some(RoutingSource::DeviceMessages.as_str().to_owned()),
                condition: Some(self.fallback.condition.text().to_owned()),
                endpoint_names: Some(vec![EndpointName::EVENTS.to_owned()]),
                is_enabled: self.fallback.enabled,
            }),
        }
    }

    /// The custom endpoints, webhooks first, each kind in document order.
    pub fn endpoints(&self) -> &[EndpointDefinition] {
        &self.endpoints
    }

    pub fn routes(&self) -> &[RouteDefinition] {
        &self.routes
    }

    pub fn fallback(&self) -> &FallbackRoute {
        &self.fallback
    }

    /// The custom endpoint named `name`, if any.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointDefinition> {
        self.endpoints
            .iter()
            .find(|endpoint| endpoint.name.as_str() == name)
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn validate_endpoints(
    document: &EndpointsDocument,
    errors: &mut Vec<ConfigError>,
) -> Vec<EndpointDefinition> {
    let count = document.webhooks.len() + document.files.len();
    if count > MAX_CUSTOM_ENDPOINTS {
        errors.push(ConfigError::TooManyEndpoints {
            count,
            limit: MAX_CUSTOM_ENDPOINTS,
        });
    }
    let mut seen_names = HashSet::new();
    let mut seen_paths: Vec<(String, String)> = Vec::new();
    let mut endpoints = Vec::with_capacity(count);
    let mut check_name = |raw: &str, errors: &mut Vec<ConfigError>| -> Option<EndpointName> {
        let name = match EndpointName::new(raw) {
            Ok(name) => name,
            Err(error) => {
                errors.push(ConfigError::InvalidEndpointName {
                    name: raw.to_owned(),
                    error,
                });
                return None;
            }
        };
        if name.is_reserved() {
            errors.push(ConfigError::ReservedEndpointName {
                name: raw.to_owned(),
            });
            return None;
        }
        if !seen_names.insert(raw.to_ascii_lowercase()) {
            errors.push(ConfigError::DuplicateEndpointName {
                name: raw.to_owned(),
            });
            return None;
        }
        Some(name)
    };
    for webhook in &document.webhooks {
        let name = check_name(&webhook.name, errors);
        let endpoint = validate_webhook(webhook, errors);
        if let (Some(name), Some(endpoint)) = (name, endpoint) {
            endpoints.push(EndpointDefinition {
                name,
                kind: EndpointKind::Webhook(endpoint),
            });
        }
    }
    for file in &document.files {
        let name = check_name(&file.name, errors);
        let path = match validate_file_path(&file.path) {
            Ok(path) => Some(path),
            Err(reason) => {
                errors.push(ConfigError::InvalidFilePath {
                    endpoint: file.name.clone(),
                    path: file.path.clone(),
                    reason,
                });
                None
            }
        };
        if let Some(path) = &path {
            if let Some((_, other)) = seen_paths.iter().find(|(seen, _)| seen == path) {
                errors.push(ConfigError::DuplicateFilePath {
                    endpoint: file.name.clone(),
                    path: file.path.clone(),
                    other: other.clone(),
                });
                continue;
            }
            seen_paths.push((path.clone(), file.name.clone()));
        }
        if let (Some(name), Some(relative_path)) = (name, path) {
            endpoints.push(EndpointDefinition {
                name,
                kind: EndpointKind::File(FileEndpoint { relative_path }),
            });
        }
    }
    endpoints
}

fn validate_webhook(
    document: &WebhookEndpointDocument,
    errors: &mut Vec<ConfigError>,
) -> Option<WebhookEndpoint> {
    let errors_before = errors.len();
    let url = WebhookUrl::parse(&document.url)
        .map_err(|reason| {
            errors.push(ConfigError::InvalidUrl {
                endpoint: document.name.clone(),
                url: document.url.clone(),
                reason,
            })
        })
        .ok();
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(document.headers.len());
    for (raw_name, raw_value) in &document.headers {
        let header_error = |reason: String| ConfigError::InvalidHeader {
            endpoint: document.name.clone(),
            header: raw_name.clone(),
            reason,
        };
        let name = match HeaderName::from_bytes(raw_name.as_bytes()) {
            Ok(name) => name,
            Err(_) => {
                errors.push(header_error("not a valid header name".into()));
                continue;
            }
        };
        if RESERVED_HEADERS.contains(&name.as_str()) {
            errors.push(header_error("the webhook sender sets this header".into()));
            continue;
        }
        if headers.iter().any(|(existing, _)| *existing == name) {
            errors.push(header_error(
                "given more than once (names ignore case)".into(),
            ));
            continue;
        }
        match HeaderValue::from_str(raw_value) {
            Ok(value) => headers.push((name, value)),
            Err(_) => errors.push(header_error(
                "the value must be visible ASCII, spaces or tabs".into(),
            )),
        }
    }
    headers.sort_by(|(left, _), (right, _)| left.as_str().cmp(right.as_str()));
    let defaults = RetryPolicy::default();
    let retry = RetryPolicy {
        max_attempts: document.max_attempts.unwrap_or(defaults.max_attempts),
        initial_backoff: document
            .initial_backoff_ms
            .map_or(defaults.initial_backoff, Duration::from_millis),
        max_backoff: document
            .max_backoff_ms
            .map_or(defaults.max_backoff, Duration::from_millis),
        attempt_timeout: document
            .timeout_ms
            .map_or(defaults.attempt_timeout, Duration::from_millis),
    };
    let retry_error = |reason: String| ConfigError::InvalidRetryPolicy {
        endpoint: document.name.clone(),
        reason,
    };
    if !(1..=RetryPolicy::MAX_ATTEMPTS_LIMIT).contains(&retry.max_attempts) {
        errors.push(retry_error(format!(
            "maxAttempts is {}, expected 1 to {}",
            retry.max_attempts,
            RetryPolicy::MAX_ATTEMPTS_LIMIT
        )));
    }
    if retry.max_backoff > RetryPolicy::MAX_BACKOFF_LIMIT {
        errors.push(retry_error(format!(
            "maxBackoffMs is {}, the limit is {}",
            duration_ms(retry.max_backoff),
            duration_ms(RetryPolicy::MAX_BACKOFF_LIMIT)
        )));
    }
    if retry.initial_backoff > retry.max_backoff {
        errors.push(retry_error(format!(
            "initialBackoffMs ({}) is greater than maxBackoffMs ({})",
            duration_ms(retry.initial_backoff),
            duration_ms(retry.max_backoff)
        )));
    }
    if retry.attempt_timeout.is_zero() || retry.attempt_timeout > RetryPolicy::MAX_TIMEOUT_LIMIT {
        errors.push(retry_error(format!(
            "timeoutMs is {}, expected 1 to {}",
            duration_ms(retry.attempt_timeout),
            duration_ms(RetryPolicy::MAX_TIMEOUT_LIMIT)
        )));
    }
    if errors.len() > errors_before {
        return None;
    }
    Some(WebhookEndpoint {
        url: url?,
        headers,
        retry,
    })
}

/// Checks a file endpoint path: relative, `/`-separated, every segment made of
/// `[A-Za-z0-9._-]` and none of them `.` or `..`. Returns the path without empty segments.
fn validate_file_path(path: &str) -> Result<String, String> {
    if path.len() > 1024 {
        return Err(format!("{} bytes long, the limit is 1024", path.len()));
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return Err("must be relative to the router's file directory".into());
    }
    let mut segments = Vec::new();
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        if segment == "." || segment == ".." {
            return Err("must not contain '.' or '..' segments".into());
        }
        if let Some(character) = segment
            .chars()
            .find(|character| !(character.is_ascii_alphanumeric() || "._-".contains(*character)))
        {
            return Err(format!(
                "contains {character:?}; segments may only use ASCII letters, digits, '.', '_' and '-'"
            ));
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        return Err("must name a file".into());
    }
    Ok(segments.join("/"))
}

fn validate_routes(
    documents: &[RouteDocument],
    endpoints: &[EndpointDefinition],
    errors: &mut Vec<ConfigError>,
) -> Vec<RouteDefinition> {
    if documents.len() > MAX_ROUTES {
        errors.push(ConfigError::TooManyRoutes {
            count: documents.len(),
            limit: MAX_ROUTES,
        });
    }
    let mut seen_names = HashSet::new();
    let mut routes = Vec::with_capacity(documents.len());
    for document in documents {
        let errors_before = errors.len();
        let route_label = document.name.clone();
        let name = match RouteName::new(&document.name) {
            Ok(name) => Some(name),
            Err(error) => {
                errors.push(ConfigError::InvalidRouteName {
                    name: document.name.clone(),
                    error,
                });
                None
            }
        };
        if name.is_some() && !seen_names.insert(document.name.to_ascii_lowercase()) {
            errors.push(ConfigError::DuplicateRouteName {
                name: document.name.clone(),
            });
        }
        let source = RoutingSource::parse(&document.source);
        if source.is_none() {
            errors.push(ConfigError::UnknownSource {
                route: route_label.clone(),
                source_name: document.source.clone(),
            });
        }
        let condition = validate_condition(&route_label, document.condition.as_deref(), errors);
        if document.endpoint_names.is_empty() {
            errors.push(ConfigError::NoEndpoints {
                route: route_label.clone(),
            });
        }
        let mut endpoint_names: Vec<EndpointName> = Vec::new();
        for raw in &document.endpoint_names {
            let known = if raw == EndpointName::EVENTS {
                Some(EndpointName::events())
            } else {
                endpoints
                    .iter()
                    .find(|endpoint| endpoint.name.as_str() == raw)
                    .map(|endpoint| endpoint.name.clone())
            };
            match known {
                Some(name) if !endpoint_names.contains(&name) => endpoint_names.push(name),
                Some(_) => {}
                None => errors.push(ConfigError::UnknownEndpoint {
                    route: route_label.clone(),
                    endpoint: raw.clone(),
                }),
            }
        }
        if errors.len() > errors_before {
            continue;
        }
        if let (Some(name), Some(source), Some(condition)) = (name, source, condition) {
            routes.push(RouteDefinition {
                name,
                source,
                condition,
                endpoint_names,
                enabled: document.is_enabled,
            });
        }
    }
    routes
}

fn validate_condition(
    route: &str,
    text: Option<&str>,
    errors: &mut Vec<ConfigError>,
) -> Option<RouteCondition> {
    let Some(text) = text else {
        return Some(RouteCondition::always());
    };
    if text.len() > MAX_CONDITION_LENGTH {
        errors.push(ConfigError::ConditionTooLong {
            route: route.to_owned(),
            length: text.len(),
            limit: MAX_CONDITION_LENGTH,
        });
        return None;
    }
    match RouteCondition::parse(text) {
        Ok(condition) => Some(condition),
        Err(error) => {
            errors.push(ConfigError::InvalidCondition {
                route: route.to_owned(),
                condition: text.to_owned(),
                rendered: error.render(text).trim_end().to_owned(),
                error,
            });
            None
        }
    }
}

fn validate_fallback(
    document: Option<&FallbackRouteDocument>,
    errors: &mut Vec<ConfigError>,
) -> FallbackRoute {
    let Some(document) = document else {
        return RoutingConfig::default().fallback;
    };
    let name = document
        .name
        .clone()
        .unwrap_or_else(|| FALLBACK_ROUTE_NAME.to_owned());
    if name.is_empty()
        || name.len() > crate::names::MAX_NAME_LENGTH
        || name.chars().any(char::is_control)
    {
        errors.push(ConfigError::InvalidFallbackRoute {
            reason: format!("name {name:?} must be 1 to 64 characters without control characters"),
        });
    }
    if let Some(source) = &document.source
        && RoutingSource::parse(source) != Some(RoutingSource::DeviceMessages)
    {
        errors.push(ConfigError::InvalidFallbackRoute {
            reason: format!("source is {source:?}, only DeviceMessages is allowed"),
        });
    }
    if let Some(endpoint_names) = &document.endpoint_names
        && endpoint_names.as_slice() != [EndpointName::EVENTS]
    {
        errors.push(ConfigError::InvalidFallbackRoute {
            reason: format!("endpointNames is {endpoint_names:?}, only [\"events\"] is allowed"),
        });
    }
    let condition = validate_condition(&name, document.condition.as_deref(), errors)
        .unwrap_or_else(RouteCondition::always);
    FallbackRoute {
        name,
        condition,
        enabled: document.is_enabled,
    }
}
