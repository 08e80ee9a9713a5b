//! Derives each stage kind's code version: the blake3 hash of every source file of the
//! `stages` crate is embedded at build time, and a kind's version is the hash of the files
//! it names (see `kind.rs`). Editing one stage's file therefore changes that kind's version
//! only, and the engine reruns that stage and its dependents.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let src = Path::new("src");
    println!("cargo:rerun-if-changed=src");
    let mut files: Vec<_> = std::fs::read_dir(src)
        .expect("stages/src is readable")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    let mut table = String::from("pub(crate) const SOURCE_HASHES: &[(&str, &str)] = &[\n");
    for path in files {
        let bytes = std::fs::read(&path).expect("stage source is readable");
        // Normalise line endings so a checkout on Windows gives the same code version.
        let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
        let hash = blake3::hash(text.as_bytes());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let _ = writeln!(table, "    ({name:?}, {:?}),", hash.to_hex().as_str());
    }
    table.push_str("];\n");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("source_hashes.rs"), table).expect("OUT_DIR is writable");
}
