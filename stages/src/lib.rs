//! Stage computations for the pipeline: pure functions from typed parameters and input
//! files to output files. Nothing here knows about caching, locks, `pipeline.toml` or the
//! command line; see `kind.rs` for the contract with the engine.
//!
//! One module per stage kind (`synthetic`, `fma_files`, `ingest`, `explore`, ...), plus the
//! shared FMA file formats (`fma_format`), Parquet I/O (`parquet_io`) and charts (`chart`).

pub mod autoencoder;
pub mod chart;
pub mod classifier;
pub mod error;
pub mod evaluate;
pub mod explore;
pub mod fma_files;
pub mod fma_format;
pub mod ingest;
pub mod kind;
pub mod knn;
pub mod lda;
pub mod linalg;
pub mod lsi;
pub mod metrics;
pub mod nn;
pub mod nn_train;
pub mod parquet_io;
pub mod pca;
pub mod report;
pub mod safetensors;
pub mod special;
pub mod standardize;
pub mod synthetic;

use std::sync::Arc;

pub use error::{Error, Result};
use kind::{Kind, StageKind};

/// Every built-in stage kind.
pub fn catalog() -> Vec<Arc<dyn StageKind>> {
    vec![
        Arc::new(Kind::<synthetic::SyntheticFma>::new()),
        Arc::new(Kind::<fma_files::FmaFiles>::new()),
        Arc::new(Kind::<ingest::Ingest>::new()),
        Arc::new(Kind::<explore::Explore>::new()),
        Arc::new(Kind::<standardize::Standardize>::new()),
        Arc::new(Kind::<pca::PcaStage>::new()),
        Arc::new(Kind::<lsi::Lsi>::new()),
        Arc::new(Kind::<knn::Knn>::new()),
        Arc::new(Kind::<lda::LdaStage>::new()),
        Arc::new(Kind::<classifier::Classifier>::new()),
        Arc::new(Kind::<autoencoder::Autoencoder>::new()),
        Arc::new(Kind::<classifier::EncodedClassifier>::new()),
        Arc::new(Kind::<evaluate::Evaluate>::new()),
        Arc::new(Kind::<report::Report>::new()),
    ]
}

/// A dense matrix filled by `f(row, column)` (for benchmarks and tests outside the crate).
pub fn ndarray_matrix(
    rows: usize,
    cols: usize,
    mut f: impl FnMut(usize, usize) -> f64,
) -> ndarray::Array2<f64> {
    ndarray::Array2::from_shape_fn((rows, cols), |(i, j)| f(i, j))
}
