//! Docker `createOptions`, including the chunked `createOptions01`…`createOptions07` form.

use serde_json::{Map, Value};

/// At most this many createOptions strings: `createOptions` plus `createOptions01`…`createOptions07`.
pub const MAX_CREATE_OPTIONS_CHUNKS: usize = 8;

/// The chunk length Azure's tools write (twin string values used to be limited to 512 characters).
pub const CREATE_OPTIONS_CHUNK_LENGTH: usize = 512;

const CREATE_OPTIONS_KEY: &str = "createOptions";

/// Why the createOptions of a module could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateOptionsError {
    #[error(
        "settings.{key} is not a createOptions chunk key; chunks are named createOptions01 to createOptions07"
    )]
    BadChunkKey { key: String },
    #[error(
        "settings.{key} is present but settings.{missing} is missing; createOptions chunks must be consecutive"
    )]
    Gap { key: String, missing: String },
    #[error("settings.{key} exceeds the limit of 8 createOptions chunks")]
    TooManyChunks { key: String },
    #[error("settings.{key} must be a string when createOptions is split into chunks")]
    ChunkNotString { key: String },
    #[error("settings.createOptions must be a string or an object, found {found}")]
    WrongType { found: &'static str },
    #[error("settings.createOptions is not valid JSON: {message}")]
    InvalidJson { message: String },
    #[error("settings.createOptions must be a JSON object, found {found}")]
    NotAnObject { found: &'static str },
}

/// Reads the createOptions of a module from its `settings` object.
///
/// The chunks `createOptions`, `createOptions01`, … are joined in order and parsed as one JSON
/// object. Without chunks, `createOptions` may also be a JSON object. Absent, empty, blank or
/// `"null"` options mean no options (an empty object), as in Azure.
pub fn assemble_create_options(
    settings: &Map<String, Value>,
) -> Result<Map<String, Value>, CreateOptionsError> {
    let mut chunk_indexes: Vec<(usize, &str)> = Vec::new();
    for key in settings.keys() {
        let Some(suffix) = key.strip_prefix(CREATE_OPTIONS_KEY) else {
            continue;
        };
        if suffix.is_empty() {
            continue;
        }
        let index = parse_chunk_suffix(suffix)
            .ok_or_else(|| CreateOptionsError::BadChunkKey { key: key.clone() })?;
        if index >= MAX_CREATE_OPTIONS_CHUNKS {
            return Err(CreateOptionsError::TooManyChunks { key: key.clone() });
        }
        chunk_indexes.push((index, key.as_str()));
    }
    chunk_indexes.sort();

    let base = settings
        .get(CREATE_OPTIONS_KEY)
        .filter(|value| !value.is_null());
    let joined = if chunk_indexes.is_empty() {
        match base {
            None => return Ok(Map::new()),
            Some(Value::Object(map)) => return Ok(map.clone()),
            Some(Value::String(text)) => text.clone(),
            Some(other) => {
                return Err(CreateOptionsError::WrongType {
                    found: json_type_name(other),
                });
            }
        }
    } else {
        let mut joined = String::new();
        match base {
            None => {
                return Err(CreateOptionsError::Gap {
                    key: chunk_indexes[0].1.to_owned(),
                    missing: CREATE_OPTIONS_KEY.to_owned(),
                });
            }
            Some(Value::String(text)) => joined.push_str(text),
            Some(_) => {
                return Err(CreateOptionsError::ChunkNotString {
                    key: CREATE_OPTIONS_KEY.to_owned(),
                });
            }
        }
        for (position, (index, key)) in chunk_indexes.iter().enumerate() {
            let expected_index = position + 1;
            if *index != expected_index {
                return Err(CreateOptionsError::Gap {
                    key: (*key).to_owned(),
                    missing: chunk_key(expected_index),
                });
            }
            match &settings[*key] {
                Value::String(text) => joined.push_str(text),
                _ => {
                    return Err(CreateOptionsError::ChunkNotString {
                        key: (*key).to_owned(),
                    });
                }
            }
        }
        joined
    };

    let trimmed = joined.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("null") {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(CreateOptionsError::NotAnObject {
            found: json_type_name(&other),
        }),
        Err(error) => Err(CreateOptionsError::InvalidJson {
            message: error.to_string(),
        }),
    }
}

/// Splits createOptions text into the settings keys and string values to write into a twin:
/// `createOptions` first, then `createOptions01`, … .
///
/// Chunks are [`CREATE_OPTIONS_CHUNK_LENGTH`] characters long, or longer when that would take
/// more than [`MAX_CREATE_OPTIONS_CHUNKS`] chunks, so that nothing is ever cut off (Azure drops
/// whatever does not fit) and [`assemble_create_options`] reads the result back.
pub fn chunk_create_options(text: &str) -> Vec<(String, String)> {
    let characters: Vec<char> = text.chars().collect();
    if characters.is_empty() {
        return vec![(CREATE_OPTIONS_KEY.to_owned(), String::new())];
    }
    let chunk_length =
        CREATE_OPTIONS_CHUNK_LENGTH.max(characters.len().div_ceil(MAX_CREATE_OPTIONS_CHUNKS));
    characters
        .chunks(chunk_length)
        .enumerate()
        .map(|(index, chunk)| (chunk_key(index), chunk.iter().collect()))
        .collect()
}

fn chunk_key(index: usize) -> String {
    if index == 0 {
        CREATE_OPTIONS_KEY.to_owned()
    } else {
        format!("{CREATE_OPTIONS_KEY}{index:02}")
    }
}

/// Reads the two-digit suffix of `createOptionsNN`; `00` and anything but two digits are refused.
fn parse_chunk_suffix(suffix: &str) -> Option<usize> {
    let bytes = suffix.as_bytes();
    if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let index = usize::from(bytes[0] - b'0') * 10 + usize::from(bytes[1] - b'0');
    (index > 0).then_some(index)
}

pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn check(settings: Value, expect: Expect) {
        let Value::Object(settings) = settings else {
            panic!("settings must be an object")
        };
        let rendered = match assemble_create_options(&settings) {
            Ok(options) => format!("ok {}", Value::Object(options)),
            Err(error) => format!("error: {error}"),
        };
        expect.assert_eq(&rendered);
    }

    #[test]
    fn assembles_create_options() {
        check(json!({"image": "x"}), expect!["ok {}"]);
        check(json!({"createOptions": ""}), expect!["ok {}"]);
        check(json!({"createOptions": "  null "}), expect!["ok {}"]);
        check(json!({"createOptions": null}), expect!["ok {}"]);
        check(
            json!({"createOptions": "{\"Hostname\":\"a\"}"}),
            expect![[r#"ok {"Hostname":"a"}"#]],
        );
        check(
            json!({"createOptions": {"Hostname": "a"}}),
            expect![[r#"ok {"Hostname":"a"}"#]],
        );
        check(
            json!({"createOptions": "{\"Host", "createOptions01": "name\":", "createOptions02": "\"a\"}"}),
            expect![[r#"ok {"Hostname":"a"}"#]],
        );
        check(
            json!({"createOptions": "{\"Host", "createOptions02": "\"a\"}"}),
            expect![
                "error: settings.createOptions02 is present but settings.createOptions01 is missing; createOptions chunks must be consecutive"
            ],
        );
        check(
            json!({"createOptions01": "{}"}),
            expect![
                "error: settings.createOptions01 is present but settings.createOptions is missing; createOptions chunks must be consecutive"
            ],
        );
        check(
            json!({"createOptions": "{", "createOptions08": "}"}),
            expect!["error: settings.createOptions08 exceeds the limit of 8 createOptions chunks"],
        );
        check(
            json!({"createOptions": "{", "createOptions1": "}"}),
            expect![
                "error: settings.createOptions1 is not a createOptions chunk key; chunks are named createOptions01 to createOptions07"
            ],
        );
        check(
            json!({"createOptions": "{", "createOptions00": "}"}),
            expect![
                "error: settings.createOptions00 is not a createOptions chunk key; chunks are named createOptions01 to createOptions07"
            ],
        );
        check(
            json!({"createOptions": {"a": 1}, "createOptions01": "}"}),
            expect![
                "error: settings.createOptions must be a string when createOptions is split into chunks"
            ],
        );
        check(
            json!({"createOptions": "{", "createOptions01": 5}),
            expect![
                "error: settings.createOptions01 must be a string when createOptions is split into chunks"
            ],
        );
        check(
            json!({"createOptions": 5}),
            expect!["error: settings.createOptions must be a string or an object, found a number"],
        );
        check(
            json!({"createOptions": "[1]"}),
            expect!["error: settings.createOptions must be a JSON object, found an array"],
        );
        check(
            json!({"createOptions": "{\"a\":"}),
            expect![
                "error: settings.createOptions is not valid JSON: EOF while parsing a value at line 1 column 5"
            ],
        );
    }

    #[test]
    fn chunks_use_512_characters_and_never_more_than_eight_keys() {
        let short = chunk_create_options("{}");
        assert_eq!(short, vec![("createOptions".to_owned(), "{}".to_owned())]);
        let text = "x".repeat(1100);
        let keys: Vec<(String, usize)> = chunk_create_options(&text)
            .into_iter()
            .map(|(key, chunk)| (key, chunk.len()))
            .collect();
        assert_eq!(
            format!("{keys:?}"),
            r#"[("createOptions", 512), ("createOptions01", 512), ("createOptions02", 76)]"#
        );
        assert_eq!(chunk_create_options(&"y".repeat(10_000)).len(), 8);
    }

    proptest! {
        #[test]
        fn chunking_round_trips(
            entries in prop::collection::btree_map("[A-Za-z]{1,12}", "[ -~é€]{0,300}", 0..40)
        ) {
            let options: Map<String, Value> =
                entries.into_iter().map(|(key, value)| (key, Value::String(value))).collect();
            let text = serde_json::to_string(&options).unwrap();
            let settings: Map<String, Value> = chunk_create_options(&text)
                .into_iter()
                .map(|(key, chunk)| (key, Value::String(chunk)))
                .collect();
            prop_assert!(settings.len() <= MAX_CREATE_OPTIONS_CHUNKS);
            prop_assert_eq!(assemble_create_options(&settings).unwrap(), options);
        }
    }
}
