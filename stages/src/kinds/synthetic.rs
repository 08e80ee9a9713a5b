//! `synthetic_fma`: writes `features.csv`, `tracks.csv` and `genres.csv` in the exact FMA
//! layouts, so the pipeline runs anywhere without the 1 GB download.

use crate::error::Result;
use crate::io::fma::synthetic::generate;
pub use crate::io::fma::synthetic::SyntheticParams;
use crate::kind::{check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};

impl Params for SyntheticParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_range("tracks", self.tracks, 10, 2_000_000)
    }
}

/// The synthetic FMA source.
pub struct SyntheticFma;

impl Stage for SyntheticFma {
    type Params = SyntheticParams;
    const KIND: &'static str = "synthetic_fma";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&[])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("features", "features.csv"),
            OutputSpec::new("tracks", "tracks.csv"),
            OutputSpec::new("genres", "genres.csv"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        generate(params, io.out_dir, &|| io.check_cancelled())
    }
}
