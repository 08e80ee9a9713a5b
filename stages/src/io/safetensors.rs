//! Writing and reading `.safetensors` files (the format PyTorch's `safetensors` package loads):
//! an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
//! byte range, then the raw little-endian data.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// A named f32 tensor.
pub struct Tensor {
    /// Its name (`dense_0.weight`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Writes `tensors` with string `metadata` (`__metadata__`).
pub fn write(path: &Path, tensors: &[Tensor], metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut header = Map::new();
    let mut offset = 0usize;
    for t in tensors {
        let bytes = t.data.len() * 4;
        header.insert(
            t.name.clone(),
            json!({"dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    header.insert(
        "__metadata__".into(),
        Value::Object(
            metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    );
    let mut text = serde_json::to_string(&Value::Object(header)).map_err(|e| Error::Numerical {
        what: "encoding a safetensors header",
        message: e.to_string(),
    })?;
    // The data must start 8-byte aligned.
    while (8 + text.len()) % 8 != 0 {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    for t in tensors {
        for v in &t.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, out).map_err(Error::io("write", path))
}

/// A JSON array of non-negative integers (empty if it is not one).
fn usizes(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|v| v as usize)
                .collect()
        })
        .unwrap_or_default()
}

/// Reads every f32 tensor of `path`, by name, and the metadata.
pub fn read(path: &Path) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
    let bad = |message: &str| Error::BadFile {
        path: path.to_owned(),
        message: format!("not a safetensors file: {message}"),
    };
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize)
        .ok_or_else(|| bad("too short"))?;
    let header: Map<String, Value> = bytes
        .get(8..8 + len)
        .and_then(|h| serde_json::from_slice(h).ok())
        .ok_or_else(|| bad("unreadable header"))?;
    let data = &bytes[8 + len..];
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, info) in header {
        if name == "__metadata__" {
            if let Value::Object(m) = info {
                metadata = m
                    .into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                    .collect();
            }
            continue;
        }
        if info["dtype"] != "F32" {
            return Err(bad(&format!("tensor `{name}` is not F32")));
        }
        let shape = usizes(&info["shape"]);
        let range = usizes(&info["data_offsets"]);
        let raw = range
            .get(1)
            .and_then(|&end| data.get(range[0]..end))
            .ok_or_else(|| bad(&format!("tensor `{name}` lies outside the file")))?;
        let values = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(
            name.clone(),
            Tensor {
                name,
                shape,
                data: values,
            },
        );
    }
    Ok((tensors, metadata))
}
