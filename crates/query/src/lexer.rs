//! The hand-written, on-demand lexer. It produces one token at a time so that the route parser
//! can switch to raw scanning for `FROM` paths in the middle of a statement.

use crate::error::{ParseError, ParseErrorKind, Span};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// An identifier or keyword; its text is the token's source slice. May start with `$`.
    Identifier,
    Number(f64),
    String(String),
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    Comma,
    Dot,
    Star,
    Plus,
    Minus,
    Slash,
    Percent,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    /// `||`, string concatenation.
    Concat,
    /// `??`, the undefined-coalescing operator.
    Coalesce,
    EndOfInput,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

impl TokenKind {
    /// A short description for "expected X, found Y" messages.
    pub(crate) fn describe(&self, text: &str) -> String {
        match self {
            TokenKind::Identifier => format!("`{text}`"),
            TokenKind::Number(_) => format!("number `{text}`"),
            TokenKind::String(_) => "string literal".to_string(),
            TokenKind::EndOfInput => "end of input".to_string(),
            _ => format!("`{text}`"),
        }
    }
}

pub(crate) struct Lexer<'s> {
    source: &'s str,
    position: usize,
}

impl<'s> Lexer<'s> {
    pub(crate) fn new(source: &'s str) -> Lexer<'s> {
        Lexer {
            source,
            position: 0,
        }
    }

    /// Moves the cursor to `position`, which must be a char boundary.
    pub(crate) fn reset_to(&mut self, position: usize) {
        self.position = position.min(self.source.len());
    }

    fn peek_char(&self) -> Option<char> {
        self.source[self.position..].chars().next()
    }

    fn peek_second_char(&self) -> Option<char> {
        let mut characters = self.source[self.position..].chars();
        characters.next();
        characters.next()
    }

    /// Skips whitespace and `/* ... */` comments.
    pub(crate) fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek_char() {
                Some(character) if character.is_whitespace() => {
                    self.position += character.len_utf8();
                }
                Some('/') if self.peek_second_char() == Some('*') => {
                    let comment_start = self.position;
                    match self.source[self.position + 2..].find("*/") {
                        Some(offset) => self.position += 2 + offset + 2,
                        None => {
                            return Err(ParseError::new(
                                ParseErrorKind::UnterminatedComment,
                                Span::new(comment_start, self.source.len()),
                            ));
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_trivia()?;
        let start = self.position;
        let Some(character) = self.peek_char() else {
            return Ok(Token {
                kind: TokenKind::EndOfInput,
                span: Span::new(start, start),
            });
        };
        let single = |lexer: &mut Lexer<'_>, kind: TokenKind, length: usize| {
            lexer.position += length;
            Ok(Token {
                kind,
                span: Span::new(start, start + length),
            })
        };
        let second = self.peek_second_char();
        match character {
            '(' => single(self, TokenKind::LeftParen, 1),
            ')' => single(self, TokenKind::RightParen, 1),
            '[' => single(self, TokenKind::LeftBracket, 1),
            ']' => single(self, TokenKind::RightBracket, 1),
            ',' => single(self, TokenKind::Comma, 1),
            '.' => single(self, TokenKind::Dot, 1),
            '*' => single(self, TokenKind::Star, 1),
            '+' => single(self, TokenKind::Plus, 1),
            '-' => single(self, TokenKind::Minus, 1),
            '/' => single(self, TokenKind::Slash, 1),
            '%' => single(self, TokenKind::Percent, 1),
            '=' if second == Some('=') => single(self, TokenKind::Equal, 2),
            '=' => single(self, TokenKind::Equal, 1),
            '!' if second == Some('=') => single(self, TokenKind::NotEqual, 2),
            '<' if second == Some('>') => single(self, TokenKind::NotEqual, 2),
            '<' if second == Some('=') => single(self, TokenKind::LessEqual, 2),
            '<' => single(self, TokenKind::Less, 1),
            '>' if second == Some('=') => single(self, TokenKind::GreaterEqual, 2),
            '>' => single(self, TokenKind::Greater, 1),
            '|' if second == Some('|') => single(self, TokenKind::Concat, 2),
            '?' if second == Some('?') => single(self, TokenKind::Coalesce, 2),
            '\'' | '"' => self.lex_string(character),
            '0'..='9' => self.lex_number(),
            _ if is_identifier_start(character) => Ok(self.lex_identifier()),
            _ => Err(ParseError::new(
                ParseErrorKind::UnexpectedCharacter(character),
                Span::new(start, start + character.len_utf8()),
            )),
        }
    }

    fn lex_identifier(&mut self) -> Token {
        let start = self.position;
        let dollar_prefixed = self.source[start..].starts_with('$');
        let bytes = self.source.as_bytes();
        let mut characters = self.source[start..].char_indices().peekable();
        let mut end = start;
        while let Some((offset, character)) = characters.next() {
            let continues = is_identifier_continue(character)
                || (offset == 0 && character == '$')
                // System property names such as `$iothub-enqueuedtime` contain hyphens.
                || (dollar_prefixed
                    && character == '-'
                    && characters
                        .peek()
                        .is_some_and(|(_, next)| next.is_alphanumeric()));
            if !continues {
                break;
            }
            end = start + offset + character.len_utf8();
        }
        debug_assert!(end <= bytes.len());
        self.position = end;
        Token {
            kind: TokenKind::Identifier,
            span: Span::new(start, end),
        }
    }

    fn lex_number(&mut self) -> Result<Token, ParseError> {
        let start = self.position;
        let bytes = self.source.as_bytes();
        let mut end = start;
        let is_hex = bytes[start] == b'0' && matches!(bytes.get(start + 1), Some(b'x' | b'X'));
        let value = if is_hex {
            end += 2;
            while end < bytes.len() && bytes[end].is_ascii_hexdigit() {
                end += 1;
            }
            u64::from_str_radix(&self.source[start + 2..end], 16)
                .ok()
                .map(|integer| integer as f64)
        } else {
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            if end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
                end += 1;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
            }
            if end < bytes.len() && matches!(bytes[end], b'e' | b'E') {
                let mut exponent_end = end + 1;
                if exponent_end < bytes.len() && matches!(bytes[exponent_end], b'+' | b'-') {
                    exponent_end += 1;
                }
                if exponent_end < bytes.len() && bytes[exponent_end].is_ascii_digit() {
                    while exponent_end < bytes.len() && bytes[exponent_end].is_ascii_digit() {
                        exponent_end += 1;
                    }
                    end = exponent_end;
                }
            }
            self.source[start..end]
                .parse::<f64>()
                .ok()
                .filter(|number| number.is_finite())
        };
        // A number glued to identifier characters (`12abc`, `0x`) is malformed.
        let mut malformed_end = end;
        while let Some(character) = self.source[malformed_end..].chars().next() {
            if !is_identifier_continue(character) {
                break;
            }
            malformed_end += character.len_utf8();
        }
        self.position = malformed_end;
        match value {
            Some(number) if malformed_end == end => Ok(Token {
                kind: TokenKind::Number(number),
                span: Span::new(start, end),
            }),
            _ => Err(ParseError::new(
                ParseErrorKind::InvalidNumber,
                Span::new(start, malformed_end),
            )),
        }
    }

    fn lex_string(&mut self, quote: char) -> Result<Token, ParseError> {
        let start = self.position;
        let mut characters = self.source[start + 1..].char_indices();
        let mut text = String::new();
        while let Some((offset, character)) = characters.next() {
            let absolute = start + 1 + offset;
            if character == quote {
                self.position = absolute + 1;
                return Ok(Token {
                    kind: TokenKind::String(text),
                    span: Span::new(start, absolute + 1),
                });
            }
            if character != '\\' {
                text.push(character);
                continue;
            }
            let escape_error = |end: usize| {
                ParseError::new(ParseErrorKind::InvalidEscape, Span::new(absolute, end))
            };
            let Some((_, escaped)) = characters.next() else {
                break;
            };
            let decoded = match escaped {
                '\'' => '\'',
                '"' => '"',
                '\\' => '\\',
                '/' => '/',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'u' => {
                    let first =
                        read_hex4(&mut characters).ok_or_else(|| escape_error(absolute + 6))?;
                    if (0xD800..0xDC00).contains(&first) {
                        // A high surrogate must be followed by `\u` and a low surrogate.
                        let low = match (characters.next(), characters.next()) {
                            (Some((_, '\\')), Some((_, 'u'))) => read_hex4(&mut characters),
                            _ => None,
                        }
                        .filter(|low| (0xDC00..0xE000).contains(low))
                        .ok_or_else(|| escape_error(absolute + 12))?;
                        let combined = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(combined).ok_or_else(|| escape_error(absolute + 12))?
                    } else {
                        char::from_u32(first).ok_or_else(|| escape_error(absolute + 6))?
                    }
                }
                other => return Err(escape_error(absolute + 1 + other.len_utf8())),
            };
            text.push(decoded);
        }
        self.position = self.source.len();
        Err(ParseError::new(
            ParseErrorKind::UnterminatedString,
            Span::new(start, self.source.len()),
        ))
    }
}

fn read_hex4(characters: &mut std::str::CharIndices<'_>) -> Option<u32> {
    let mut value = 0;
    for _ in 0..4 {
        let (_, digit) = characters.next()?;
        value = value * 16 + digit.to_digit(16)?;
    }
    Some(value)
}

fn is_identifier_start(character: char) -> bool {
    character == '_' || character == '$' || character.is_alphabetic()
}

fn is_identifier_continue(character: char) -> bool {
    character == '_' || character.is_alphanumeric()
}
