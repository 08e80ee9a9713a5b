//! How tracks are split into the sets a model trains, tunes and is scored on: the original's
//! seeded random split, or the FMA split (`set.split`: training, validation or test), which
//! keeps every artist on one side, read from the ingested `tracks.parquet`.

use std::collections::HashMap;
use std::path::Path;

use arrow_array::{Int64Array, StringArray};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::parquet::{column_index, read_batches};

/// How tracks are split into training and test sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Seeded random splits (the original analysis). A test track's album- and artist-mates
    /// are mostly in the training set.
    Random,
    /// The FMA split: train on `training`, tune on `validation`, score on `test`. No artist
    /// is on two sides.
    Fma,
}

/// Row indexes of one split, each sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowSets {
    /// Rows a model is fitted on.
    pub train: Vec<usize>,
    /// Rows thresholds and hyper-parameters are tuned on.
    pub validation: Vec<usize>,
    /// Rows the reported scores come from.
    pub test: Vec<usize>,
}

impl RowSets {
    /// An error naming the first set with fewer than `needed` rows (`what` says which rows
    /// were counted).
    pub fn require(&self, needed: usize, what: &str) -> Result<()> {
        for (set, rows) in [
            ("training", &self.train),
            ("validation", &self.validation),
            ("test", &self.test),
        ] {
            if rows.len() < needed {
                return Err(Error::TooFew {
                    what: format!("{what} in the {set} set"),
                    needed,
                    got: rows.len(),
                });
            }
        }
        Ok(())
    }
}

/// The rows of `ids` in each FMA set; tracks with another or no `set.split` are left out.
pub fn fma_rows(ids: &[i64], split_of: &HashMap<i64, String>) -> RowSets {
    let mut sets = RowSets::default();
    for (row, id) in ids.iter().enumerate() {
        match split_of.get(id).map(String::as_str) {
            Some("training") => sets.train.push(row),
            Some("validation") => sets.validation.push(row),
            Some("test") => sets.test.push(row),
            _ => {}
        }
    }
    sets
}

/// Rows `0..n` split at random (seeded): `test_share` of them for test, `validation_share`
/// for validation, the rest for training; each set keeps at least one row where `n >= 3`.
pub fn random_rows(n: usize, test_share: f64, validation_share: f64, seed: u64) -> RowSets {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let count = |share: f64| ((n as f64 * share).round() as usize).max(1);
    let test = count(test_share).min(n.saturating_sub(2));
    let validation = count(validation_share).min(n.saturating_sub(test + 1));
    let sorted = |rows: &[usize]| {
        let mut rows = rows.to_vec();
        rows.sort_unstable();
        rows
    };
    RowSets {
        test: sorted(&order[..test]),
        validation: sorted(&order[test..test + validation]),
        train: sorted(&order[test + validation..]),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_rows_partition_every_row() {
        let sets = random_rows(100, 0.2, 0.1, 7);
        assert_eq!(
            (sets.train.len(), sets.validation.len(), sets.test.len()),
            (70, 10, 20)
        );
        let mut all: Vec<usize> = [sets.train, sets.validation, sets.test].concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        let tiny = random_rows(3, 0.5, 0.5, 1);
        assert_eq!(
            (tiny.train.len(), tiny.validation.len(), tiny.test.len()),
            (1, 1, 1)
        );
    }

    #[test]
    fn fma_rows_follow_set_split_and_skip_the_rest() {
        let split_of: HashMap<i64, String> = [
            (10, "test"),
            (11, "training"),
            (12, "validation"),
            (13, "training"),
            (14, "other"),
        ]
        .into_iter()
        .map(|(id, s)| (id, s.to_owned()))
        .collect();
        let sets = fma_rows(&[10, 11, 12, 13, 14, 15], &split_of);
        assert_eq!(
            sets,
            RowSets {
                train: vec![1, 3],
                validation: vec![2],
                test: vec![0]
            }
        );
    }
}
