//! The FMA split of each track (`set.split`: training, validation or test), read from the
//! ingested `tracks.parquet`.

use std::collections::HashMap;
use std::path::Path;

use arrow_array::{Int64Array, StringArray};

use crate::error::{Error, Result};
use crate::io::parquet::{column_index, read_batches};

/// `track_id -> set.split` from `tracks.parquet`.
pub fn read_splits(path: &Path) -> Result<HashMap<i64, String>> {
    let (schema, batches) = read_batches(path)?;
    let (id_col, split_col) = (
        column_index(&schema, "track_id", path)?,
        column_index(&schema, "set.split", path)?,
    );
    let mut out = HashMap::new();
    for batch in batches {
        let ids = batch.column(id_col).as_any().downcast_ref::<Int64Array>();
        let splits = batch
            .column(split_col)
            .as_any()
            .downcast_ref::<StringArray>();
        let (Some(ids), Some(splits)) = (ids, splits) else {
            return Err(Error::BadFile {
                path: path.to_owned(),
                message: "`track_id` must be int64 and `set.split` text".into(),
            });
        };
        for (id, split) in ids.iter().zip(splits.iter()) {
            if let (Some(id), Some(split)) = (id, split) {
                out.insert(id, split.to_owned());
            }
        }
    }
    Ok(out)
}
