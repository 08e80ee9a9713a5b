//! Stage computations for the pipeline: pure functions from typed parameters and input
//! files to output files. Nothing here knows about caching, locks, `pipeline.toml` or the
//! command line; see `kind.rs` for the contract with the engine.
//!
//! Laid out by role:
//! - [`kinds`]: one file per stage kind, as the README's table lists them. A kind reads its
//!   inputs, calls into the folders below and writes its outputs; it never imports another
//!   kind.
//! - [`io`]: file formats: the FMA CSV files, Parquet, safetensors, `metrics.json`, SVG
//!   charts, topic tables.
//! - [`math`]: linear algebra, special functions, scaling, PCA, the k-NN search kernel and
//!   vote, the LDA model.
//! - [`nn`]: dense networks and their training.
//!
//! A kind's code version (what invalidates its cached results) is derived at build time from
//! the files it transitively imports; see `build.rs` and `build/module_graph.rs`.

pub mod error;
pub mod io;
pub mod kind;
pub mod kinds;
pub mod math;
pub mod nn;
pub mod provenance;

pub use error::{Error, Result};
pub use kinds::catalog;

/// A dense matrix filled by `f(row, column)` (for benchmarks and tests outside the crate).
pub fn ndarray_matrix(
    rows: usize,
    cols: usize,
    mut f: impl FnMut(usize, usize) -> f64,
) -> ndarray::Array2<f64> {
    ndarray::Array2::from_shape_fn((rows, cols), |(i, j)| f(i, j))
}

#[cfg(test)]
#[path = "../build/module_graph.rs"]
#[allow(dead_code, reason = "the build script uses the rest")]
mod module_graph;

#[cfg(test)]
mod code_version_tests {
    use std::path::Path;

    use crate::module_graph::{dependency_versions, ModuleGraph};

    #[test]
    fn every_kind_has_the_version_its_source_tree_gives() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let lock =
            std::fs::read_to_string(root.join("../Cargo.lock")).unwrap_or_else(|e| panic!("{e}"));
        let salt = format!(
            "{}\n{}",
            env!("CARGO_PKG_VERSION"),
            dependency_versions(&lock, "stages")
        );
        let graph = ModuleGraph::scan(&root.join("src")).unwrap_or_else(|e| panic!("{e}"));
        for kind in crate::catalog() {
            let version = kind.code_version();
            assert!(
                !version.starts_with("unversioned"),
                "{}: {version}",
                kind.name()
            );
            let module = graph
                .modules
                .keys()
                .find(|m| graph.version(m, &salt) == version && m.starts_with("kinds::"))
                .unwrap_or_else(|| panic!("{}: no module has version {version}", kind.name()));
            let files: Vec<String> = graph
                .closure(module)
                .iter()
                .map(|m| m.file.clone())
                .collect();
            assert!(files.contains(&"kind.rs".to_owned()), "{module}: {files:?}");
            let kinds: Vec<&String> = files.iter().filter(|f| f.starts_with("kinds/")).collect();
            assert_eq!(kinds.len(), 1, "{module} uses another kind: {kinds:?}");
        }
    }
}
