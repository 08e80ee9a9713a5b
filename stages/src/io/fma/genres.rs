//! The `genres.csv` parser: the taxonomy, checked (unique ids, known parents).

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::fma::format::{Genre, Taxonomy, GENRES_HEADER};
use crate::io::fma::text::{bad, csv_error, field_count_error, read_text};

/// Reads and checks `genres.csv`.
pub fn read_genres(path: &Path) -> Result<Taxonomy> {
    let bytes = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[..]);
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
            return Err(field_count_error(
                path,
                &bytes,
                &record,
                line,
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
        let id32 = |i: usize| -> Result<i32> {
            let value = int(i)?;
            i32::try_from(value)
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| {
                    bad(
                        path,
                        line,
                        Some(GENRES_HEADER[i]),
                        format!("genre id {value} is out of range (0 to {})", i32::MAX),
                    )
                })
        };
        let genre = Genre {
            id: id32(0)?,
            tracks: int(1)?,
            parent: id32(2)?,
            title: record[3].to_owned(),
            top_level: id32(4)?,
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
    check_tree(path, &genres)?;
    if genres.is_empty() {
        return Err(Error::BadFile {
            path: path.to_owned(),
            message: "no genres after the header".into(),
        });
    }
    Ok(Taxonomy::new(genres))
}

/// Every genre's parent chain must end at a top-level genre (parent 0) without a cycle, and
/// its `top_level` must be that genre.
fn check_tree(path: &Path, genres: &[Genre]) -> Result<()> {
    let parent_of: std::collections::HashMap<i32, &Genre> =
        genres.iter().map(|g| (g.id, g)).collect();
    let bad_file = |message: String| Error::BadFile {
        path: path.to_owned(),
        message,
    };
    for genre in genres {
        if genre.parent == genre.id {
            return Err(bad_file(format!("genre {} is its own parent", genre.id)));
        }
        let mut chain = vec![genre.id];
        let mut current = genre;
        while current.parent != 0 {
            let Some(parent) = parent_of.get(&current.parent) else {
                break; // reported by the caller's parent check
            };
            if let Some(start) = chain.iter().position(|id| *id == parent.id) {
                let cycle: Vec<String> = chain[start..]
                    .iter()
                    .chain(std::iter::once(&parent.id))
                    .map(ToString::to_string)
                    .collect();
                return Err(bad_file(format!(
                    "genres {} form a parent cycle",
                    cycle.join(" -> ")
                )));
            }
            chain.push(parent.id);
            current = parent;
        }
        if current.parent == 0 && genre.top_level != current.id {
            return Err(bad_file(format!(
                "genre {} has top_level {}, but its top-level ancestor is {}",
                genre.id, genre.top_level, current.id
            )));
        }
    }
    Ok(())
}
