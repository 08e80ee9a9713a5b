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

/// A JSON array of non-negative integers, or `None` if it is anything else.
fn usizes(value: &Value) -> Option<Vec<usize>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
        .collect()
}

/// Reads every f32 tensor of `path`, by name, and the metadata. Every header field is checked
/// against the file before anything is allocated: a tensor's shape must multiply out (without
/// overflow) to exactly the bytes its offsets give it, and those must lie in the file.
pub fn read(path: &Path) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
    let bad = |message: &str| Error::BadFile {
        path: path.to_owned(),
        message: format!("not a safetensors file: {message}"),
    };
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .ok_or_else(|| bad("shorter than its 8-byte header length"))?;
    let header_end = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| bad(&format!("its header length {len} exceeds the file")))?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes[8..header_end])
        .map_err(|e| bad(&format!("its header is not a JSON object: {e}")))?;
    let data = &bytes[header_end..];
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
        let tensor_err = |what: String| bad(&format!("tensor `{name}`: {what}"));
        if info["dtype"] != "F32" {
            return Err(tensor_err(format!(
                "dtype {} (only F32 is read)",
                info["dtype"]
            )));
        }
        let shape = usizes(&info["shape"])
            .ok_or_else(|| tensor_err(format!("shape {} is not a list of sizes", info["shape"])))?;
        let range = usizes(&info["data_offsets"])
            .filter(|r| r.len() == 2 && r[0] <= r[1] && r[1] <= data.len())
            .ok_or_else(|| {
                tensor_err(format!(
                    "data_offsets {} do not lie within the {} bytes of data",
                    info["data_offsets"],
                    data.len()
                ))
            })?;
        let values = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|n| n.checked_mul(4) == Some(range[1] - range[0]))
            .ok_or_else(|| {
                tensor_err(format!(
                    "shape {shape:?} does not match its {} bytes of data",
                    range[1] - range[0]
                ))
            })?;
        let raw = &data[range[0]..range[1]];
        let mut out = Vec::with_capacity(values);
        out.extend(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        tensors.insert(
            name.clone(),
            Tensor {
                name,
                shape,
                data: out,
            },
        );
    }
    Ok((tensors, metadata))
}
