//! Features and multi-label targets joined by track id, as the f32 rows the networks train on.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::parquet::read_matrix;

/// Features and labels aligned by track id, as f32 rows.
pub struct Dataset {
    /// Track ids.
    pub ids: Vec<i64>,
    /// Features, `ids.len() x x_width`.
    pub x: Vec<f32>,
    /// Feature count.
    pub x_width: usize,
    /// Labels, `ids.len() x y_width`.
    pub y: Vec<f32>,
    /// Label count.
    pub y_width: usize,
    /// Label names.
    pub labels: Vec<String>,
}

/// Reads features and labels, keeping tracks present in both, in feature order.
pub fn load(features: &Path, labels: &Path) -> Result<Dataset> {
    let f = read_matrix(features)?;
    let l = read_matrix(labels)?;
    let row_of: HashMap<i64, usize> = l
        .track_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let (mut ids, mut x, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for (i, id) in f.track_ids.iter().enumerate() {
        if let Some(&r) = row_of.get(id) {
            ids.push(*id);
            x.extend(f.values.row(i).iter().map(|v| *v as f32));
            y.extend(l.values.row(r).iter().map(|v| *v as f32));
        }
    }
    if ids.len() < 10 {
        return Err(Error::TooFew {
            what: "tracks with both features and labels".into(),
            needed: 10,
            got: ids.len(),
        });
    }
    Ok(Dataset {
        ids,
        x,
        x_width: f.columns.len(),
        y,
        y_width: l.columns.len(),
        labels: l.columns,
    })
}
