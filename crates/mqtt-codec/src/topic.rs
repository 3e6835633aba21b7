//! Topic name and topic filter rules of MQTT 3.1.1 section 4.7, and filter matching.

/// Why a topic name or topic filter is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Topic names and filters must be at least one character long.
    #[error("topic is empty")]
    Empty,
    /// Topic names and filters are MQTT strings of at most 65535 bytes.
    #[error("topic is {length} bytes long, more than 65535")]
    TooLong { length: usize },
    /// U+0000 is forbidden in every MQTT string.
    #[error("topic contains U+0000")]
    NullCharacter,
    /// A topic name (as opposed to a filter) must not contain `+` or `#`.
    #[error("topic name contains a wildcard character")]
    WildcardInTopicName,
    /// `+` must occupy an entire level of a filter.
    #[error("'+' does not occupy an entire topic level")]
    MisplacedSingleLevelWildcard,
    /// `#` must occupy an entire level and be the last level of a filter.
    #[error("'#' is not alone in the last topic level")]
    MisplacedMultiLevelWildcard,
}

const MAX_STRING_LENGTH: usize = u16::MAX as usize;

fn validate_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > MAX_STRING_LENGTH {
        return Err(TopicError::TooLong {
            length: topic.len(),
        });
    }
    if topic.as_bytes().contains(&0) {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

/// Checks a topic name as carried by PUBLISH and by a will: non-empty, at most 65535 bytes,
/// no U+0000 and no wildcard characters.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    validate_common(topic)?;
    if topic.bytes().any(|byte| byte == b'+' || byte == b'#') {
        return Err(TopicError::WildcardInTopicName);
    }
    Ok(())
}

/// Checks a topic filter as carried by SUBSCRIBE and UNSUBSCRIBE: non-empty, at most 65535 bytes,
/// no U+0000, `+` only as a whole level and `#` only as the whole last level.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    validate_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MisplacedMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

/// Whether the topic name `topic` matches the (valid) topic filter `filter`.
///
/// Follows MQTT 3.1.1 section 4.7: `+` matches exactly one level (possibly empty), `#` matches the
/// parent level and any number of child levels, and a filter starting with a wildcard does not
/// match topic names starting with `$` (such as `$SYS/...`).
pub fn topic_matches_filter(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(filter_level), Some(topic_level)) if filter_level == topic_level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}
