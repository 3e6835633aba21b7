//! Parse errors with byte spans and a caret diagram renderer.

use std::fmt::Write as _;

/// A half-open byte range `start..end` into the parsed source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// A syntax or validation error found while parsing a query, condition or route.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind} at byte {}", span.start)]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub span: Span,
}

/// What went wrong; the [`ParseError`] carries where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("input is {length} bytes long, the limit is {limit}")]
    InputTooLong { length: usize, limit: usize },
    #[error("unexpected character {0:?}")]
    UnexpectedCharacter(char),
    #[error("unterminated string literal")]
    UnterminatedString,
    #[error("unterminated comment")]
    UnterminatedComment,
    #[error("invalid escape sequence in string literal")]
    InvalidEscape,
    #[error("invalid number literal")]
    InvalidNumber,
    #[error("expected {expected}, found {found}")]
    Unexpected {
        expected: &'static str,
        found: String,
    },
    #[error("unknown function `{0}`")]
    UnknownFunction(String),
    #[error("function `{name}` takes {expected} arguments, found {found}")]
    WrongArgumentCount {
        name: &'static str,
        expected: &'static str,
        found: usize,
    },
    #[error("expression nesting exceeds the limit of {limit}")]
    TooDeep { limit: usize },
    #[error("{0}")]
    Invalid(String),
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, span: Span) -> ParseError {
        ParseError { kind, span }
    }

    pub(crate) fn invalid(message: impl Into<String>, span: Span) -> ParseError {
        ParseError::new(ParseErrorKind::Invalid(message.into()), span)
    }

    /// Renders the error with the offending source line and a caret underline, e.g.
    ///
    /// ```text
    /// error: expected expression, found end of input
    ///  --> 1:28
    ///   |
    /// 1 | SELECT * FROM devices WHERE
    ///   |                            ^
    /// ```
    ///
    /// Spans outside the source or inside a multi-byte character are clamped, so any span renders.
    pub fn render(&self, source: &str) -> String {
        let start = floor_char_boundary(source, self.span.start);
        let end = floor_char_boundary(source, self.span.end.max(self.span.start)).max(start);
        let line_start = source[..start].rfind('\n').map_or(0, |index| index + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |index| start + index);
        let line_number = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let line_text: String = source[line_start..line_end]
            .chars()
            .map(|character| {
                if character.is_control() {
                    ' '
                } else {
                    character
                }
            })
            .collect();
        let underline_end = end.min(line_end);
        let caret_count = source[start..underline_end].chars().count().max(1);
        let gutter = line_number.to_string();
        let padding = " ".repeat(gutter.len());
        let mut rendered = String::new();
        let _ = writeln!(rendered, "error: {}", self.kind);
        let _ = writeln!(rendered, "{padding}--> {line_number}:{column}");
        let _ = writeln!(rendered, "{padding} |");
        let _ = writeln!(rendered, "{gutter} | {line_text}");
        let _ = writeln!(
            rendered,
            "{padding} | {}{}",
            " ".repeat(column - 1),
            "^".repeat(caret_count)
        );
        rendered
    }
}

/// The largest char boundary of `text` that is at most `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    if index >= text.len() {
        return text.len();
    }
    let mut boundary = index;
    while !text.is_char_boundary(boundary) {
        boundary -= 1;
    }
    boundary
}
