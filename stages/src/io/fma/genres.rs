//! The `genres.csv` parser: the taxonomy, checked (unique ids, known parents).

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::fma::format::{Genre, Taxonomy, GENRES_HEADER};
use crate::io::fma::text::{bad, csv_error, read_text};

/// Reads and checks `genres.csv`.
pub fn read_genres(path: &Path) -> Result<Taxonomy> {
    let bytes = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let mut genres = Vec::new();
    let mut seen = HashSet::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record
            .position()
            .map_or(index as u64 + 1, csv::Position::line);
        if index == 0 {
            let found: Vec<&str> = record.iter().collect();
            if found != GENRES_HEADER {
                return Err(bad(
                    path,
                    line,
                    None,
                    format!(
                        "expected the header `{}`, found `{}`",
                        GENRES_HEADER.join(","),
                        found.join(",")
                    ),
                ));
            }
            continue;
        }
        if record.len() != GENRES_HEADER.len() {
            return Err(bad(
                path,
                line,
                None,
                format!(
                    "expected {} fields, found {}",
                    GENRES_HEADER.len(),
                    record.len()
                ),
            ));
        }
        let int = |i: usize| -> Result<i64> {
            record[i].trim().parse::<i64>().map_err(|_| {
                bad(
                    path,
                    line,
                    Some(GENRES_HEADER[i]),
                    format!("cannot parse {:?} as an integer", &record[i]),
                )
            })
        };
        let genre = Genre {
            id: int(0)? as i32,
            tracks: int(1)?,
            parent: int(2)? as i32,
            title: record[3].to_owned(),
            top_level: int(4)? as i32,
        };
        if !seen.insert(genre.id) {
            return Err(bad(
                path,
                line,
                Some("genre_id"),
                format!("duplicate genre id {}", genre.id),
            ));
        }
        genres.push(genre);
    }
    let ids: HashSet<i32> = genres.iter().map(|g| g.id).collect();
    for g in &genres {
        if g.parent != 0 && !ids.contains(&g.parent) {
            return Err(Error::BadFile {
                path: path.to_owned(),
                message: format!(
                    "genre {} has parent {}, which is not defined",
                    g.id, g.parent
                ),
            });
        }
    }
    if genres.is_empty() {
        return Err(Error::BadFile {
            path: path.to_owned(),
            message: "no genres after the header".into(),
        });
    }
    Ok(Taxonomy::new(genres))
}
