//! The built-in stage kinds, one file each, and the catalog the engine registers.
//!
//! Each file holds the kind's parameters, its declared inputs and outputs, and its `run`:
//! reading inputs, calling into `io`, `math` and `nn`, writing outputs. Kinds never import
//! one another; what two kinds share lives in one of those folders.

use std::sync::Arc;

use crate::kind::{Kind, StageKind};

pub mod autoencoder;
pub mod balanced_classifier;
pub mod classifier;
pub mod command;
pub mod evaluate;
pub mod explore;
pub mod fma_files;
pub mod ingest;
pub mod knn;
pub mod lda;
pub mod lsi;
pub mod pca;
pub mod popularity;
pub mod report;
pub mod sql;
pub mod standardize;
pub mod synthetic;

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
        Arc::new(Kind::<balanced_classifier::BalancedClassifier>::new()),
        Arc::new(Kind::<popularity::Popularity>::new()),
        Arc::new(Kind::<evaluate::Evaluate>::new()),
        Arc::new(Kind::<report::Report>::new()),
        Arc::new(Kind::<command::CommandStage>::new()),
        Arc::new(Kind::<sql::Sql>::new()),
    ]
}
