//! `fma_files`: the real `fma_metadata` folder as the pipeline's source.
//!
//! The stage computes nothing: its outputs *are* the three files in `dir`, which the engine
//! hashes (with its stat cache, so an untouched 1 GB file is not rehashed) and hands to
//! `ingest` unchanged.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kind::{InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};

/// Parameters of `fma_files`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FmaFilesParams {
    /// The `fma_metadata` folder, relative to `pipeline.toml`.
    pub dir: String,
}

impl Params for FmaFilesParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.dir.is_empty() {
            return Err(ParamError::Missing { key: "dir".into() });
        }
        Ok(())
    }
}

/// The real FMA metadata files.
pub struct FmaFiles;

const FILES: [(&str, &str); 3] = [
    ("features", "features.csv"),
    ("tracks", "tracks.csv"),
    ("genres", "genres.csv"),
];

impl Stage for FmaFiles {
    type Params = FmaFilesParams;
    const KIND: &'static str = "fma_files";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&[])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        FILES
            .iter()
            .map(|(name, file)| OutputSpec::new(name, file))
            .collect()
    }

    fn external_outputs(params: &Self::Params, base: &Path) -> Option<Vec<(String, PathBuf)>> {
        let dir = base.join(&params.dir);
        Some(
            FILES
                .iter()
                .map(|(name, file)| ((*name).to_owned(), dir.join(file)))
                .collect(),
        )
    }

    fn run(_: &Self::Params, _: &StageIo<'_>) -> Result<()> {
        // Never called: the engine treats stages with external outputs as hashed sources.
        Ok(())
    }
}
