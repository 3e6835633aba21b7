//! IoT Hub's rules for tags, desired and reported documents: key charset and length, string
//! length, integer range, nesting depth and section size.

use serde_json::{Map, Number, Value};

use crate::error::{TwinError, TwinSection};

/// Deepest allowed nesting level of an object or array. The section root is level 0 and its
/// direct children are level 1, so IoT Hub's documented example, ten nested objects `one` ..
/// `ten` with a primitive `property` inside `ten`, is exactly at the limit: a primitive may sit
/// inside a level-10 container, but an eleventh nested object or array is rejected.
pub const MAX_DEPTH: usize = 10;
/// Longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest string value, in bytes of UTF-8.
pub const MAX_STRING_VALUE_BYTES: usize = 4096;
/// Size limit of `tags` (see [`section_size_bytes`]).
pub const MAX_TAGS_BYTES: usize = 8 * 1024;
/// Size limit of `properties.desired` (see [`section_size_bytes`]).
pub const MAX_DESIRED_BYTES: usize = 32 * 1024;
/// Size limit of `properties.reported` (see [`section_size_bytes`]).
pub const MAX_REPORTED_BYTES: usize = 32 * 1024;
/// Smallest integer a twin may hold (-2^52), as documented by IoT Hub.
pub const MIN_INTEGER: i64 = -4_503_599_627_370_496;
/// Largest integer a twin may hold (2^52 - 1), as documented by IoT Hub.
pub const MAX_INTEGER: i64 = 4_503_599_627_370_495;

/// The size of a section document under IoT Hub's accounting: for every property, the size of
/// its key plus the size of its value, where strings (keys included) count their UTF-8 bytes
/// without control characters (Unicode C0 and C1), numbers count 8, booleans 4, nested objects
/// the sum of their properties and arrays the sum of their elements. `null` (which only
/// survives inside arrays) counts 0. System properties (`$version`, `$metadata`) are never part
/// of the content and so never counted.
pub fn section_size_bytes(document: &Map<String, Value>) -> usize {
    document
        .iter()
        .map(|(key, value)| text_size_bytes(key) + value_size_bytes(value))
        .sum()
}

/// Checks every key and value of a section write (a patch or a replacement document) against
/// IoT Hub's rules. `null` values are allowed anywhere: in a patch they delete keys.
pub(crate) fn validate_section_write(
    section: TwinSection,
    document: &Map<String, Value>,
) -> Result<(), TwinError> {
    let mut path = section.path().to_owned();
    validate_object(document, 0, &mut path)
}

/// Checks that a section whose size went from `previous_size` to `new_size` stays within its
/// limit. As IoT Hub documents, only operations that would grow a section beyond the limit
/// are refused, so a write that shrinks an (impossible today) oversized section still passes.
pub(crate) fn check_section_size(
    section: TwinSection,
    previous_size: usize,
    new_size: usize,
) -> Result<(), TwinError> {
    let limit = section.size_limit_bytes();
    if new_size > limit && new_size > previous_size {
        return Err(TwinError::SectionTooLarge {
            section,
            size: new_size,
            limit,
        });
    }
    Ok(())
}

fn validate_object(
    object: &Map<String, Value>,
    level: usize,
    path: &mut String,
) -> Result<(), TwinError> {
    if level > MAX_DEPTH {
        return Err(TwinError::TooDeep {
            path: path.clone(),
            level,
            limit: MAX_DEPTH,
        });
    }
    for (key, value) in object {
        validate_key(key, path)?;
        let parent_length = path.len();
        path.push('.');
        path.push_str(key);
        validate_value(value, level + 1, path)?;
        path.truncate(parent_length);
    }
    Ok(())
}

fn validate_value(value: &Value, level: usize, path: &mut String) -> Result<(), TwinError> {
    match value {
        Value::Null | Value::Bool(_) => Ok(()),
        Value::Number(number) => validate_number(number, path),
        Value::String(text) if text.len() > MAX_STRING_VALUE_BYTES => {
            Err(TwinError::StringValueTooLong {
                path: path.clone(),
                length: text.len(),
                limit: MAX_STRING_VALUE_BYTES,
            })
        }
        Value::String(_) => Ok(()),
        Value::Array(items) => {
            if level > MAX_DEPTH {
                return Err(TwinError::TooDeep {
                    path: path.clone(),
                    level,
                    limit: MAX_DEPTH,
                });
            }
            for (index, item) in items.iter().enumerate() {
                let parent_length = path.len();
                path.push_str(&format!("[{index}]"));
                validate_value(item, level + 1, path)?;
                path.truncate(parent_length);
            }
            Ok(())
        }
        Value::Object(object) => validate_object(object, level, path),
    }
}

fn validate_key(key: &str, parent_path: &str) -> Result<(), TwinError> {
    if key.is_empty() {
        return Err(TwinError::EmptyKey {
            path: parent_path.to_owned(),
        });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(TwinError::KeyTooLong {
            path: parent_path.to_owned(),
            length: key.len(),
            limit: MAX_KEY_BYTES,
        });
    }
    if key.starts_with('$') {
        return Err(TwinError::SystemKeyNotAllowed {
            path: parent_path.to_owned(),
            key: key.to_owned(),
        });
    }
    if let Some(character) = key
        .chars()
        .find(|&character| is_forbidden_key_character(character))
    {
        return Err(TwinError::ForbiddenKeyCharacter {
            path: parent_path.to_owned(),
            key: key.to_owned(),
            character,
        });
    }
    Ok(())
}

/// IoT Hub forbids `.`, `$`, the space and Unicode control characters (C0 and C1) in keys.
fn is_forbidden_key_character(character: char) -> bool {
    matches!(character, '.' | '$' | ' ') || character.is_control()
}

fn validate_number(number: &Number, path: &str) -> Result<(), TwinError> {
    let in_range = match (number.as_i64(), number.as_u64()) {
        (Some(integer), _) => (MIN_INTEGER..=MAX_INTEGER).contains(&integer),
        // Only integers above i64::MAX reach this arm.
        (None, Some(_)) => false,
        // Floating-point numbers have no documented range.
        (None, None) => true,
    };
    if in_range {
        Ok(())
    } else {
        Err(TwinError::IntegerOutOfRange {
            path: path.to_owned(),
            value: number.to_string(),
        })
    }
}

fn value_size_bytes(value: &Value) -> usize {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 4,
        Value::Number(_) => 8,
        Value::String(text) => text_size_bytes(text),
        Value::Array(items) => items.iter().map(value_size_bytes).sum(),
        Value::Object(object) => section_size_bytes(object),
    }
}

fn text_size_bytes(text: &str) -> usize {
    text.chars()
        .filter(|character| !character.is_control())
        .map(char::len_utf8)
        .sum()
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use serde_json::json;

    use super::*;

    fn check_size(document: Value, expect: Expect) {
        let Value::Object(object) = document else {
            panic!("test documents are objects")
        };
        expect.assert_eq(&section_size_bytes(&object).to_string());
    }

    #[test]
    fn size_accounting() {
        // "a" (1) + "xyz" (3)
        check_size(json!({"a": "xyz"}), expect!["4"]);
        // "n" (1) + 8, "b" (1) + 4
        check_size(json!({"n": 1.5, "b": true}), expect!["14"]);
        // "o" (1) + ("p" (1) + 8)
        check_size(json!({"o": {"p": 2}}), expect!["10"]);
        // "l" (1) + 8 + 4 + "s" (1) + 0
        check_size(json!({"l": [1, false, "s", null]}), expect!["14"]);
        // "é" is 2 bytes; the tab and U+0085 (C1) are not counted.
        check_size(json!({"é": "a\tb\u{85}"}), expect!["4"]);
        check_size(json!({}), expect!["0"]);
    }
}
