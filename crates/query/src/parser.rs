//! The recursive-descent parser with a Pratt loop for binary operators.
//!
//! Parsing is linear in the input length. Nesting (parentheses, arrays, calls, unary operators)
//! and the height of the resulting tree are both bounded by [`MAX_NESTING_DEPTH`], so neither
//! parsing nor evaluation nor dropping a tree can overflow the stack.

use crate::ast::{
    BinaryOperator, Expr, ExprKind, Literal, LogicalOperator, PathSegment, Property, UnaryOperator,
};
use crate::error::{ParseError, ParseErrorKind, Span};
use crate::functions::Function;
use crate::lexer::{Lexer, Token, TokenKind};
use crate::message::SystemProperty;
use crate::route::{RouteSink, RouteSource};
use crate::twin_query::{Aggregate, Collection, Projection, SelectClause, SelectItem};
use crate::{MAX_NESTING_DEPTH, MAX_SOURCE_LENGTH};

/// How property references are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Paths address the evaluated JSON document (twin queries and twin conditions).
    Document,
    /// Bare names are application properties, `$name` system properties, plus `$body` and `$twin`.
    Message,
}

/// Words that cannot start an expression.
const RESERVED_WORDS: &[&str] = &[
    "and", "or", "in", "nin", "select", "from", "where", "group", "by", "as", "into",
];

const AGGREGATE_NAMES: &[&str] = &["count", "avg", "sum", "min", "max"];

const NOT_OPERAND_POWER: u8 = 7;
const UNARY_OPERAND_POWER: u8 = 15;

pub(crate) struct Parser<'s> {
    source: &'s str,
    lexer: Lexer<'s>,
    current: Token,
    dialect: Dialect,
    nesting: usize,
}

pub(crate) struct ParsedQuery {
    pub select: SelectClause,
    pub top: Option<u64>,
    pub collection: Collection,
    pub condition: Option<Expr>,
    pub group_by: Vec<Vec<PathSegment>>,
}

pub(crate) struct ParsedRoute {
    pub source: RouteSource,
    pub condition: Option<Expr>,
    pub sink: RouteSink,
}

enum Infix {
    Logical(LogicalOperator),
    Binary(BinaryOperator),
    In { negated: bool },
}

impl<'s> Parser<'s> {
    pub(crate) fn new(source: &'s str, dialect: Dialect) -> Result<Parser<'s>, ParseError> {
        if source.len() > MAX_SOURCE_LENGTH {
            return Err(ParseError::new(
                ParseErrorKind::InputTooLong {
                    length: source.len(),
                    limit: MAX_SOURCE_LENGTH,
                },
                Span::new(MAX_SOURCE_LENGTH, source.len()),
            ));
        }
        let mut lexer = Lexer::new(source);
        let current = lexer.next_token()?;
        Ok(Parser {
            source,
            lexer,
            current,
            dialect,
            nesting: 0,
        })
    }

    // === Token helpers ===

    fn advance(&mut self) -> Result<Token, ParseError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.current, next))
    }

    fn text(&self, token: &Token) -> &'s str {
        &self.source[token.span.start..token.span.end]
    }

    fn current_is_keyword(&self, keyword: &str) -> bool {
        self.current.kind == TokenKind::Identifier
            && self.text(&self.current).eq_ignore_ascii_case(keyword)
    }

    fn eat_keyword(&mut self, keyword: &str) -> Result<bool, ParseError> {
        if self.current_is_keyword(keyword) {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn expect_keyword(
        &mut self,
        keyword: &str,
        expected: &'static str,
    ) -> Result<Token, ParseError> {
        if self.current_is_keyword(keyword) {
            self.advance()
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect(&mut self, kind: &TokenKind, expected: &'static str) -> Result<Token, ParseError> {
        if &self.current.kind == kind {
            self.advance()
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn unexpected(&self, expected: &'static str) -> ParseError {
        ParseError::new(
            ParseErrorKind::Unexpected {
                expected,
                found: self.current.kind.describe(self.text(&self.current)),
            },
            self.current.span,
        )
    }

    /// The kind of the token after the current one, without consuming anything.
    fn peek_next_kind(&self) -> Option<TokenKind> {
        let mut probe = Lexer::new(self.source);
        probe.reset_to(self.lexer.position());
        probe.next_token().ok().map(|token| token.kind)
    }

    pub(crate) fn expect_end(&mut self) -> Result<(), ParseError> {
        if self.current.kind == TokenKind::EndOfInput {
            Ok(())
        } else {
            Err(self.unexpected("end of input"))
        }
    }

    fn enter_nesting(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING_DEPTH {
            return Err(ParseError::new(
                ParseErrorKind::TooDeep {
                    limit: MAX_NESTING_DEPTH,
                },
                self.current.span,
            ));
        }
        Ok(())
    }

    fn leave_nesting(&mut self) {
        self.nesting -= 1;
    }

    // === Expressions ===

    /// Parses a whole condition up to the end of the input.
    pub(crate) fn parse_condition(&mut self) -> Result<Expr, ParseError> {
        let expression = self.parse_expression(0)?;
        self.expect_end()?;
        Ok(expression)
    }

    pub(crate) fn parse_expression(&mut self, minimum_power: u8) -> Result<Expr, ParseError> {
        let mut left = self.parse_prefix()?;
        while let Some((infix, left_power, right_power)) = self.current_infix() {
            if left_power < minimum_power {
                break;
            }
            self.advance()?;
            let right = self.parse_expression(right_power)?;
            let span = left.span.to(right.span);
            left = match infix {
                Infix::Logical(operator) => match left.kind {
                    ExprKind::Logical {
                        operator: left_operator,
                        mut operands,
                    } if left_operator == operator => {
                        let height = left.height.max(right.height + 1);
                        operands.push(right);
                        Expr {
                            kind: ExprKind::Logical { operator, operands },
                            span,
                            height,
                        }
                    }
                    _ => node(
                        ExprKind::Logical {
                            operator,
                            operands: vec![left, right],
                        },
                        span,
                    ),
                },
                Infix::Binary(operator) => node(
                    ExprKind::Binary {
                        operator,
                        left: Box::new(left),
                        right: Box::new(right),
                    },
                    span,
                ),
                Infix::In { negated } => node(
                    ExprKind::In {
                        negated,
                        needle: Box::new(left),
                        haystack: Box::new(right),
                    },
                    span,
                ),
            };
            check_height(&left)?;
        }
        Ok(left)
    }

    fn current_infix(&self) -> Option<(Infix, u8, u8)> {
        let binary = |operator, left_power, right_power| {
            Some((Infix::Binary(operator), left_power, right_power))
        };
        match &self.current.kind {
            TokenKind::Coalesce => binary(BinaryOperator::Coalesce, 1, 2),
            TokenKind::Equal => binary(BinaryOperator::Equal, 9, 10),
            TokenKind::NotEqual => binary(BinaryOperator::NotEqual, 9, 10),
            TokenKind::Less => binary(BinaryOperator::Less, 9, 10),
            TokenKind::LessEqual => binary(BinaryOperator::LessEqual, 9, 10),
            TokenKind::Greater => binary(BinaryOperator::Greater, 9, 10),
            TokenKind::GreaterEqual => binary(BinaryOperator::GreaterEqual, 9, 10),
            TokenKind::Plus => binary(BinaryOperator::Add, 11, 12),
            TokenKind::Minus => binary(BinaryOperator::Subtract, 11, 12),
            TokenKind::Concat => binary(BinaryOperator::Concat, 11, 12),
            TokenKind::Star => binary(BinaryOperator::Multiply, 13, 14),
            TokenKind::Slash => binary(BinaryOperator::Divide, 13, 14),
            TokenKind::Percent => binary(BinaryOperator::Remainder, 13, 14),
            TokenKind::Identifier => {
                let word = self.text(&self.current);
                if word.eq_ignore_ascii_case("or") {
                    Some((Infix::Logical(LogicalOperator::Or), 3, 4))
                } else if word.eq_ignore_ascii_case("and") {
                    Some((Infix::Logical(LogicalOperator::And), 5, 6))
                } else if word.eq_ignore_ascii_case("in") {
                    Some((Infix::In { negated: false }, 9, 10))
                } else if word.eq_ignore_ascii_case("nin") {
                    Some((Infix::In { negated: true }, 9, 10))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn parse_prefix(&mut self) -> Result<Expr, ParseError> {
        let token = self.current.clone();
        match &token.kind {
            TokenKind::Number(number) => {
                self.advance()?;
                Ok(leaf(
                    ExprKind::Literal(Literal::Number(*number)),
                    token.span,
                ))
            }
            TokenKind::String(text) => {
                self.advance()?;
                Ok(leaf(
                    ExprKind::Literal(Literal::String(text.clone())),
                    token.span,
                ))
            }
            TokenKind::LeftParen => {
                self.enter_nesting()?;
                self.advance()?;
                let mut inner = self.parse_expression(0)?;
                let close = self.expect(&TokenKind::RightParen, "`)`")?;
                inner.span = token.span.to(close.span);
                self.leave_nesting();
                Ok(inner)
            }
            TokenKind::LeftBracket => {
                self.enter_nesting()?;
                self.advance()?;
                let (items, close) = self.parse_list(&TokenKind::RightBracket, "`,` or `]`")?;
                self.leave_nesting();
                let expression = node(ExprKind::Array(items), token.span.to(close.span));
                check_height(&expression)?;
                Ok(expression)
            }
            TokenKind::Minus | TokenKind::Plus => {
                let operator = if token.kind == TokenKind::Minus {
                    UnaryOperator::Negate
                } else {
                    UnaryOperator::Plus
                };
                self.parse_unary(operator, UNARY_OPERAND_POWER)
            }
            TokenKind::Identifier => self.parse_identifier_expression(token),
            _ => Err(self.unexpected("expression")),
        }
    }

    fn parse_unary(
        &mut self,
        operator: UnaryOperator,
        operand_power: u8,
    ) -> Result<Expr, ParseError> {
        self.enter_nesting()?;
        let operator_token = self.advance()?;
        let operand = self.parse_expression(operand_power)?;
        self.leave_nesting();
        let span = operator_token.span.to(operand.span);
        let expression = node(
            ExprKind::Unary {
                operator,
                operand: Box::new(operand),
            },
            span,
        );
        check_height(&expression)?;
        Ok(expression)
    }

    fn parse_identifier_expression(&mut self, token: Token) -> Result<Expr, ParseError> {
        let word = self.text(&token);
        let lowercase = word.to_ascii_lowercase();
        match lowercase.as_str() {
            "not" => return self.parse_unary(UnaryOperator::Not, NOT_OPERAND_POWER),
            "true" => return self.literal(Literal::Bool(true)),
            "false" => return self.literal(Literal::Bool(false)),
            "null" => return self.literal(Literal::Null),
            "undefined" => return self.literal(Literal::Undefined),
            reserved if RESERVED_WORDS.contains(&reserved) => {
                return Err(self.unexpected("expression"));
            }
            _ => {}
        }
        if self.peek_next_kind() == Some(TokenKind::LeftParen) {
            return self.parse_call(token);
        }
        let (segments, span) = self.parse_path()?;
        let property = self.bind_property(segments, span)?;
        Ok(leaf(ExprKind::Property(property), span))
    }

    fn literal(&mut self, literal: Literal) -> Result<Expr, ParseError> {
        let token = self.advance()?;
        Ok(leaf(ExprKind::Literal(literal), token.span))
    }

    fn parse_call(&mut self, name_token: Token) -> Result<Expr, ParseError> {
        let name = self.text(&name_token);
        let function = match Function::from_name(name) {
            Some(function) => function,
            None if AGGREGATE_NAMES
                .iter()
                .any(|aggregate| aggregate.eq_ignore_ascii_case(name)) =>
            {
                return Err(ParseError::invalid(
                    format!(
                        "aggregate `{}` is only allowed in a SELECT list",
                        name.to_ascii_uppercase()
                    ),
                    name_token.span,
                ));
            }
            None => {
                return Err(ParseError::new(
                    ParseErrorKind::UnknownFunction(name.to_string()),
                    name_token.span,
                ));
            }
        };
        self.enter_nesting()?;
        self.advance()?;
        self.expect(&TokenKind::LeftParen, "`(`")?;
        let (arguments, close) = self.parse_list(&TokenKind::RightParen, "`,` or `)`")?;
        self.leave_nesting();
        let span = name_token.span.to(close.span);
        let (minimum, maximum) = function.arity();
        if arguments.len() < minimum || maximum.is_some_and(|maximum| arguments.len() > maximum) {
            return Err(ParseError::new(
                ParseErrorKind::WrongArgumentCount {
                    name: function.name(),
                    expected: function.arity_text(),
                    found: arguments.len(),
                },
                span,
            ));
        }
        let expression = node(
            ExprKind::Call {
                function,
                arguments,
            },
            span,
        );
        check_height(&expression)?;
        Ok(expression)
    }

    /// Parses `item, item, ... <close>` after the opening token; the list may be empty.
    fn parse_list(
        &mut self,
        close: &TokenKind,
        expected: &'static str,
    ) -> Result<(Vec<Expr>, Token), ParseError> {
        let mut items = Vec::new();
        if &self.current.kind == close {
            return Ok((items, self.advance()?));
        }
        loop {
            items.push(self.parse_expression(0)?);
            if self.current.kind == TokenKind::Comma {
                self.advance()?;
                continue;
            }
            if &self.current.kind == close {
                return Ok((items, self.advance()?));
            }
            return Err(self.unexpected(expected));
        }
    }

    /// Parses `name(.name | [index] | ['name'])*` starting at the current identifier.
    fn parse_path(&mut self) -> Result<(Vec<PathSegment>, Span), ParseError> {
        if self.current.kind != TokenKind::Identifier {
            return Err(self.unexpected("property path"));
        }
        let first = self.advance()?;
        let mut span = first.span;
        let mut segments = vec![PathSegment::Field(self.text(&first).to_string())];
        loop {
            match &self.current.kind {
                TokenKind::Dot => {
                    self.advance()?;
                    if self.current.kind != TokenKind::Identifier {
                        return Err(self.unexpected("property name after `.`"));
                    }
                    let name = self.advance()?;
                    segments.push(PathSegment::Field(self.text(&name).to_string()));
                    span = span.to(name.span);
                }
                TokenKind::LeftBracket => {
                    self.advance()?;
                    let segment = match &self.current.kind {
                        TokenKind::Number(number)
                            if number.fract() == 0.0
                                && *number >= 0.0
                                && *number <= u32::MAX as f64 =>
                        {
                            PathSegment::Index(*number as usize)
                        }
                        TokenKind::String(name) => PathSegment::Field(name.clone()),
                        _ => return Err(self.unexpected("array index or quoted property name")),
                    };
                    self.advance()?;
                    let close = self.expect(&TokenKind::RightBracket, "`]`")?;
                    segments.push(segment);
                    span = span.to(close.span);
                }
                _ => return Ok((segments, span)),
            }
        }
    }

    fn bind_property(
        &self,
        mut segments: Vec<PathSegment>,
        span: Span,
    ) -> Result<Property, ParseError> {
        if self.dialect == Dialect::Document {
            return Ok(Property::Document(segments));
        }
        let PathSegment::Field(first) = segments.remove(0) else {
            return Err(ParseError::invalid(
                "property path must start with a name",
                span,
            ));
        };
        let lowercase_name = first.to_ascii_lowercase();
        match lowercase_name.as_str() {
            "$body" => return Ok(Property::Body(segments)),
            "$twin" => return Ok(Property::Twin(segments)),
            _ => {}
        }
        if !segments.is_empty() {
            return Err(ParseError::invalid(
                format!(
                    "message property `{first}` has no sub-properties; use `$body.` or `$twin.` paths"
                ),
                span,
            ));
        }
        Ok(match lowercase_name.strip_prefix('$') {
            Some(system_name) => Property::System {
                property: SystemProperty::from_condition_name(system_name),
                lowercase_name,
            },
            None => Property::Application { lowercase_name },
        })
    }

    // === Twin queries ===

    pub(crate) fn parse_query(&mut self) -> Result<ParsedQuery, ParseError> {
        self.expect_keyword("select", "`SELECT`")?;
        let mut top = None;
        if self.current_is_keyword("top")
            && matches!(self.peek_next_kind(), Some(TokenKind::Number(_)))
        {
            self.advance()?;
            let TokenKind::Number(count) = self.current.kind else {
                return Err(self.unexpected("number"));
            };
            if count.fract() != 0.0 || count < 0.0 {
                return Err(ParseError::invalid(
                    "TOP needs a non-negative integer",
                    self.current.span,
                ));
            }
            top = Some(count.min(u64::MAX as f64) as u64);
            self.advance()?;
        }
        let select = if self.current.kind == TokenKind::Star {
            self.advance()?;
            SelectClause::All
        } else {
            let mut items = Vec::new();
            loop {
                items.push(self.parse_select_item(items.len())?);
                if self.current.kind != TokenKind::Comma {
                    break;
                }
                self.advance()?;
            }
            SelectClause::Items(items)
        };
        self.expect_keyword("from", "`FROM` or `,`")?;
        let collection = self.parse_collection()?;
        let condition = if self.eat_keyword("where")? {
            Some(self.parse_expression(0)?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        let mut group_by_span = None;
        if self.current_is_keyword("group") {
            let group_token = self.advance()?;
            self.expect_keyword("by", "`BY`")?;
            loop {
                let (path, span) = self.parse_path()?;
                group_by.push(path);
                group_by_span = Some(group_token.span.to(span));
                if self.current.kind != TokenKind::Comma {
                    break;
                }
                self.advance()?;
            }
        }
        let expected_end = match (&condition, group_by.is_empty()) {
            (None, true) => "`WHERE`, `GROUP BY` or end of input",
            (Some(_), true) => "an operator, `GROUP BY` or end of input",
            (_, false) => "`,` or end of input",
        };
        if self.current.kind != TokenKind::EndOfInput {
            return Err(self.unexpected(expected_end));
        }
        let mut parsed = ParsedQuery {
            select,
            top,
            collection,
            condition,
            group_by,
        };
        if collection == Collection::Jobs
            && let Some(condition) = parsed.condition.as_mut()
        {
            // Job queries name fields as `devices.jobs.<field>`; rows are the job documents.
            strip_path_prefix(condition, &["devices", "jobs"]);
        }
        validate_query(&parsed, group_by_span.unwrap_or(Span::new(0, 0)))?;
        Ok(parsed)
    }

    fn parse_select_item(&mut self, position: usize) -> Result<SelectItem, ParseError> {
        let start = self.current.span;
        let word = self.text(&self.current).to_ascii_lowercase();
        let is_aggregate = self.current.kind == TokenKind::Identifier
            && AGGREGATE_NAMES.contains(&word.as_str())
            && self.peek_next_kind() == Some(TokenKind::LeftParen);
        let (projection, mut span) = if is_aggregate {
            self.advance()?;
            self.advance()?;
            let aggregate = if word == "count" {
                if self.current.kind == TokenKind::Star {
                    self.advance()?;
                }
                Aggregate::Count
            } else {
                let (path, _) = self.parse_path()?;
                match word.as_str() {
                    "avg" => Aggregate::Average(path),
                    "sum" => Aggregate::Sum(path),
                    "min" => Aggregate::Minimum(path),
                    _ => Aggregate::Maximum(path),
                }
            };
            let close = self.expect(&TokenKind::RightParen, "`)`")?;
            (Projection::Aggregate(aggregate), start.to(close.span))
        } else {
            let expression = self.parse_expression(0)?;
            let span = expression.span;
            (Projection::Expression(expression), span)
        };
        let name = if self.eat_keyword("as")? {
            let alias = match &self.current.kind {
                TokenKind::Identifier => self.text(&self.current).to_string(),
                TokenKind::String(text) => text.clone(),
                _ => return Err(self.unexpected("alias name")),
            };
            span = span.to(self.advance()?.span);
            alias
        } else {
            match &projection {
                Projection::Expression(Expr {
                    kind: ExprKind::Property(Property::Document(path)),
                    ..
                }) => match path.last() {
                    Some(PathSegment::Field(name)) => name.clone(),
                    _ => format!("${}", position + 1),
                },
                _ => format!("${}", position + 1),
            }
        };
        Ok(SelectItem {
            projection,
            name,
            span,
        })
    }

    fn parse_collection(&mut self) -> Result<Collection, ParseError> {
        if !self.current_is_keyword("devices") {
            return Err(self.unexpected("`devices`, `devices.modules` or `devices.jobs`"));
        }
        self.advance()?;
        if self.current.kind != TokenKind::Dot {
            return Ok(Collection::Devices);
        }
        self.advance()?;
        if self.eat_keyword("modules")? {
            Ok(Collection::Modules)
        } else if self.eat_keyword("jobs")? {
            Ok(Collection::Jobs)
        } else {
            Err(self.unexpected("`modules` or `jobs`"))
        }
    }

    // === Edge route statements ===

    pub(crate) fn parse_route(&mut self) -> Result<ParsedRoute, ParseError> {
        if self.eat_keyword("select")? {
            self.expect(&TokenKind::Star, "`*`")?;
        }
        if !self.current_is_keyword("from") {
            return Err(self.unexpected("`FROM`"));
        }
        let (path, path_span) = self.take_raw_word()?;
        if path.is_empty() {
            return Err(self.unexpected("message source path such as `/messages/*`"));
        }
        let source = RouteSource::parse(path).ok_or_else(|| {
            ParseError::invalid(format!("unknown route source `{path}`"), path_span)
        })?;
        let condition = if self.eat_keyword("where")? {
            Some(self.parse_expression(0)?)
        } else {
            None
        };
        self.expect_keyword("into", "`WHERE`, an operator or `INTO`")?;
        let sink = self.parse_sink()?;
        self.expect_end()?;
        Ok(ParsedRoute {
            source,
            condition,
            sink,
        })
    }

    /// Takes the whitespace-delimited text after the current token without lexing it (route
    /// paths contain `/*`, which would otherwise open a comment), then lexes what follows.
    fn take_raw_word(&mut self) -> Result<(&'s str, Span), ParseError> {
        let mut start = self.current.span.end;
        while let Some(character) = self.source[start..].chars().next() {
            if !character.is_whitespace() {
                break;
            }
            start += character.len_utf8();
        }
        let end = self.source[start..]
            .find(char::is_whitespace)
            .map_or(self.source.len(), |offset| start + offset);
        self.lexer.reset_to(end);
        let span = Span::new(start, end);
        self.current = self.lexer.next_token()?;
        Ok((&self.source[start..end], span))
    }

    fn parse_sink(&mut self) -> Result<RouteSink, ParseError> {
        if self.eat_keyword("$upstream")? {
            return Ok(RouteSink::Upstream);
        }
        if !self.current_is_keyword("brokeredendpoint") {
            return Err(
                self.unexpected("`$upstream` or `BrokeredEndpoint(\"/modules/<m>/inputs/<i>\")`")
            );
        }
        self.advance()?;
        self.expect(&TokenKind::LeftParen, "`(`")?;
        let TokenKind::String(address) = self.current.kind.clone() else {
            return Err(self.unexpected("quoted endpoint address"));
        };
        let address_span = self.current.span;
        self.advance()?;
        self.expect(&TokenKind::RightParen, "`)`")?;
        RouteSink::parse_brokered_address(&address).ok_or_else(|| {
            ParseError::invalid(
                format!("endpoint address `{address}` is not of the form /modules/<m>/inputs/<i>"),
                address_span,
            )
        })
    }
}

fn leaf(kind: ExprKind, span: Span) -> Expr {
    Expr {
        kind,
        span,
        height: 1,
    }
}

fn node(kind: ExprKind, span: Span) -> Expr {
    let children_height = match &kind {
        ExprKind::Literal(_) | ExprKind::Property(_) => 0,
        ExprKind::Array(items) => items.iter().map(|item| item.height).max().unwrap_or(0),
        ExprKind::Unary { operand, .. } => operand.height,
        ExprKind::Binary { left, right, .. } => left.height.max(right.height),
        ExprKind::Logical { operands, .. } => {
            operands.iter().map(|item| item.height).max().unwrap_or(0)
        }
        ExprKind::In {
            needle, haystack, ..
        } => needle.height.max(haystack.height),
        ExprKind::Call { arguments, .. } => {
            arguments.iter().map(|item| item.height).max().unwrap_or(0)
        }
    };
    Expr {
        kind,
        span,
        height: children_height + 1,
    }
}

fn check_height(expression: &Expr) -> Result<(), ParseError> {
    if expression.height > MAX_NESTING_DEPTH {
        return Err(ParseError::new(
            ParseErrorKind::TooDeep {
                limit: MAX_NESTING_DEPTH,
            },
            expression.span,
        ));
    }
    Ok(())
}

/// Removes `prefix` (compared ignoring ASCII case) from every document path that starts with it.
fn strip_path_prefix(expression: &mut Expr, prefix: &[&str]) {
    match &mut expression.kind {
        ExprKind::Property(Property::Document(path)) => {
            let has_prefix = path.len() > prefix.len()
                && path.iter().zip(prefix).all(|(segment, expected)| {
                    matches!(segment, PathSegment::Field(name) if name.eq_ignore_ascii_case(expected))
                });
            if has_prefix {
                path.drain(..prefix.len());
            }
        }
        ExprKind::Literal(_) | ExprKind::Property(_) => {}
        ExprKind::Array(items) => items
            .iter_mut()
            .for_each(|item| strip_path_prefix(item, prefix)),
        ExprKind::Unary { operand, .. } => strip_path_prefix(operand, prefix),
        ExprKind::Binary { left, right, .. } => {
            strip_path_prefix(left, prefix);
            strip_path_prefix(right, prefix);
        }
        ExprKind::Logical { operands, .. } => operands
            .iter_mut()
            .for_each(|item| strip_path_prefix(item, prefix)),
        ExprKind::In {
            needle, haystack, ..
        } => {
            strip_path_prefix(needle, prefix);
            strip_path_prefix(haystack, prefix);
        }
        ExprKind::Call { arguments, .. } => arguments
            .iter_mut()
            .for_each(|item| strip_path_prefix(item, prefix)),
    }
}

fn validate_query(query: &ParsedQuery, group_by_span: Span) -> Result<(), ParseError> {
    let items: &[SelectItem] = match &query.select {
        SelectClause::All => {
            if !query.group_by.is_empty() {
                return Err(ParseError::invalid(
                    "GROUP BY cannot be used with SELECT *",
                    group_by_span,
                ));
            }
            return Ok(());
        }
        SelectClause::Items(items) => items,
    };
    if query.collection == Collection::Jobs {
        return Err(ParseError::invalid(
            "devices.jobs supports only SELECT *",
            items.first().map_or(group_by_span, |item| item.span),
        ));
    }
    let has_aggregate = items
        .iter()
        .any(|item| matches!(item.projection, Projection::Aggregate(_)));
    if !has_aggregate && query.group_by.is_empty() {
        return Ok(());
    }
    for item in items {
        let Projection::Expression(expression) = &item.projection else {
            continue;
        };
        let grouped = match &expression.kind {
            ExprKind::Property(Property::Document(path)) => query.group_by.contains(path),
            _ => false,
        };
        if !grouped {
            let message = if query.group_by.is_empty() {
                "a plain projection cannot be mixed with aggregates without GROUP BY"
            } else {
                "a projection next to aggregates must be one of the GROUP BY paths"
            };
            return Err(ParseError::invalid(message, item.span));
        }
    }
    Ok(())
}
