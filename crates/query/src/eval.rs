//! The tree-walking evaluator shared by twin queries and routing conditions.
//!
//! Logic is three-valued as in IoT Hub: comparisons with an undefined (or non-primitive) side
//! are undefined, `NOT undefined` is undefined, `false AND x` is false and `true OR x` is true
//! whatever `x` is, and only boolean `true` passes a filter.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value as Json;

use crate::ast::{
    BinaryOperator, Expr, ExprKind, Literal, LogicalOperator, PathSegment, Property, UnaryOperator,
};
use crate::message::SystemProperty;
use crate::value::{Value, compare, equals};

/// Where property references get their values from.
pub(crate) trait Scope {
    fn document(&self) -> Option<&Json>;
    fn application_property(&self, lowercase_name: &str) -> Option<&str>;
    fn system_property(&self, property: SystemProperty) -> Option<&str>;
    fn body(&self) -> Option<&Json>;
    fn twin(&self) -> Option<&Json>;
}

/// Follows a path from `root`; `None` when a step is missing or has the wrong type.
pub(crate) fn walk<'a>(root: &'a Json, path: &[PathSegment]) -> Option<&'a Json> {
    let mut current = root;
    for segment in path {
        current = match segment {
            PathSegment::Field(name) => current.as_object()?.get(name)?,
            PathSegment::Index(index) => current.as_array()?.get(*index)?,
        };
    }
    Some(current)
}

pub(crate) fn evaluate<'a, S: Scope + ?Sized>(expression: &'a Expr, scope: &'a S) -> Value<'a> {
    match &expression.kind {
        ExprKind::Literal(literal) => match literal {
            Literal::Undefined => Value::Undefined,
            Literal::Null => Value::Null,
            Literal::Bool(flag) => Value::Bool(*flag),
            Literal::Number(number) => Value::Number(*number),
            Literal::String(text) => Value::String(Cow::Borrowed(text)),
        },
        ExprKind::Property(property) => evaluate_property(property, scope),
        ExprKind::Array(items) => Value::Array(Cow::Owned(
            items
                .iter()
                .filter_map(|item| evaluate(item, scope).to_json())
                .collect(),
        )),
        ExprKind::Unary { operator, operand } => {
            let operand = evaluate(operand, scope);
            match (operator, operand) {
                (UnaryOperator::Not, Value::Bool(flag)) => Value::Bool(!flag),
                (UnaryOperator::Negate, Value::Number(number)) => Value::Number(-number),
                (UnaryOperator::Plus, Value::Number(number)) => Value::Number(number),
                _ => Value::Undefined,
            }
        }
        ExprKind::Logical { operator, operands } => evaluate_logical(*operator, operands, scope),
        ExprKind::Binary {
            operator,
            left,
            right,
        } => {
            let left = evaluate(left, scope);
            if *operator == BinaryOperator::Coalesce {
                return match left {
                    Value::Undefined => evaluate(right, scope),
                    defined => defined,
                };
            }
            let right = evaluate(right, scope);
            apply_binary(*operator, &left, &right)
        }
        ExprKind::In {
            negated,
            needle,
            haystack,
        } => evaluate_in(*negated, needle, haystack, scope),
        ExprKind::Call {
            function,
            arguments,
        } => {
            const INLINE_ARGUMENTS: usize = 3;
            if arguments.len() <= INLINE_ARGUMENTS {
                let mut values: [Value<'a>; INLINE_ARGUMENTS] =
                    [Value::Undefined, Value::Undefined, Value::Undefined];
                for (slot, argument) in values.iter_mut().zip(arguments) {
                    *slot = evaluate(argument, scope);
                }
                function.apply(&mut values[..arguments.len()])
            } else {
                let mut values: Vec<Value<'a>> = arguments
                    .iter()
                    .map(|argument| evaluate(argument, scope))
                    .collect();
                function.apply(&mut values)
            }
        }
    }
}

fn evaluate_property<'a, S: Scope + ?Sized>(property: &'a Property, scope: &'a S) -> Value<'a> {
    match property {
        Property::Document(path) => {
            Value::from_optional_json(scope.document().and_then(|root| walk(root, path)))
        }
        Property::Application { lowercase_name } => scope
            .application_property(lowercase_name)
            .map_or(Value::Undefined, |text| Value::String(Cow::Borrowed(text))),
        Property::System {
            property,
            lowercase_name,
        } => property
            .and_then(|property| scope.system_property(property))
            .or_else(|| scope.application_property(lowercase_name))
            .map_or(Value::Undefined, |text| Value::String(Cow::Borrowed(text))),
        Property::Body(path) => {
            Value::from_optional_json(scope.body().and_then(|root| walk(root, path)))
        }
        Property::Twin(path) => {
            Value::from_optional_json(scope.twin().and_then(|root| walk(root, path)))
        }
    }
}

fn evaluate_logical<'a, S: Scope + ?Sized>(
    operator: LogicalOperator,
    operands: &'a [Expr],
    scope: &'a S,
) -> Value<'a> {
    // `false AND x` is false and `true OR x` is true for every x, so one decisive operand ends
    // the evaluation; otherwise any non-boolean operand makes the result undefined.
    let decisive = operator == LogicalOperator::Or;
    let mut all_boolean = true;
    for operand in operands {
        match evaluate(operand, scope) {
            Value::Bool(flag) if flag == decisive => return Value::Bool(decisive),
            Value::Bool(_) => {}
            _ => all_boolean = false,
        }
    }
    if all_boolean {
        Value::Bool(!decisive)
    } else {
        Value::Undefined
    }
}

fn evaluate_in<'a, S: Scope + ?Sized>(
    negated: bool,
    needle: &'a Expr,
    haystack: &'a Expr,
    scope: &'a S,
) -> Value<'a> {
    let needle = evaluate(needle, scope);
    if !matches!(
        needle,
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)
    ) {
        return Value::Undefined;
    }
    let found = match &haystack.kind {
        // A literal list is compared element by element without building an array.
        ExprKind::Array(items) => items
            .iter()
            .any(|item| equals(&needle, &evaluate(item, scope)).is_true()),
        _ => match evaluate(haystack, scope) {
            Value::Array(items) => items
                .iter()
                .any(|item| equals(&needle, &Value::from_json(item)).is_true()),
            _ => return Value::Undefined,
        },
    };
    Value::Bool(found != negated)
}

pub(crate) fn apply_binary<'a>(
    operator: BinaryOperator,
    left: &Value<'a>,
    right: &Value<'a>,
) -> Value<'a> {
    let ordered = |accept: fn(Ordering) -> bool| match compare(left, right) {
        Some(ordering) => Value::Bool(accept(ordering)),
        None => Value::Undefined,
    };
    let arithmetic = |operation: fn(f64, f64) -> f64| match (left, right) {
        (Value::Number(left), Value::Number(right)) => Value::number(operation(*left, *right)),
        _ => Value::Undefined,
    };
    match operator {
        BinaryOperator::Equal => equals(left, right),
        BinaryOperator::NotEqual => match equals(left, right) {
            Value::Bool(flag) => Value::Bool(!flag),
            other => other,
        },
        BinaryOperator::Less => ordered(Ordering::is_lt),
        BinaryOperator::LessEqual => ordered(Ordering::is_le),
        BinaryOperator::Greater => ordered(Ordering::is_gt),
        BinaryOperator::GreaterEqual => ordered(Ordering::is_ge),
        BinaryOperator::Add => arithmetic(|left, right| left + right),
        BinaryOperator::Subtract => arithmetic(|left, right| left - right),
        BinaryOperator::Multiply => arithmetic(|left, right| left * right),
        BinaryOperator::Divide => arithmetic(|left, right| left / right),
        BinaryOperator::Remainder => arithmetic(|left, right| left % right),
        BinaryOperator::Concat => match (left, right) {
            (Value::String(left), Value::String(right)) => {
                Value::String(Cow::Owned(format!("{left}{right}")))
            }
            _ => Value::Undefined,
        },
        BinaryOperator::Coalesce => match left {
            Value::Undefined => right.clone(),
            defined => defined.clone(),
        },
    }
}
