//! The components of a stage's cache key and their canonical encoding.
//!
//! The key is blake3 over the canonical JSON of [`StageKey`]: object keys sorted at every
//! depth, no whitespace, numbers as serde_json prints them. The components are also stored
//! (in the manifest and `pipeline.lock`) so a later run can say what changed.
//! What goes in, and what is deliberately left out, is documented in `fingerprint.rs`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::content_hash::ContentHash;

/// Bumped when the cache layout or key encoding changes; old entries are then ignored.
pub const CACHE_FORMAT: u32 = 1;

/// One input of a stage as it enters the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInput {
    /// `stage:output`, or a path relative to `pipeline.toml`.
    pub name: String,
    /// The input's content hash.
    pub hash: ContentHash,
}

/// Everything that decides a stage's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageKey {
    /// [`CACHE_FORMAT`] when the key was made.
    pub format: u32,
    /// The stage's name (it is written into every artifact's provenance).
    pub stage: String,
    /// The stage kind.
    pub kind: String,
    /// The kind's code version.
    pub code_version: String,
    /// Parameters with defaults filled in.
    pub params: Value,
    /// Inputs in declaration order.
    pub inputs: Vec<KeyInput>,
    /// Code files (a command's scripts) by path, with their content hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<KeyInput>,
    /// Environment variables by name, with a hash of each value (`unset` when unset), so a
    /// secret never lands in the manifest or the lock file.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
}

/// The blake3 digest of a [`StageKey`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyHash(pub String);

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl KeyHash {
    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }
}

impl StageKey {
    /// The canonical encoding (see the module docs).
    pub fn canonical_json(&self) -> String {
        // Built by hand rather than through `serde_json::to_value`, which cannot fail here but
        // returns a `Result`: the fields and their names are those of the derived encoding.
        let inputs: Vec<Value> = self
            .inputs
            .iter()
            .map(|input| serde_json::json!({"name": input.name, "hash": input.hash.to_hex()}))
            .collect();
        let mut value = serde_json::json!({
            "format": self.format,
            "stage": self.stage,
            "kind": self.kind,
            "code_version": self.code_version,
            "params": self.params,
            "inputs": inputs,
        });
        // Only stages that have them carry these, so every other key is as it was.
        if !self.code.is_empty() {
            value["code"] = self
                .code
                .iter()
                .map(|c| serde_json::json!({"name": c.name, "hash": c.hash.to_hex()}))
                .collect();
        }
        if !self.env.is_empty() {
            value["env"] = serde_json::json!(self.env);
        }
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }

    /// The key: blake3 of the canonical encoding.
    pub fn hash(&self) -> KeyHash {
        KeyHash(
            blake3::hash(self.canonical_json().as_bytes())
                .to_hex()
                .to_string(),
        )
    }
}

/// Writes `value` as JSON with object keys sorted at every depth.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push(':');
                write_canonical(&map[*key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let key = StageKey {
            format: 1,
            stage: "pca".into(),
            kind: "pca".into(),
            code_version: "abc".into(),
            params: serde_json::json!({"b": 1, "a": {"z": true, "y": [2, 1]}}),
            inputs: vec![],
            code: vec![],
            env: Default::default(),
        };
        assert_eq!(
            key.canonical_json(),
            r#"{"code_version":"abc","format":1,"inputs":[],"kind":"pca","params":{"a":{"y":[2,1],"z":true},"b":1},"stage":"pca"}"#
        );
        // Pinned so that an accidental change to the encoding is noticed: it would
        // invalidate every cache entry.
        assert_eq!(
            key.hash().0,
            blake3::hash(key.canonical_json().as_bytes())
                .to_hex()
                .as_str()
        );
        assert_eq!(key.hash().short(), "cb870bc9eb10");
        // The hand-built encoding is the derived one, keys sorted.
        let with_input = StageKey {
            inputs: vec![KeyInput {
                name: "a:b".into(),
                hash: ContentHash::of(b"x"),
            }],
            code: vec![KeyInput {
                name: "scripts/x.py".into(),
                hash: ContentHash::of(b"print(1)"),
            }],
            env: [("MY_SETTING".to_owned(), "abc".to_owned())].into(),
            ..key
        };
        let mut derived = String::new();
        write_canonical(
            &serde_json::to_value(&with_input).unwrap_or_else(|e| panic!("{e}")),
            &mut derived,
        );
        assert_eq!(with_input.canonical_json(), derived);
    }
}
