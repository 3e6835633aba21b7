//! Runtime values. They borrow from the evaluated document and the expression where they can, so
//! evaluating a simple condition allocates nothing.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value as Json};

/// The result of evaluating an expression. `Undefined` is the value of a missing property and of
/// any operation whose operands have the wrong types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(Cow<'a, str>),
    Array(Cow<'a, [Json]>),
    Object(&'a Map<String, Json>),
}

impl<'a> Value<'a> {
    /// Wraps a JSON value without copying it.
    pub fn from_json(json: &'a Json) -> Value<'a> {
        match json {
            Json::Null => Value::Null,
            Json::Bool(flag) => Value::Bool(*flag),
            Json::Number(number) => number.as_f64().map_or(Value::Undefined, Value::Number),
            Json::String(text) => Value::String(Cow::Borrowed(text)),
            Json::Array(items) => Value::Array(Cow::Borrowed(items)),
            Json::Object(map) => Value::Object(map),
        }
    }

    pub fn from_optional_json(json: Option<&'a Json>) -> Value<'a> {
        json.map_or(Value::Undefined, Value::from_json)
    }

    /// A number, or `Undefined` when the arithmetic produced infinity or NaN.
    pub fn number(number: f64) -> Value<'a> {
        if number.is_finite() {
            Value::Number(number)
        } else {
            Value::Undefined
        }
    }

    /// Converts to JSON; `None` for `Undefined`.
    pub fn to_json(&self) -> Option<Json> {
        match self {
            Value::Undefined => None,
            Value::Null => Some(Json::Null),
            Value::Bool(flag) => Some(Json::Bool(*flag)),
            Value::Number(number) => Some(number_to_json(*number)),
            Value::String(text) => Some(Json::String(text.to_string())),
            Value::Array(items) => Some(Json::Array(items.to_vec())),
            Value::Object(map) => Some(Json::Object((*map).clone())),
        }
    }

    /// Only boolean `true` passes a `WHERE` or a routing condition.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    fn is_primitive(&self) -> bool {
        matches!(
            self,
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)
        )
    }
}

/// Converts a number to JSON, writing integral values as integers so `COUNT()` prints `3`.
pub(crate) fn number_to_json(number: f64) -> Json {
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;
    if number.fract() == 0.0 && number.abs() < EXACT_INTEGER_LIMIT {
        Json::from(number as i64)
    } else {
        serde_json::Number::from_f64(number).map_or(Json::Null, Json::Number)
    }
}

/// `left = right`: undefined when either side is undefined or not a primitive; `false` for
/// primitives of different types.
pub(crate) fn equals<'a>(left: &Value<'_>, right: &Value<'_>) -> Value<'a> {
    if !left.is_primitive() || !right.is_primitive() {
        return Value::Undefined;
    }
    Value::Bool(match (left, right) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(left), Value::Bool(right)) => left == right,
        (Value::Number(left), Value::Number(right)) => left == right,
        (Value::String(left), Value::String(right)) => left == right,
        _ => false,
    })
}

/// Orders two numbers or two strings (by code point); anything else is unordered.
pub(crate) fn compare(left: &Value<'_>, right: &Value<'_>) -> Option<Ordering> {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => left.partial_cmp(right),
        (Value::String(left), Value::String(right)) => Some(left.as_ref().cmp(right.as_ref())),
        _ => None,
    }
}
