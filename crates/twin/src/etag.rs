//! Twin etags and `If-Match` evaluation (pure functions; the HTTP layer only passes header text).

use std::fmt;

use base64::Engine;

/// A twin etag: IoT Hub renders a counter as the base64 of its 8 big-endian bytes, so counter 7
/// is `AAAAAAAAAAc=`. The counter moves on every change to tags or desired properties; reported
/// property writes leave it alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TwinEtag(u64);

/// A parsed `If-Match` header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current etag matches.
    Any,
    /// One or more entity tags, with quotes and any `W/` prefix removed.
    Etags(Vec<String>),
}

/// The `If-Match` precondition failed (HTTP 412).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "precondition failed: If-Match {if_match:?} does not match the current etag {current_etag:?}"
)]
pub struct EtagMismatch {
    /// The header value as the client sent it.
    pub if_match: String,
    /// The etag the resource has now.
    pub current_etag: String,
}

// === impl TwinEtag ===

impl TwinEtag {
    /// The etag for counter value `counter`.
    pub fn from_counter(counter: u64) -> TwinEtag {
        TwinEtag(counter)
    }

    /// The counter behind the etag.
    pub fn counter(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TwinEtag {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0.to_be_bytes()))
    }
}

// === impl IfMatch ===

impl IfMatch {
    /// Parses an `If-Match` header the way the hub must accept it from every SDK: each
    /// comma-separated entry loses surrounding whitespace, a `W/` prefix and one pair of
    /// surrounding double quotes; an entry equal to `*` makes the whole header match anything.
    /// The device and twin calls of `azure-iot-hub` quote the etag, configuration calls do not.
    pub fn parse(header: &str) -> IfMatch {
        let mut etags = Vec::new();
        for entry in header.split(',') {
            let entry = entry.trim();
            // `W/` marks a weak tag only in front of a quoted tag: a bare base64 etag may
            // itself begin with `W/` (the counter 6624795051861999616 does).
            let entry = match entry.strip_prefix("W/") {
                Some(rest) if rest.starts_with('"') => rest,
                _ => entry,
            };
            let entry = entry
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
                .unwrap_or(entry);
            if entry == "*" {
                return IfMatch::Any;
            }
            etags.push(entry.to_owned());
        }
        IfMatch::Etags(etags)
    }

    /// Whether a resource whose etag is `current_etag` satisfies this precondition.
    pub fn matches(&self, current_etag: &str) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Etags(etags) => etags.iter().any(|etag| etag == current_etag),
        }
    }
}

/// Evaluates an optional `If-Match` header against a resource's current etag. A missing header
/// is no precondition; callers that need create-only semantics for a missing header (registry
/// `PUT`) check for `None` themselves.
pub fn check_if_match(header: Option<&str>, current_etag: &str) -> Result<(), EtagMismatch> {
    match header {
        Some(text) if !IfMatch::parse(text).matches(current_etag) => Err(EtagMismatch {
            if_match: text.to_owned(),
            current_etag: current_etag.to_owned(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(header: Option<&str>, current_etag: &str, expect: Expect) {
        let parsed = header.map(IfMatch::parse);
        let outcome = match check_if_match(header, current_etag) {
            Ok(()) => "ok".to_owned(),
            Err(error) => format!("412: {error}"),
        };
        expect.assert_eq(&format!("{parsed:?} -> {outcome}"));
    }

    #[test]
    fn etag_renders_as_base64_of_big_endian_counter() {
        let rendered: Vec<String> = [0, 1, 7, 256, u64::MAX]
            .into_iter()
            .map(|counter| TwinEtag::from_counter(counter).to_string())
            .collect();
        expect![[
            r#"["AAAAAAAAAAA=", "AAAAAAAAAAE=", "AAAAAAAAAAc=", "AAAAAAAAAQA=", "//////////8="]"#
        ]]
        .assert_eq(&format!("{rendered:?}"));
    }

    #[test]
    fn if_match_forms() {
        check(None, "AAAAAAAAAAc=", expect!["None -> ok"]);
        check(
            Some("\"AAAAAAAAAAc=\""),
            "AAAAAAAAAAc=",
            expect![[r#"Some(Etags(["AAAAAAAAAAc="])) -> ok"#]],
        );
        check(
            Some("AAAAAAAAAAc="),
            "AAAAAAAAAAc=",
            expect![[r#"Some(Etags(["AAAAAAAAAAc="])) -> ok"#]],
        );
        check(
            Some("W/\"AAAAAAAAAAc=\""),
            "AAAAAAAAAAc=",
            expect![[r#"Some(Etags(["AAAAAAAAAAc="])) -> ok"#]],
        );
        check(Some("\"*\""), "AAAAAAAAAAc=", expect!["Some(Any) -> ok"]);
        check(Some("*"), "AAAAAAAAAAc=", expect!["Some(Any) -> ok"]);
        check(
            Some("\"a\", \"AAAAAAAAAAc=\""),
            "AAAAAAAAAAc=",
            expect![[r#"Some(Etags(["a", "AAAAAAAAAAc="])) -> ok"#]],
        );
        check(
            Some("\"AAAAAAAAAAE=\""),
            "AAAAAAAAAAc=",
            expect![[
                r#"Some(Etags(["AAAAAAAAAAE="])) -> 412: precondition failed: If-Match "\"AAAAAAAAAAE=\"" does not match the current etag "AAAAAAAAAAc=""#
            ]],
        );
        check(
            Some(""),
            "AAAAAAAAAAc=",
            expect![[
                r#"Some(Etags([""])) -> 412: precondition failed: If-Match "" does not match the current etag "AAAAAAAAAAc=""#
            ]],
        );
    }
}
