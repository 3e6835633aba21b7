//! Built-in functions: their names, arities and semantics.
//!
//! Every function returns `undefined` when an argument has the wrong type, the way IoT Hub
//! documents it, except the `IS_*` type checks, which are always `true` or `false`.

use std::borrow::Cow;

use crate::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    IsDefined,
    IsNull,
    IsBool,
    IsNumber,
    IsString,
    IsObject,
    IsArray,
    IsPrimitive,
    StartsWith,
    EndsWith,
    Contains,
    Lower,
    Upper,
    Length,
    Substring,
    IndexOf,
    Concat,
    Abs,
    Ceiling,
    Floor,
    Exp,
    Power,
    Square,
    Sign,
    Sqrt,
    AsNumber,
}

impl Function {
    /// Looks a function up by name, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Function> {
        const TABLE: &[(&str, Function)] = &[
            ("is_defined", Function::IsDefined),
            ("is_null", Function::IsNull),
            ("is_bool", Function::IsBool),
            ("is_number", Function::IsNumber),
            ("is_string", Function::IsString),
            ("is_object", Function::IsObject),
            ("is_array", Function::IsArray),
            ("is_primitive", Function::IsPrimitive),
            ("startswith", Function::StartsWith),
            ("starts_with", Function::StartsWith),
            ("endswith", Function::EndsWith),
            ("ends_with", Function::EndsWith),
            ("contains", Function::Contains),
            ("lower", Function::Lower),
            ("upper", Function::Upper),
            ("length", Function::Length),
            ("substring", Function::Substring),
            ("index_of", Function::IndexOf),
            ("concat", Function::Concat),
            ("abs", Function::Abs),
            ("ceiling", Function::Ceiling),
            ("floor", Function::Floor),
            ("exp", Function::Exp),
            ("power", Function::Power),
            ("square", Function::Square),
            ("sign", Function::Sign),
            ("sqrt", Function::Sqrt),
            ("as_number", Function::AsNumber),
        ];
        TABLE
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, function)| *function)
    }

    /// The canonical upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            Function::IsDefined => "IS_DEFINED",
            Function::IsNull => "IS_NULL",
            Function::IsBool => "IS_BOOL",
            Function::IsNumber => "IS_NUMBER",
            Function::IsString => "IS_STRING",
            Function::IsObject => "IS_OBJECT",
            Function::IsArray => "IS_ARRAY",
            Function::IsPrimitive => "IS_PRIMITIVE",
            Function::StartsWith => "STARTSWITH",
            Function::EndsWith => "ENDSWITH",
            Function::Contains => "CONTAINS",
            Function::Lower => "LOWER",
            Function::Upper => "UPPER",
            Function::Length => "LENGTH",
            Function::Substring => "SUBSTRING",
            Function::IndexOf => "INDEX_OF",
            Function::Concat => "CONCAT",
            Function::Abs => "ABS",
            Function::Ceiling => "CEILING",
            Function::Floor => "FLOOR",
            Function::Exp => "EXP",
            Function::Power => "POWER",
            Function::Square => "SQUARE",
            Function::Sign => "SIGN",
            Function::Sqrt => "SQRT",
            Function::AsNumber => "AS_NUMBER",
        }
    }

    /// The accepted argument counts as `(minimum, maximum)`; `None` means unbounded.
    pub fn arity(self) -> (usize, Option<usize>) {
        match self {
            Function::StartsWith
            | Function::EndsWith
            | Function::Contains
            | Function::IndexOf
            | Function::Power => (2, Some(2)),
            Function::Substring => (2, Some(3)),
            Function::Concat => (1, None),
            _ => (1, Some(1)),
        }
    }

    pub(crate) fn arity_text(self) -> &'static str {
        match self.arity() {
            (2, Some(2)) => "2",
            (2, Some(3)) => "2 or 3",
            (1, None) => "1 or more",
            _ => "1",
        }
    }

    /// Applies the function to already evaluated arguments. The parser guarantees the arity.
    pub(crate) fn apply<'a>(self, arguments: &mut [Value<'a>]) -> Value<'a> {
        let Some(first) = arguments.first_mut() else {
            return Value::Undefined;
        };
        match self {
            Function::IsDefined => Value::Bool(!matches!(first, Value::Undefined)),
            Function::IsNull => Value::Bool(matches!(first, Value::Null)),
            Function::IsBool => Value::Bool(matches!(first, Value::Bool(_))),
            Function::IsNumber => Value::Bool(matches!(first, Value::Number(_))),
            Function::IsString => Value::Bool(matches!(first, Value::String(_))),
            Function::IsObject => Value::Bool(matches!(first, Value::Object(_))),
            Function::IsArray => Value::Bool(matches!(first, Value::Array(_))),
            Function::IsPrimitive => Value::Bool(matches!(
                first,
                Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)
            )),
            Function::StartsWith => string_pair(arguments, |text, fragment| {
                Value::Bool(text.starts_with(fragment))
            }),
            Function::EndsWith => string_pair(arguments, |text, fragment| {
                Value::Bool(text.ends_with(fragment))
            }),
            Function::Contains => string_pair(arguments, |text, fragment| {
                Value::Bool(text.contains(fragment))
            }),
            Function::IndexOf => string_pair(arguments, |text, fragment| {
                Value::Number(
                    text.find(fragment)
                        .map_or(-1.0, |byte_index| text[..byte_index].chars().count() as f64),
                )
            }),
            Function::Lower => match first {
                Value::String(text) => Value::String(Cow::Owned(text.to_lowercase())),
                _ => Value::Undefined,
            },
            Function::Upper => match first {
                Value::String(text) => Value::String(Cow::Owned(text.to_uppercase())),
                _ => Value::Undefined,
            },
            Function::Length => match first {
                Value::String(text) => Value::Number(text.chars().count() as f64),
                _ => Value::Undefined,
            },
            Function::Substring => substring(arguments),
            Function::Concat => {
                let mut joined = String::new();
                for argument in arguments.iter() {
                    match argument {
                        Value::String(text) => joined.push_str(text),
                        _ => return Value::Undefined,
                    }
                }
                Value::String(Cow::Owned(joined))
            }
            Function::Abs => math(first, f64::abs),
            Function::Ceiling => math(first, f64::ceil),
            Function::Floor => math(first, f64::floor),
            Function::Exp => math(first, f64::exp),
            Function::Square => math(first, |number| number * number),
            Function::Sqrt => math(first, f64::sqrt),
            Function::Sign => math(first, |number| {
                if number > 0.0 {
                    1.0
                } else if number < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }),
            Function::Power => match (&arguments[0], arguments.get(1)) {
                (Value::Number(base), Some(Value::Number(exponent))) => {
                    Value::number(base.powf(*exponent))
                }
                _ => Value::Undefined,
            },
            Function::AsNumber => match first {
                Value::Number(number) => Value::Number(*number),
                Value::String(text) => {
                    parse_number(text.trim()).map_or(Value::Undefined, Value::Number)
                }
                _ => Value::Undefined,
            },
        }
    }
}

fn string_pair<'a>(
    arguments: &[Value<'a>],
    operation: impl Fn(&str, &str) -> Value<'a>,
) -> Value<'a> {
    match (arguments.first(), arguments.get(1)) {
        (Some(Value::String(text)), Some(Value::String(fragment))) => operation(text, fragment),
        _ => Value::Undefined,
    }
}

fn math<'a>(argument: &Value<'a>, operation: impl Fn(f64) -> f64) -> Value<'a> {
    match argument {
        Value::Number(number) => Value::number(operation(*number)),
        _ => Value::Undefined,
    }
}

/// `SUBSTRING(s, start[, length])`, 0-based and counted in characters. Out-of-range positions
/// are clamped; fractional positions are truncated.
fn substring<'a>(arguments: &mut [Value<'a>]) -> Value<'a> {
    let (Some(Value::String(text)), Some(Value::Number(start))) =
        (arguments.first(), arguments.get(1))
    else {
        return Value::Undefined;
    };
    let length = match arguments.get(2) {
        None => None,
        Some(Value::Number(length)) => Some(*length),
        Some(_) => return Value::Undefined,
    };
    let start = clamp_to_count(*start);
    let taken: String = match length {
        Some(length) => text
            .chars()
            .skip(start)
            .take(clamp_to_count(length))
            .collect(),
        None => text.chars().skip(start).collect(),
    };
    Value::String(Cow::Owned(taken))
}

fn clamp_to_count(number: f64) -> usize {
    if number.is_nan() || number <= 0.0 {
        0
    } else if number >= usize::MAX as f64 {
        usize::MAX
    } else {
        number.trunc() as usize
    }
}

/// Parses a decimal (or `0x` hexadecimal) number the way `AS_NUMBER` accepts it.
fn parse_number(text: &str) -> Option<f64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()? as f64
    } else {
        let valid = !digits.is_empty()
            && digits.bytes().all(|byte| {
                byte.is_ascii_digit() || matches!(byte, b'.' | b'e' | b'E' | b'+' | b'-')
            })
            && digits.as_bytes()[0] != b'+'
            && digits.as_bytes()[0] != b'-';
        if !valid {
            return None;
        }
        digits.parse::<f64>().ok()?
    };
    let number = if negative { -magnitude } else { magnitude };
    number.is_finite().then_some(number)
}
