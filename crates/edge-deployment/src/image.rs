//! Container image references as `settings.image` writes them.

use std::fmt;

const UPSTREAM_PREFIX: &str = "$upstream";

/// Why `settings.image` is not a usable image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageReferenceError {
    #[error("the image must not be empty")]
    Empty,
    #[error("the image {image:?} contains whitespace or a control character")]
    InvalidCharacter { image: String },
    #[error(
        "the image {image:?} starts with '$' but is not $upstream:<port>/<repository>; only $upstream with a port is substituted"
    )]
    InvalidUpstream { image: String },
    #[error("the image {image:?} is not in the [registry/]repository[:tag] format")]
    InvalidFormat { image: String },
}

/// A validated image reference, normalized as Azure's edgeAgent does: surrounding whitespace is
/// trimmed and `:latest` is appended when the last path segment has no tag.
///
/// A reference may start with `$upstream:<port>/`, which names the parent device in nested
/// deployments; [`ImageReference::resolve_upstream`] substitutes the parent's host name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageReference(String);

impl ImageReference {
    /// Validates and normalizes `image`.
    pub fn parse(image: &str) -> Result<ImageReference, ImageReferenceError> {
        let image = image.trim();
        if image.is_empty() {
            return Err(ImageReferenceError::Empty);
        }
        if image
            .chars()
            .any(|character| character.is_whitespace() || character.is_control())
        {
            return Err(ImageReferenceError::InvalidCharacter {
                image: image.to_owned(),
            });
        }
        if image.starts_with('$') {
            let valid_upstream = image
                .strip_prefix(UPSTREAM_PREFIX)
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|rest| rest.chars().next())
                .is_some_and(|first| matches!(first, '1'..='9'));
            if !valid_upstream {
                return Err(ImageReferenceError::InvalidUpstream {
                    image: image.to_owned(),
                });
            }
        }
        let last_segment = image.rsplit('/').next().unwrap_or(image);
        let (repository, tag) = match last_segment.split_once(':') {
            Some((repository, tag)) => (repository, Some(tag)),
            None => (last_segment, None),
        };
        let tag_is_valid = tag.is_none_or(|tag| !tag.is_empty() && !tag.contains(':'));
        if repository.is_empty() || !tag_is_valid {
            return Err(ImageReferenceError::InvalidFormat {
                image: image.to_owned(),
            });
        }
        if tag.is_some() {
            Ok(ImageReference(image.to_owned()))
        } else {
            Ok(ImageReference(format!("{image}:latest")))
        }
    }

    /// The normalized reference, `$upstream` left as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the reference starts with `$upstream:<port>/`.
    pub fn uses_upstream(&self) -> bool {
        self.0.starts_with(UPSTREAM_PREFIX)
    }

    /// The reference with a leading `$upstream` replaced by `parent_hostname`; unchanged otherwise.
    pub fn resolve_upstream(&self, parent_hostname: &str) -> String {
        match self.0.strip_prefix(UPSTREAM_PREFIX) {
            Some(rest) => format!("{parent_hostname}{rest}"),
            None => self.0.clone(),
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(image: &str, expect: Expect) {
        let rendered = match ImageReference::parse(image) {
            Ok(reference) => format!(
                "ok {reference} upstream={} resolved={}",
                reference.uses_upstream(),
                reference.resolve_upstream("parent.local")
            ),
            Err(error) => format!("error: {error}"),
        };
        expect.assert_eq(&rendered);
    }

    #[test]
    fn image_references() {
        check(
            "mcr.microsoft.com/azureiotedge-hub:1.5",
            expect![
                "ok mcr.microsoft.com/azureiotedge-hub:1.5 upstream=false resolved=mcr.microsoft.com/azureiotedge-hub:1.5"
            ],
        );
        check(
            " alpine ",
            expect!["ok alpine:latest upstream=false resolved=alpine:latest"],
        );
        check(
            "localhost:5000/sensor",
            expect![
                "ok localhost:5000/sensor:latest upstream=false resolved=localhost:5000/sensor:latest"
            ],
        );
        check(
            "repo@sha256:abcdef",
            expect!["ok repo@sha256:abcdef upstream=false resolved=repo@sha256:abcdef"],
        );
        check(
            "$upstream:443/azureiotedge-agent:1.5",
            expect![
                "ok $upstream:443/azureiotedge-agent:1.5 upstream=true resolved=parent.local:443/azureiotedge-agent:1.5"
            ],
        );
        check(
            "$upstream/agent",
            expect![[
                r#"error: the image "$upstream/agent" starts with '$' but is not $upstream:<port>/<repository>; only $upstream with a port is substituted"#
            ]],
        );
        check(
            "$HOME/agent",
            expect![[
                r#"error: the image "$HOME/agent" starts with '$' but is not $upstream:<port>/<repository>; only $upstream with a port is substituted"#
            ]],
        );
        check("", expect!["error: the image must not be empty"]);
        check(
            "a b",
            expect![[r#"error: the image "a b" contains whitespace or a control character"#]],
        );
        check(
            "repo/",
            expect![[
                r#"error: the image "repo/" is not in the [registry/]repository[:tag] format"#
            ]],
        );
        check(
            "repo:",
            expect![[
                r#"error: the image "repo:" is not in the [registry/]repository[:tag] format"#
            ]],
        );
        check(
            "repo:a:b",
            expect![[
                r#"error: the image "repo:a:b" is not in the [registry/]repository[:tag] format"#
            ]],
        );
    }
}
