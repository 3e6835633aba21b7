//! Splitting topics into path segments and the `?$rid=..&$version=..` query used by twin and method topics.

/// The keys of a twin or method topic query that the hub cares about; other keys are tolerated.
/// Values are kept raw (not percent-decoded) so a `$rid` is echoed back byte for byte.
#[derive(Debug, Default)]
pub(crate) struct TopicQuery<'topic> {
    pub(crate) request_id: Option<&'topic str>,
    pub(crate) version: Option<&'topic str>,
}

/// Splits `topic` at the first `?` into the path (without one trailing `/`) and the query, if any.
pub(crate) fn split_path_and_query(topic: &str) -> (&str, Option<&str>) {
    let (path, query) = match topic.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (topic, None),
    };
    (path.strip_suffix('/').unwrap_or(path), query)
}

/// Parses `k=v&k=v`; pairs without `=` and unknown keys are ignored, and a repeated key keeps the last value.
pub(crate) fn parse_query(query: Option<&str>) -> TopicQuery<'_> {
    let mut parsed = TopicQuery::default();
    for pair in query.unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("$rid", value)) => parsed.request_id = Some(value),
            Some(("$version", value)) => parsed.version = Some(value),
            _ => {}
        }
    }
    parsed
}

/// Where the property bag of a `devices/...` topic starts: `rest` must be empty (no bag), or `/` followed
/// by the raw bag. Returns `None` when `rest` continues the path some other way.
pub(crate) fn bag_after(rest: &str) -> Option<&str> {
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}
