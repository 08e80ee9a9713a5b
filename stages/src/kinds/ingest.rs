//! `ingest`: the FMA CSV files to typed Parquet, with every input error pointing at its file,
//! line and column.
//!
//! Outputs: `features.parquet` (`track_id` + 518 float columns `family.statistic.number`),
//! `tracks.parquet` (`level.field` columns, genre lists as `list<int32>`, integers and
//! dates typed, text exact), `genres.parquet`, and the binary track x genre matrices
//! `labels_genres.parquet` / `labels_genres_all.parquet` (one column per genre in
//! genres.csv order, titled by name, plus `N/A` for an empty list).
//!
//! `features.csv` is parsed by a parallel splitter (it holds only numbers: no quoting);
//! `tracks.csv` and `genres.csv` by the `csv` crate, which handles quoted commas, doubled
//! quotes and embedded newlines. A UTF-8 BOM and CRLF line endings are accepted.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, StringArray, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::fma::features::{read_features, FeatureValues, Features};
use crate::io::fma::format::{feature_columns, Taxonomy};
use crate::io::fma::genres::read_genres;
use crate::io::fma::text::file_name;
use crate::io::fma::tracks::{read_tracks, Tracks};
use crate::io::parquet::{write_columns, write_table};
use crate::kind::{InputSpec, OutputSpec, Params, Stage, StageIo};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestParams {
    /// Write features as float64 instead of float32 (they were computed in float32).
    pub float64: bool,
}

impl Params for IngestParams {}

/// The ingest stage.
pub struct Ingest;

impl Stage for Ingest {
    type Params = IngestParams;
    const KIND: &'static str = "ingest";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&["features", "tracks", "genres"])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("features", "features.parquet"),
            OutputSpec::new("tracks", "tracks.parquet"),
            OutputSpec::new("genres", "genres.parquet"),
            OutputSpec::new("labels_genres", "labels_genres.parquet"),
            OutputSpec::new("labels_genres_all", "labels_genres_all.parquet"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let features_csv = io.input(0, "features")?;
        let tracks_csv = io.input(1, "tracks")?;
        let genres_csv = io.input(2, "genres")?;
        let started = std::time::Instant::now();
        let taxonomy = read_genres(genres_csv)?;
        io.check_cancelled()?;
        // tracks.csv goes through the sequential CSV parser beside the parallel features
        // parser; when both files are bad, the tracks error is reported.
        let (tracks, features) = rayon::join(
            || read_tracks(tracks_csv, &taxonomy),
            || read_features(features_csv, params.float64),
        );
        let (tracks, features) = (tracks?, features?);
        tracing::debug!(
            "ingest: features.csv parsed at {:.2}s",
            started.elapsed().as_secs_f64()
        );
        check_same_tracks(
            features_csv,
            &features.track_ids,
            tracks_csv,
            &tracks.track_ids,
        )?;
        io.check_cancelled()?;
        let Tracks {
            track_ids,
            genres,
            genres_all,
            columns,
        } = tracks;
        // The large features file on one thread, everything else on the other.
        let (written, rest) = rayon::join(
            || write_features(&io.output("features.parquet"), features, io.provenance),
            || -> Result<()> {
                write_tracks(&io.output("tracks.parquet"), columns, io.provenance)?;
                write_genres(&io.output("genres.parquet"), &taxonomy, io.provenance)?;
                write_labels(
                    &io.output("labels_genres.parquet"),
                    &taxonomy,
                    &track_ids,
                    &genres,
                    io.provenance,
                )?;
                write_labels(
                    &io.output("labels_genres_all.parquet"),
                    &taxonomy,
                    &track_ids,
                    &genres_all,
                    io.provenance,
                )
            },
        );
        written?;
        rest?;
        tracing::debug!(
            "ingest: Parquet written at {:.2}s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn check_same_tracks(
    features: &Path,
    feature_ids: &[i64],
    tracks: &Path,
    track_ids: &[i64],
) -> Result<()> {
    let in_tracks: HashSet<i64> = track_ids.iter().copied().collect();
    if let Some(missing) = feature_ids.iter().find(|id| !in_tracks.contains(id)) {
        return Err(Error::BadFile {
            path: features.to_owned(),
            message: format!(
                "track {missing} is in {} but not in {}",
                file_name(features),
                file_name(tracks)
            ),
        });
    }
    let in_features: HashSet<i64> = feature_ids.iter().copied().collect();
    if let Some(missing) = track_ids.iter().find(|id| !in_features.contains(id)) {
        return Err(Error::BadFile {
            path: tracks.to_owned(),
            message: format!(
                "track {missing} is in {} but not in {}",
                file_name(tracks),
                file_name(features)
            ),
        });
    }
    Ok(())
}

fn write_features(path: &Path, features: Features, provenance: &[(String, String)]) -> Result<()> {
    let names = feature_columns();
    let mut fields = vec![Field::new("track_id", DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(features.track_ids))];
    // The parsed columns become Arrow arrays without a copy.
    let (float_type, values): (DataType, Vec<ArrayRef>) = match features.values {
        FeatureValues::F32(values) => (
            DataType::Float32,
            values
                .into_iter()
                .map(|v| Arc::new(Float32Array::from(v)) as ArrayRef)
                .collect(),
        ),
        FeatureValues::F64(values) => (
            DataType::Float64,
            values
                .into_iter()
                .map(|v| Arc::new(Float64Array::from(v)) as ArrayRef)
                .collect(),
        ),
    };
    fields.extend(
        names
            .iter()
            .map(|c| Field::new(c.name(), float_type.clone(), false)),
    );
    columns.extend(values);
    write_columns(
        path,
        Arc::new(Schema::new(fields)),
        columns,
        provenance,
        false,
    )
}

fn write_tracks(
    path: &Path,
    columns: Vec<(String, ArrayRef)>,
    provenance: &[(String, String)],
) -> Result<()> {
    let fields: Vec<Field> = columns
        .iter()
        // Every column but `track_id` is nullable, whatever this file holds, so the schema
        // is the same for every tracks.csv.
        .map(|(name, array)| Field::new(name, array.data_type().clone(), name != "track_id"))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    write_columns(
        path,
        Arc::new(Schema::new(fields)),
        arrays,
        provenance,
        true,
    )
}

fn write_genres(path: &Path, taxonomy: &Taxonomy, provenance: &[(String, String)]) -> Result<()> {
    let g = &taxonomy.genres;
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "genre_id",
            Arc::new(Int32Array::from_iter_values(g.iter().map(|x| x.id))),
        ),
        (
            "#tracks",
            Arc::new(Int64Array::from_iter_values(g.iter().map(|x| x.tracks))),
        ),
        (
            "parent",
            Arc::new(Int32Array::from_iter_values(g.iter().map(|x| x.parent))),
        ),
        (
            "title",
            Arc::new(StringArray::from_iter_values(
                g.iter().map(|x| x.title.as_str()),
            )),
        ),
        (
            "top_level",
            Arc::new(Int32Array::from_iter_values(g.iter().map(|x| x.top_level))),
        ),
    ];
    write_table(path, columns, provenance)
}

/// The label column titles: genre titles in genres.csv order, then `N/A`.
pub fn label_titles(taxonomy: &Taxonomy) -> Vec<String> {
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    let mut titles: Vec<String> = taxonomy
        .genres
        .iter()
        .map(|g| {
            // Titles are unique in the real taxonomy; disambiguate if a file repeats one.
            let n = used.entry(g.title.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                g.title.clone()
            } else {
                format!("{} ({})", g.title, g.id)
            }
        })
        .collect();
    titles.push("N/A".into());
    titles
}

fn write_labels(
    path: &Path,
    taxonomy: &Taxonomy,
    track_ids: &[i64],
    lists: &[Vec<i32>],
    provenance: &[(String, String)],
) -> Result<()> {
    let titles = label_titles(taxonomy);
    let genres = taxonomy.genres.len();
    let mut matrix = vec![vec![0u8; track_ids.len()]; genres + 1];
    for (row, list) in lists.iter().enumerate() {
        if list.is_empty() {
            matrix[genres][row] = 1;
        }
        for g in list {
            if let Some(p) = taxonomy.position(*g) {
                matrix[p][row] = 1;
            }
        }
    }
    let mut fields = vec![Field::new("track_id", DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(track_ids.to_vec()))];
    for (title, column) in titles.iter().zip(matrix) {
        fields.push(Field::new(title, DataType::UInt8, false));
        columns.push(Arc::new(UInt8Array::from(column)));
    }
    write_columns(
        path,
        Arc::new(Schema::new(fields)),
        columns,
        provenance,
        true,
    )
}

#[cfg(test)]
mod input_errors {
    //! Every kind of bad input gets a message naming the file, line and column.

    use super::*;
    use crate::io::fma::synthetic::{generate, SyntheticParams};
    use std::path::PathBuf;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            generate(
                &SyntheticParams {
                    tracks: 20,
                    seed: 3,
                },
                dir.path(),
                &|| Ok(()),
            )
            .expect("generate");
            Self { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn edit(&self, name: &str, f: impl FnOnce(String) -> String) {
            let text = std::fs::read_to_string(self.path(name)).expect("read");
            std::fs::write(self.path(name), f(text)).expect("write");
        }

        fn ingest(&self) -> std::result::Result<(), String> {
            let taxonomy = read_genres(&self.path("genres.csv")).map_err(|e| e.to_string())?;
            let tracks =
                read_tracks(&self.path("tracks.csv"), &taxonomy).map_err(|e| e.to_string())?;
            let features =
                read_features(&self.path("features.csv"), false).map_err(|e| e.to_string())?;
            check_same_tracks(
                &self.path("features.csv"),
                &features.track_ids,
                &self.path("tracks.csv"),
                &tracks.track_ids,
            )
            .map_err(|e| e.to_string())
        }
    }

    fn replace_line(text: &str, line: usize, f: impl FnOnce(&str) -> String) -> String {
        let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        lines[line - 1] = f(&lines[line - 1]);
        lines.join("\n")
    }

    fn expect_error(edit: impl FnOnce(&Files), needles: &[&str]) {
        let files = Files::new();
        edit(&files);
        let err = files.ingest().expect_err("bad input must be rejected");
        for needle in needles {
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }
    }

    #[test]
    fn generated_files_ingest_cleanly() {
        Files::new().ingest().expect("valid input");
    }

    #[test]
    fn bom_and_crlf_are_accepted() {
        let files = Files::new();
        for name in ["features.csv", "genres.csv"] {
            files.edit(name, |t| format!("\u{feff}{}", t.replace('\n', "\r\n")));
        }
        files.ingest().expect("BOM and CRLF are accepted");
    }

    #[test]
    fn a_wrong_features_header_names_line_and_column() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    replace_line(&t, 2, |l| l.replacen("kurtosis", "kurtosys", 1))
                })
            },
            &[
                "features.csv:2: column `chroma_cens.kurtosis.01`",
                "expected `kurtosis`, found `kurtosys`",
            ],
        );
    }

    #[test]
    fn a_ragged_row_is_rejected() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    replace_line(&t, 7, |l| {
                        l.rsplit_once(',')
                            .map(|(a, _)| a.to_owned())
                            .unwrap_or_default()
                    })
                })
            },
            &["features.csv:7:", "expected 519 fields", "found 518"],
        );
    }

    #[test]
    fn a_non_numeric_feature_value_is_rejected() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    replace_line(&t, 9, |l| {
                        let mut cells: Vec<&str> = l.split(',').collect();
                        cells[3] = "n/a";
                        cells.join(",")
                    })
                })
            },
            &[
                "features.csv:9: column `chroma_cens.kurtosis.03`",
                "cannot parse \"n/a\" as a number",
            ],
        );
    }

    #[test]
    fn a_non_finite_feature_value_is_rejected() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    replace_line(&t, 5, |l| {
                        let mut cells: Vec<&str> = l.split(',').collect();
                        cells[518] = "inf";
                        cells.join(",")
                    })
                })
            },
            &["features.csv:5: column `zcr.std.01`", "not finite"],
        );
    }

    #[test]
    fn a_duplicate_track_id_is_rejected() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    let first_id = t
                        .lines()
                        .nth(4)
                        .and_then(|l| l.split(',').next())
                        .unwrap_or("")
                        .to_owned();
                    replace_line(&t, 6, |l| {
                        format!("{first_id}{}", &l[l.find(',').unwrap_or(0)..])
                    })
                })
            },
            &[
                "features.csv:6: column `track_id`",
                "duplicate track id",
                "first on line 5",
            ],
        );
    }

    #[test]
    fn a_track_in_one_file_only_is_named() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    let mut lines: Vec<&str> = t.lines().collect();
                    lines.remove(10);
                    lines.join("\n") + "\n"
                })
            },
            &["tracks.csv", "is in tracks.csv but not in features.csv"],
        );
    }

    #[test]
    fn a_malformed_genre_list_is_rejected() {
        expect_error(
            |f| {
                f.edit("tracks.csv", |t| {
                    // The first genre list with an id: `,[21` (a list of one is not quoted).
                    let at = t
                        .match_indices(",[")
                        .find(|(i, _)| t[i + 2..].starts_with(|c: char| c.is_ascii_digit()))
                        .map_or(0, |(i, _)| i);
                    format!("{}[x{}", &t[..at + 1], &t[at + 2..])
                })
            },
            &[
                "tracks.csv:",
                "column `track.genre",
                "is not an integer genre id",
            ],
        );
    }

    #[test]
    fn an_undefined_genre_id_is_rejected() {
        expect_error(
            |f| {
                f.edit("genres.csv", |t| {
                    // Drop a genre that the tracks use: the most frequent top level, Experimental (38).
                    t.lines()
                        .filter(|l| !l.starts_with("38,") && !l.ends_with(",38"))
                        .collect::<Vec<_>>()
                        .join("\n")
                        + "\n"
                })
            },
            &[
                "tracks.csv:",
                "column `track.genres",
                "is not defined in genres.csv",
            ],
        );
    }

    #[test]
    fn an_empty_file_is_rejected() {
        expect_error(
            |f| f.edit("tracks.csv", |_| String::new()),
            &["tracks.csv: the file is empty"],
        );
    }

    #[test]
    fn a_wrong_tracks_header_is_rejected() {
        expect_error(
            |f| f.edit("tracks.csv", |t| t.replacen(",comments,", ",comment,", 1)),
            &["tracks.csv:2:", "expected `comments`, found `comment`"],
        );
    }

    /// Rewrites the first data record of tracks.csv with `column` set to `value`, and returns
    /// the line that record starts on.
    fn set_track_cell(files: &Files, column: &str, value: &str) -> u64 {
        let path = files.path("tracks.csv");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(&path)
            .expect("open tracks.csv");
        let mut records: Vec<csv::StringRecord> =
            reader.records().map(|r| r.expect("record")).collect();
        let line = records[3].position().expect("position").line();
        let index = crate::io::fma::format::TRACK_COLUMNS
            .iter()
            .position(|(level, field, _)| format!("{level}.{field}") == column)
            .expect("known column")
            + 1;
        let mut fields: Vec<String> = records[3].iter().map(str::to_owned).collect();
        fields[index] = value.to_owned();
        records[3] = csv::StringRecord::from(fields);
        let mut writer = csv::Writer::from_path(&path).expect("create");
        for record in &records {
            writer.write_record(record).expect("write");
        }
        writer.flush().expect("flush");
        line
    }

    fn whole_error(files: &Files) -> String {
        files.ingest().expect_err("bad input must be rejected")
    }

    #[test]
    fn an_integer_too_large_for_int64_is_rejected_not_saturated() {
        let files = Files::new();
        let line = set_track_cell(&files, "track.listens", "1e30");
        assert_eq!(
            whole_error(&files),
            format!(
                "{}:{line}: column `track.listens`: \"1e30\" is out of range for an integer",
                files.path("tracks.csv").display()
            )
        );
    }

    #[test]
    fn a_non_finite_float_is_rejected() {
        for text in ["NaN", "inf", "-infinity"] {
            let files = Files::new();
            let line = set_track_cell(&files, "artist.latitude", text);
            assert_eq!(
                whole_error(&files),
                format!(
                    "{}:{line}: column `artist.latitude`: cannot parse {text:?} as a finite number",
                    files.path("tracks.csv").display()
                )
            );
        }
    }

    #[test]
    fn an_unclosed_quote_is_named_with_the_line_it_opened_on() {
        let files = Files::new();
        let lines = std::fs::read_to_string(files.path("tracks.csv"))
            .expect("read")
            .lines()
            .count();
        files.edit("tracks.csv", |t| {
            format!("{t}999999,\"a title that never ends,1,2\n3,4\n")
        });
        assert_eq!(
            whole_error(&files),
            format!(
                "{}:{}: a quote opened on line {} is never closed",
                files.path("tracks.csv").display(),
                lines + 1,
                lines + 1
            )
        );
    }

    fn edit_genre(files: &Files, id: &str, f: impl Fn(&mut Vec<String>)) {
        files.edit("genres.csv", |t| {
            t.lines()
                .map(|l| {
                    let mut fields: Vec<String> = l.split(',').map(str::to_owned).collect();
                    if fields[0] == id {
                        f(&mut fields);
                    }
                    fields.join(",")
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        });
    }

    #[test]
    fn a_genre_id_that_does_not_fit_is_rejected_not_wrapped() {
        let files = Files::new();
        edit_genre(&files, "2", |g| g[0] = "4294967298".into());
        assert_eq!(
            whole_error(&files),
            format!(
                "{}:3: column `genre_id`: genre id 4294967298 is out of range (0 to 2147483647)",
                files.path("genres.csv").display()
            )
        );
    }

    #[test]
    fn a_broken_taxonomy_names_the_genres() {
        type Edit = fn(&Files);
        let cases: [(&str, Edit); 3] = [
            ("genre 2 is its own parent", |f| {
                edit_genre(f, "2", |g| g[2] = "2".into())
            }),
            ("genres 1 -> 38 -> 1 form a parent cycle", |f| {
                edit_genre(f, "38", |g| g[2] = "1".into())
            }),
            (
                "genre 1 has top_level 2, but its top-level ancestor is 38",
                |f| edit_genre(f, "1", |g| g[4] = "2".into()),
            ),
        ];
        for (expected, edit) in cases {
            let files = Files::new();
            edit(&files);
            assert_eq!(
                whole_error(&files),
                format!("{}: {expected}", files.path("genres.csv").display())
            );
        }
    }
}
