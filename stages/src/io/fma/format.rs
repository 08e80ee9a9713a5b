//! The FMA metadata file formats (`fma_metadata/*.csv`): column layouts shared by the
//! synthetic source that writes them and the ingest stage that reads them.
//!
//! This is the contract from `procedures.md`, not whatever our generator happens to write:
//! `features.csv` opens with four header lines (`feature`, `statistics`, `number`,
//! `track_id`), `tracks.csv` with three (top level, field, `track_id`), and `genres.csv`
//! with `genre_id,#tracks,parent,title,top_level`.

use std::collections::BTreeMap;

/// The feature families and their coefficient counts, sorted by name.
pub const FEATURE_FAMILIES: [(&str, usize); 11] = [
    ("chroma_cens", 12),
    ("chroma_cqt", 12),
    ("chroma_stft", 12),
    ("mfcc", 20),
    ("rmse", 1),
    ("spectral_bandwidth", 1),
    ("spectral_centroid", 1),
    ("spectral_contrast", 7),
    ("spectral_rolloff", 1),
    ("tonnetz", 6),
    ("zcr", 1),
];

/// The seven statistics of every coefficient, sorted by name.
pub const STATISTICS: [&str; 7] = ["kurtosis", "max", "mean", "median", "min", "skew", "std"];

/// The number of feature columns.
pub const FEATURE_COUNT: usize = 518;

/// One feature column: (family, statistic, two-digit number).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeatureColumn {
    /// `mfcc`, `chroma_cens`, ...
    pub family: &'static str,
    /// `mean`, `std`, ...
    pub statistic: &'static str,
    /// `01`, `02`, ...
    pub number: String,
}

impl FeatureColumn {
    /// The Parquet column name, `family.statistic.number` (`mfcc.mean.01`).
    pub fn name(&self) -> String {
        format!("{}.{}.{}", self.family, self.statistic, self.number)
    }
}

/// Every feature column in file order: sorted by (family, statistic, number).
pub fn feature_columns() -> Vec<FeatureColumn> {
    let mut columns = Vec::with_capacity(FEATURE_COUNT);
    for (family, count) in FEATURE_FAMILIES {
        for statistic in STATISTICS {
            for n in 1..=count {
                columns.push(FeatureColumn {
                    family,
                    statistic,
                    number: format!("{n:02}"),
                });
            }
        }
    }
    columns
}

/// How a `tracks.csv` column is typed in `tracks.parquet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackColumnType {
    /// 64-bit integer (nullable).
    Int,
    /// 64-bit float (nullable).
    Float,
    /// `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD`, as a timestamp in milliseconds.
    Timestamp,
    /// A list literal of genre ids such as `[21, 811]`, as `list<int32>`.
    GenreList,
    /// Text kept exactly (empty means null).
    Text,
}

use TrackColumnType::{Float, GenreList, Int, Text, Timestamp};

/// The 52 columns of `tracks.csv` in file order: (top level, field, type).
pub const TRACK_COLUMNS: [(&str, &str, TrackColumnType); 52] = [
    ("album", "comments", Int),
    ("album", "date_created", Timestamp),
    ("album", "date_released", Timestamp),
    ("album", "engineer", Text),
    ("album", "favorites", Int),
    ("album", "id", Int),
    ("album", "information", Text),
    ("album", "listens", Int),
    ("album", "producer", Text),
    ("album", "tags", Text),
    ("album", "title", Text),
    ("album", "tracks", Int),
    ("album", "type", Text),
    ("artist", "active_year_begin", Timestamp),
    ("artist", "active_year_end", Timestamp),
    ("artist", "associated_labels", Text),
    ("artist", "bio", Text),
    ("artist", "comments", Int),
    ("artist", "date_created", Timestamp),
    ("artist", "favorites", Int),
    ("artist", "id", Int),
    ("artist", "latitude", Float),
    ("artist", "location", Text),
    ("artist", "longitude", Float),
    ("artist", "members", Text),
    ("artist", "name", Text),
    ("artist", "related_projects", Text),
    ("artist", "tags", Text),
    ("artist", "website", Text),
    ("artist", "wikipedia_page", Text),
    ("set", "split", Text),
    ("set", "subset", Text),
    ("track", "bit_rate", Int),
    ("track", "comments", Int),
    ("track", "composer", Text),
    ("track", "date_created", Timestamp),
    ("track", "date_recorded", Timestamp),
    ("track", "duration", Int),
    ("track", "favorites", Int),
    ("track", "genre_top", Text),
    ("track", "genres", GenreList),
    ("track", "genres_all", GenreList),
    ("track", "information", Text),
    ("track", "interest", Int),
    ("track", "language_code", Text),
    ("track", "license", Text),
    ("track", "listens", Int),
    ("track", "lyricist", Text),
    ("track", "number", Int),
    ("track", "publisher", Text),
    ("track", "tags", Text),
    ("track", "title", Text),
];

/// The header of `genres.csv`.
pub const GENRES_HEADER: [&str; 5] = ["genre_id", "#tracks", "parent", "title", "top_level"];

/// The real FMA genre taxonomy (CC BY 4.0), used by the synthetic source.
pub const REAL_GENRES_CSV: &str = include_str!("../../../data/genres.csv");

/// One row of `genres.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genre {
    /// The genre's id.
    pub id: i32,
    /// How many tracks have it (in `genres_all`).
    pub tracks: i64,
    /// The parent genre's id, 0 for a top-level genre.
    pub parent: i32,
    /// The genre's name.
    pub title: String,
    /// The id of its top-level ancestor.
    pub top_level: i32,
}

/// A genre taxonomy in file order, with lookups by id.
#[derive(Debug, Clone)]
pub struct Taxonomy {
    /// The genres in file order.
    pub genres: Vec<Genre>,
    index: BTreeMap<i32, usize>,
}

impl Taxonomy {
    /// Builds the lookups for `genres` (ids must be unique).
    pub fn new(genres: Vec<Genre>) -> Self {
        let index = genres.iter().enumerate().map(|(i, g)| (g.id, i)).collect();
        Self { genres, index }
    }

    /// The position of genre `id` in file order.
    pub fn position(&self, id: i32) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// `id` and all its ancestors.
    pub fn with_ancestors(&self, id: i32) -> Vec<i32> {
        let mut out = vec![id];
        let mut current = id;
        let mut guard = 0;
        while let Some(genre) = self.position(current).map(|i| &self.genres[i]) {
            if genre.parent == 0 || guard > 64 {
                break;
            }
            out.push(genre.parent);
            current = genre.parent;
            guard += 1;
        }
        out
    }
}

/// Formats a genre list as pandas writes it: `[21, 811]`, `[]`.
pub fn format_genre_list(ids: &[i32]) -> String {
    let items: Vec<String> = ids.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// Parses a genre list literal (`[21, 811]`, `[]`); `Err` says what is wrong.
pub fn parse_genre_list(text: &str) -> Result<Vec<i32>, String> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("expected a list literal such as [21, 811], got {text:?}"))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|item| {
            item.trim().parse::<i32>().map_err(|_| {
                format!(
                    "list item {:?} in {text:?} is not an integer genre id",
                    item.trim()
                )
            })
        })
        .collect()
}

/// Formats a float as pandas does with `%.6e`-like output: `7.180653e+00`.
pub fn format_scientific(value: f64, out: &mut String) {
    use std::fmt::Write as _;
    // Written straight into `out`, then the exponent is rewritten in place: Rust writes
    // `7.180653e0` and `-1.230000e-3`, pandas `7.180653e+00` and `-1.230000e-03`. No string
    // of its own per value: the synthetic source formats 55 million of them at full scale.
    let start = out.len();
    let _ = write!(out, "{value:.6e}");
    let Some(e) = out[start..].find('e') else {
        return; // NaN and infinities have no exponent
    };
    let exponent_at = start + e + 1;
    let negative = out[exponent_at..].starts_with('-');
    let mut digits = [b'0'; 4];
    let mut count = 0;
    for digit in out[exponent_at..].bytes().filter(u8::is_ascii_digit) {
        if let Some(slot) = digits.get_mut(count) {
            *slot = digit;
            count += 1;
        }
    }
    out.truncate(exponent_at);
    out.push(if negative { '-' } else { '+' });
    if count < 2 {
        out.push('0');
    }
    out.extend(digits[..count].iter().map(|d| char::from(*d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_518_feature_columns_in_sorted_order() {
        let columns = feature_columns();
        assert_eq!(columns.len(), FEATURE_COUNT);
        assert_eq!(columns[0].name(), "chroma_cens.kurtosis.01");
        assert_eq!(columns[517].name(), "zcr.std.01");
        let mut sorted = columns.clone();
        sorted.sort();
        assert_eq!(sorted, columns);
    }

    #[test]
    fn genre_lists_round_trip_and_reject_garbage() {
        assert_eq!(parse_genre_list("[21, 811]"), Ok(vec![21, 811]));
        assert_eq!(parse_genre_list("[]"), Ok(vec![]));
        assert_eq!(format_genre_list(&[21, 811]), "[21, 811]");
        assert!(parse_genre_list("[21, x]").is_err());
        assert!(parse_genre_list("21, 811").is_err());
    }

    #[test]
    fn scientific_format_matches_pandas() {
        let mut s = String::new();
        format_scientific(7.1806526, &mut s);
        s.push(' ');
        format_scientific(-0.00123, &mut s);
        assert_eq!(s, "7.180653e+00 -1.230000e-03");
        let formatted = |v: f64| {
            let mut s = String::from("x,");
            format_scientific(v, &mut s);
            s
        };
        assert_eq!(formatted(0.0), "x,0.000000e+00");
        assert_eq!(formatted(-2.5e123), "x,-2.500000e+123");
        assert_eq!(formatted(1.5e-308), "x,1.500000e-308");
        assert_eq!(formatted(9.9999996), "x,1.000000e+01");
        assert_eq!(formatted(f64::NAN), "x,NaN");
        assert_eq!(formatted(f64::NEG_INFINITY), "x,-inf");
    }
}
