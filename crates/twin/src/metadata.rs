//! `$metadata` trees: a `$lastUpdated` timestamp (and, in desired properties, a
//! `$lastUpdatedVersion`) for every object and every leaf of a section.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::timestamp::TwinTimestamp;

/// Metadata for one node of a section document. The tree has exactly the shape of the content
/// it describes: the node of an object has one child per key, the node of any other value
/// (arrays included, which IoT Hub treats as leaves) has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataNode {
    last_updated: TwinTimestamp,
    last_updated_version: Option<u64>,
    children: BTreeMap<String, MetadataNode>,
}

/// When a write happened and, for desired properties, which `$version` it produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UpdateStamp {
    pub(crate) at: TwinTimestamp,
    pub(crate) version: Option<u64>,
}

pub(crate) const LAST_UPDATED_KEY: &str = "$lastUpdated";
pub(crate) const LAST_UPDATED_VERSION_KEY: &str = "$lastUpdatedVersion";

// === impl MetadataNode ===

impl MetadataNode {
    /// When this node, or anything below it, was last written (deletes of children included).
    pub fn last_updated(&self) -> TwinTimestamp {
        self.last_updated
    }

    /// The desired `$version` of the last write that touched this node; always `None` in
    /// reported properties and on a freshly created desired section.
    pub fn last_updated_version(&self) -> Option<u64> {
        self.last_updated_version
    }

    /// The metadata of the child `key`, when this node describes an object holding `key`.
    pub fn child(&self, key: &str) -> Option<&MetadataNode> {
        self.children.get(key)
    }

    /// The children in key order.
    pub fn children(&self) -> impl Iterator<Item = (&str, &MetadataNode)> {
        self.children.iter().map(|(key, node)| (key.as_str(), node))
    }

    /// Renders the node as IoT Hub's `$metadata` JSON object.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert(
            LAST_UPDATED_KEY.to_owned(),
            Value::String(self.last_updated.to_string()),
        );
        if let Some(version) = self.last_updated_version {
            object.insert(LAST_UPDATED_VERSION_KEY.to_owned(), Value::from(version));
        }
        for (key, child) in &self.children {
            object.insert(key.clone(), child.to_json());
        }
        Value::Object(object)
    }

    /// Parses a `$metadata` JSON object written by [`MetadataNode::to_json`].
    pub(crate) fn from_json(value: &Value, path: &str) -> Result<MetadataNode, String> {
        let Value::Object(object) = value else {
            return Err(format!("{path} is not an object"));
        };
        let last_updated = match object.get(LAST_UPDATED_KEY) {
            Some(Value::String(text)) => {
                TwinTimestamp::parse(text).map_err(|error| format!("{path}: {error}"))?
            }
            _ => return Err(format!("{path} has no string {LAST_UPDATED_KEY}")),
        };
        let last_updated_version = match object.get(LAST_UPDATED_VERSION_KEY) {
            None => None,
            Some(version) => Some(version.as_u64().ok_or_else(|| {
                format!("{path}.{LAST_UPDATED_VERSION_KEY} is not an unsigned integer")
            })?),
        };
        let mut children = BTreeMap::new();
        for (key, child) in object {
            if key == LAST_UPDATED_KEY || key == LAST_UPDATED_VERSION_KEY {
                continue;
            }
            children.insert(
                key.clone(),
                MetadataNode::from_json(child, &format!("{path}.{key}"))?,
            );
        }
        Ok(MetadataNode {
            last_updated,
            last_updated_version,
            children,
        })
    }

    /// Whether this tree has exactly the shape of `value` (see the type documentation).
    pub fn describes(&self, value: &Value) -> bool {
        match value {
            Value::Object(object) => {
                object.len() == self.children.len()
                    && object.iter().all(|(key, child_value)| {
                        self.children
                            .get(key)
                            .is_some_and(|child| child.describes(child_value))
                    })
            }
            _ => self.children.is_empty(),
        }
    }

    /// A node without children, stamped with `stamp`.
    pub(crate) fn leaf(stamp: UpdateStamp) -> MetadataNode {
        MetadataNode {
            last_updated: stamp.at,
            last_updated_version: stamp.version,
            children: BTreeMap::new(),
        }
    }

    fn touch(&mut self, stamp: UpdateStamp) {
        self.last_updated = stamp.at;
        self.last_updated_version = stamp.version;
    }
}

/// Applies a JSON merge patch (RFC 7386 as IoT Hub applies it) to `target`, keeping `metadata`
/// (the node describing `target`) in step: `null` deletes a key and its metadata, an object
/// merges into an existing object or replaces any other value, and every other value (arrays
/// included) replaces. Every node the patch passes through or writes is stamped; the nodes of
/// untouched siblings keep their stamps. `null`s inside objects that do not exist yet are
/// dropped, as RFC 7386 prescribes.
pub(crate) fn merge_patch(
    target: &mut Map<String, Value>,
    metadata: &mut MetadataNode,
    patch: &Map<String, Value>,
    stamp: UpdateStamp,
) {
    metadata.touch(stamp);
    for (key, patch_value) in patch {
        match patch_value {
            Value::Null => {
                target.remove(key);
                metadata.children.remove(key);
            }
            Value::Object(patch_object) => {
                if let Some(Value::Object(existing)) = target.get_mut(key) {
                    let child = metadata
                        .children
                        .entry(key.clone())
                        .or_insert_with(|| MetadataNode::leaf(stamp));
                    merge_patch(existing, child, patch_object, stamp);
                } else {
                    let mut created = Map::new();
                    let mut child = MetadataNode::leaf(stamp);
                    merge_patch(&mut created, &mut child, patch_object, stamp);
                    target.insert(key.clone(), Value::Object(created));
                    metadata.children.insert(key.clone(), child);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
                metadata
                    .children
                    .insert(key.clone(), MetadataNode::leaf(stamp));
            }
        }
    }
}

/// The metadata IoT Hub attaches to an applied patch in twin change events: a stamped node for
/// the root and for every non-`null` value of the patch, recursively.
pub(crate) fn metadata_for_patch(patch: &Map<String, Value>, stamp: UpdateStamp) -> MetadataNode {
    let mut node = MetadataNode::leaf(stamp);
    for (key, value) in patch {
        match value {
            Value::Null => {}
            Value::Object(object) => {
                node.children
                    .insert(key.clone(), metadata_for_patch(object, stamp));
            }
            _ => {
                node.children.insert(key.clone(), MetadataNode::leaf(stamp));
            }
        }
    }
    node
}
