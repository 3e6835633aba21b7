//! The syntax tree shared by twin queries, twin conditions and message-routing conditions.

use crate::error::Span;
use crate::functions::Function;
use crate::message::SystemProperty;

/// An expression node. `height` is the height of the subtree, kept to bound recursion.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
    pub(crate) height: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    Property(Property),
    /// An array constructor `[a, b, ...]`.
    Array(Vec<Expr>),
    Unary {
        operator: UnaryOperator,
        operand: Box<Expr>,
    },
    Binary {
        operator: BinaryOperator,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// A flattened chain of `AND` or `OR` operands, so long `OR` lists stay shallow.
    Logical {
        operator: LogicalOperator,
        operands: Vec<Expr>,
    },
    /// `needle IN haystack` or, when `negated`, `needle NIN haystack`.
    In {
        negated: bool,
        needle: Box<Expr>,
        haystack: Box<Expr>,
    },
    Call {
        function: Function,
        arguments: Vec<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOperator {
    Not,
    Negate,
    Plus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOperator {
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
    /// `||`: string concatenation.
    Concat,
    /// `??`: the left side unless it is undefined, else the right side.
    Coalesce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalOperator {
    And,
    Or,
}

/// One step of a property path: `.name`, `['name']` or `[index]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    Field(String),
    Index(usize),
}

/// A property reference, already bound to where its value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Property {
    /// A path from the root of the evaluated document (a twin in twin queries and conditions).
    Document(Vec<PathSegment>),
    /// A bare name in a routing condition: an application property, matched case-insensitively.
    Application { lowercase_name: String },
    /// A `$name` in a routing condition: the system property if `name` is one, else the
    /// application property literally named `$name`.
    System {
        property: Option<SystemProperty>,
        lowercase_name: String,
    },
    /// `$body...`: a path into the JSON message body.
    Body(Vec<PathSegment>),
    /// `$twin...`: a path into the device twin of the message's sender.
    Twin(Vec<PathSegment>),
}
