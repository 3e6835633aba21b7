//! RFC 7386 JSON merge patch over plain JSON objects, for callers that keep twin sections without
//! metadata (the edge agent's desired properties, the edge hub's twin cache).

use serde_json::{Map, Value};

/// Applies an RFC 7386 JSON merge patch to an object: `null` removes a key, objects merge,
/// anything else replaces.
pub fn json_merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner_patch) => {
                let entry = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(inner) = entry {
                    json_merge_patch(inner, inner_patch);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}
