//! Embeds each module's code version, derived from the module graph (see
//! `build/module_graph.rs`): a stage kind's version is the hash of every file it transitively
//! imports, of the versions of the third-party crates this crate depends on (from the
//! workspace's `Cargo.lock`) and of the crate version. Editing a file therefore reruns exactly
//! the kinds that use it, and a dependency upgrade reruns them all.

#[path = "build/module_graph.rs"]
#[allow(
    dead_code,
    reason = "the crate's tests use more of it than the build script"
)]
mod module_graph;

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=build/module_graph.rs");
    let lock_path = Path::new("../Cargo.lock");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    let lock = std::fs::read_to_string(lock_path).expect("the workspace's Cargo.lock is readable");
    let dependencies = module_graph::dependency_versions(&lock, "stages");
    assert!(
        dependencies.contains("faer "),
        "Cargo.lock lists no faer for the stages crate: the lock parser is out of date"
    );
    let graph = module_graph::ModuleGraph::scan(Path::new("src")).expect("stages/src is readable");
    let salt = format!("{}\n{dependencies}", env!("CARGO_PKG_VERSION"));
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(
        Path::new(&out).join("module_versions.rs"),
        graph.version_table(&salt),
    )
    .expect("OUT_DIR is writable");
}
