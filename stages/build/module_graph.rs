//! The module graph of the `stages` crate, read from its source text: which files each module
//! imports (`crate::`, `self::`, `super::` and child-module paths, in `use` items and inline),
//! so that a stage kind's code version covers exactly the files it transitively uses.
//!
//! Shared by `build.rs` (which embeds every module's version) and the crate's tests (which
//! check the derivation on a copy of the tree). It reads text, not a parsed AST: comments,
//! string and character literals and `#[cfg(test)]` modules are blanked out first, so a path
//! in a comment or a test never counts as a dependency. A path resolves to the longest prefix
//! that names a module (`crate::io::parquet::write_table` -> `io/parquet.rs`); a `mod x;`
//! declaration is not a dependency (a folder's `mod.rs` lists its children, it does not use
//! them), so adding a kind does not change its siblings' versions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// One source file.
#[derive(Debug, Clone)]
pub(crate) struct Module {
    /// The path relative to `src/`, with `/` separators.
    pub(crate) file: String,
    /// blake3 of the file's text with line endings normalised.
    pub(crate) hash: String,
    /// Module paths (`io::parquet`) this file refers to, resolved.
    pub(crate) uses: BTreeSet<String>,
}

/// Every module of a crate, by module path (`""` is the crate root, `kinds::pca` a kind).
#[derive(Debug, Clone, Default)]
pub(crate) struct ModuleGraph {
    /// Modules by path.
    pub(crate) modules: BTreeMap<String, Module>,
}

impl ModuleGraph {
    /// Reads every `.rs` file under `src` (recursively).
    pub(crate) fn scan(src: &Path) -> io::Result<Self> {
        let mut files = Vec::new();
        collect_rust_files(src, src, &mut files)?;
        files.sort();
        let mut texts = BTreeMap::new();
        for rel in files {
            let bytes = std::fs::read(src.join(&rel))?;
            let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
            texts.insert(module_path_of(&rel), (rel, text));
        }
        let names: BTreeSet<String> = texts.keys().cloned().collect();
        let modules = texts
            .into_iter()
            .map(|(path, (file, text))| {
                let hash = blake3::hash(text.as_bytes()).to_hex().to_string();
                let code = strip_tests(&blank_comments_and_literals(&text));
                let uses = references(&path, &code)
                    .into_iter()
                    .filter_map(|segments| resolve(&names, &segments))
                    .filter(|target| target != &path)
                    .collect();
                (path, Module { file, hash, uses })
            })
            .collect();
        Ok(Self { modules })
    }

    /// The files `module` transitively uses, itself included, sorted.
    pub(crate) fn closure(&self, module: &str) -> Vec<&Module> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![module.to_owned()];
        while let Some(next) = stack.pop() {
            if !seen.insert(next.clone()) {
                continue;
            }
            if let Some(m) = self.modules.get(&next) {
                stack.extend(m.uses.iter().cloned());
            }
        }
        let mut found: Vec<&Module> = seen.iter().filter_map(|p| self.modules.get(p)).collect();
        found.sort_by(|a, b| a.file.cmp(&b.file));
        found
    }

    /// The code version of `module`: blake3 of `salt` and of each file in its closure, by
    /// name and content hash; 16 hex digits.
    pub(crate) fn version(&self, module: &str, salt: &str) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(salt.as_bytes());
        for m in self.closure(module) {
            hasher.update(b"\0");
            hasher.update(m.file.as_bytes());
            hasher.update(b"\0");
            hasher.update(m.hash.as_bytes());
        }
        hasher.finalize().to_hex()[..16].to_owned()
    }

    /// Rust source of a table `(module path, version)` for every module.
    pub(crate) fn version_table(&self, salt: &str) -> String {
        let mut out = String::from("pub(crate) const MODULE_VERSIONS: &[(&str, &str)] = &[\n");
        for path in self.modules.keys() {
            let _ = writeln!(out, "    ({path:?}, {:?}),", self.version(path, salt));
        }
        out.push_str("];\n");
        out
    }
}

fn collect_rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rust_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// `lib.rs` -> `""`, `io/mod.rs` -> `io`, `io/fma/tracks.rs` -> `io::fma::tracks`.
pub(crate) fn module_path_of(file: &str) -> String {
    let stem = file.strip_suffix(".rs").unwrap_or(file);
    let mut parts: Vec<&str> = stem.split('/').collect();
    if matches!(parts.last(), Some(&"mod") | Some(&"lib") | Some(&"main")) {
        parts.pop();
    }
    parts.join("::")
}

/// The text with comments and string/char literals replaced by spaces (newlines kept).
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"') | Some('#')) && !ident_char_before(&chars, i)
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &chars[i..j.min(chars.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let step = if chars[i] == '\\' { 2 } else { 1 };
                for _ in 0..step {
                    if let Some(&ch) = chars.get(i) {
                        out.push(blank(ch));
                    }
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only the former is blanked.
            let close = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(end) => {
                    for _ in i..=end {
                        out.push(' ');
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The code with every `#[cfg(test)]` item (a test module or function) blanked: tests do not
/// decide what a stage computes.
fn strip_tests(code: &str) -> String {
    let mut out = code.to_owned();
    let mut from = 0;
    while let Some(found) = out[from..].find("#[cfg(test)]") {
        let start = from + found;
        let Some(open) = out[start..].find(['{', ';']).map(|o| start + o) else {
            break;
        };
        let end = if out.as_bytes()[open] == b';' {
            open + 1
        } else {
            let mut depth = 0usize;
            let mut end = out.len();
            for (k, b) in out.as_bytes()[open..].iter().enumerate() {
                match b {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            end
        };
        let blanked: String = out[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blanked);
        from = end;
    }
    out
}

/// Every path the code names, as absolute segment lists (without `crate`).
fn references(module: &str, code: &str) -> Vec<Vec<String>> {
    let here: Vec<String> = split_module(module);
    let children = declared_children(code);
    let mut found = Vec::new();
    // `use` trees, which may group paths in braces and name child modules relatively.
    let mut rest = code;
    while let Some(at) = find_keyword(rest, "use") {
        let after = &rest[at + 3..];
        let Some(end) = after.find(';') else { break };
        let tree = without_aliases(&after[..end]);
        for path in expand_use_tree(&tree) {
            if let Some(abs) = absolute(&here, &children, &path, true) {
                found.push(abs);
            }
        }
        rest = &after[end..];
    }
    // Inline paths: `crate::io::chart::scatter(...)`, `super::x`.
    for anchor in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(anchor) {
            let start = from + at;
            from = start + anchor.len();
            if ident_before(code, start) {
                continue;
            }
            let path: String = code[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<String> = path
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(abs) = absolute(&here, &children, &segments, false) {
                found.push(abs);
            }
        }
    }
    found
}

fn split_module(module: &str) -> Vec<String> {
    if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").map(str::to_owned).collect()
    }
}

fn ident_before(code: &str, at: usize) -> bool {
    code[..at]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
}

fn find_keyword(code: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = code[from..].find(word) {
        let start = from + at;
        let end = start + word.len();
        let before_ok = !ident_before(code, start);
        let after_ok = code[end..].chars().next().is_some_and(char::is_whitespace);
        if before_ok && after_ok {
            return Some(start);
        }
        from = end;
    }
    None
}

/// The `mod name;` declarations of a file (its child modules).
fn declared_children(code: &str) -> BTreeSet<String> {
    let mut children = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = find_keyword(&code[from..], "mod") {
        let start = from + at + 3;
        let name: String = code[start..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = code[start..].trim_start()[name.len()..].trim_start();
        if after.starts_with(';') && !name.is_empty() {
            children.insert(name);
        }
        from = start;
    }
    children
}

/// `a::{b, c::{d, e}}` -> `[a::b, a::c::d, a::c::e]` (segments), whitespace and aliases
/// already removed.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim_start_matches("::");
    let Some(open) = tree.find('{') else {
        return vec![tree
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let inner = tree[open + 1..]
        .strip_suffix('}')
        .unwrap_or(&tree[open + 1..]);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut out = Vec::new();
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        for tail in expand_use_tree(part) {
            let mut full = prefix.clone();
            // `self` inside braces names the prefix itself.
            full.extend(tail.into_iter().filter(|s| s != "self"));
            out.push(full);
        }
    }
    out
}

/// A `use` tree without whitespace and without `as` renames (`chart as c` -> `chart`).
fn without_aliases(tree: &str) -> String {
    let mut out = String::new();
    let mut words = tree.split_whitespace();
    while let Some(word) = words.next() {
        if word == "as" {
            // Drop the alias, keep what follows it (`,` or `}`).
            if let Some(alias) = words.next() {
                out.extend(
                    alias
                        .chars()
                        .skip_while(|c| c.is_alphanumeric() || *c == '_'),
                );
            }
        } else {
            out.push_str(word);
        }
    }
    out
}

/// Turns a path as written into absolute segments, or `None` for another crate's path.
fn absolute(
    here: &[String],
    children: &BTreeSet<String>,
    path: &[String],
    in_use: bool,
) -> Option<Vec<String>> {
    let first = path.first()?;
    match first.as_str() {
        "crate" => Some(path[1..].to_vec()),
        "self" => Some(here.iter().chain(&path[1..]).cloned().collect()),
        "super" => {
            let mut base = here.to_vec();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            Some(base.into_iter().chain(rest.iter().cloned()).collect())
        }
        // `use child::Item` in a file that declares `mod child;` (Rust 2018 paths).
        name if in_use && children.contains(name) => {
            Some(here.iter().chain(path).cloned().collect())
        }
        _ => None,
    }
}

/// The longest prefix of `segments` that names a module.
fn resolve(modules: &BTreeSet<String>, segments: &[String]) -> Option<String> {
    (0..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

/// A hash of the third-party crates `package` depends on (transitively), by name and version,
/// read from `Cargo.lock`: upgrading faer or parquet can change results.
pub(crate) fn dependency_versions(lock: &str, package: &str) -> String {
    let packages = parse_lock(lock);
    let mut seen = BTreeSet::new();
    let mut stack: Vec<(String, Option<String>)> = vec![(package.to_owned(), None)];
    let mut external = BTreeSet::new();
    while let Some((name, version)) = stack.pop() {
        let Some(entry) = packages
            .iter()
            .find(|p| p.name == name && version.as_ref().is_none_or(|v| &p.version == v))
        else {
            continue;
        };
        if !seen.insert((entry.name.clone(), entry.version.clone())) {
            continue;
        }
        if entry.registry && entry.name != package {
            external.insert(format!("{} {}", entry.name, entry.version));
        }
        for dep in &entry.dependencies {
            let mut words = dep.split_whitespace();
            if let Some(dep_name) = words.next() {
                stack.push((dep_name.to_owned(), words.next().map(str::to_owned)));
            }
        }
    }
    external.into_iter().collect::<Vec<_>>().join("\n")
}

struct LockPackage {
    name: String,
    version: String,
    registry: bool,
    dependencies: Vec<String>,
}

/// A line parser for the one format cargo writes `Cargo.lock` in.
fn parse_lock(lock: &str) -> Vec<LockPackage> {
    let mut packages = Vec::new();
    let mut current: Option<LockPackage> = None;
    let mut in_deps = false;
    let value = |line: &str| -> String {
        line.split_once('=')
            .map_or_else(String::new, |(_, v)| v.trim().trim_matches('"').to_owned())
    };
    for line in lock.lines().map(str::trim) {
        if line == "[[package]]" {
            packages.extend(current.take());
            current = Some(LockPackage {
                name: String::new(),
                version: String::new(),
                registry: false,
                dependencies: Vec::new(),
            });
            in_deps = false;
            continue;
        }
        let Some(pkg) = current.as_mut() else {
            continue;
        };
        if in_deps {
            if line.starts_with(']') {
                in_deps = false;
            } else {
                pkg.dependencies
                    .push(line.trim_end_matches(',').trim_matches('"').to_owned());
            }
        } else if line.starts_with("name =") {
            pkg.name = value(line);
        } else if line.starts_with("version =") {
            pkg.version = value(line);
        } else if line.starts_with("source =") {
            pkg.registry = true;
        } else if line.starts_with("dependencies = [") {
            in_deps = !line.ends_with(']');
        }
    }
    packages.extend(current);
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for (path, text) in files {
            let path = dir.path().join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
        }
        dir
    }

    fn graph(dir: &Path) -> ModuleGraph {
        ModuleGraph::scan(dir).unwrap_or_else(|e| panic!("{e}"))
    }

    fn files(graph: &ModuleGraph, module: &str) -> Vec<String> {
        graph
            .closure(module)
            .iter()
            .map(|m| m.file.clone())
            .collect()
    }

    #[test]
    fn use_trees_inline_paths_and_relative_paths_resolve_to_files() {
        let dir = tree(&[
            ("lib.rs", "pub mod a;\npub mod io;\npub mod error;\npub use error::Error;\n"),
            ("error.rs", "pub struct Error;\n"),
            ("io/mod.rs", "pub mod chart;\npub mod parquet;\npub mod unused;\n"),
            ("io/chart.rs", "use super::parquet as pq;\n"),
            ("io/parquet.rs", "pub fn write() {}\n"),
            ("io/unused.rs", "\n"),
            (
                "a.rs",
                "use crate::{Error, io::{chart::{self, Series as S}}};\nfn f() { crate::io::parquet::write(); }\n",
            ),
        ]);
        let g = graph(dir.path());
        assert_eq!(
            files(&g, "a"),
            ["a.rs", "error.rs", "io/chart.rs", "io/parquet.rs", "lib.rs"]
        );
        // A folder's mod.rs declares its children; that does not make it use them.
        assert_eq!(files(&g, "io"), ["io/mod.rs"]);
    }

    #[test]
    fn paths_in_comments_strings_and_tests_are_not_dependencies() {
        let dir = tree(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("b.rs", "\n"),
            (
                "a.rs",
                concat!(
                    "// use crate::b;\n/* crate::b::x */\n",
                    "const S: &str = \"crate::b::y\";\nconst R: &str = r#\"use crate::b;\"#;\n",
                    "const C: char = '\"';\n",
                    "#[cfg(test)]\nmod tests {\n    use crate::b;\n    fn f() { let _ = '{'; }\n}\n",
                ),
            ),
        ]);
        assert_eq!(files(&graph(dir.path()), "a"), ["a.rs"]);
    }

    #[test]
    fn a_kind_is_invalidated_by_the_files_it_uses_and_no_others() {
        let dir = tree(&[
            ("lib.rs", "pub mod kinds;\npub mod math;\n"),
            ("kinds/mod.rs", "pub mod pca;\npub mod knn;\n"),
            ("kinds/pca.rs", "use crate::math::pca::fit;\n"),
            ("kinds/knn.rs", "use crate::math::knn::search;\n"),
            (
                "math/mod.rs",
                "pub mod pca;\npub mod knn;\npub mod linalg;\n",
            ),
            ("math/pca.rs", "use crate::math::linalg::eigen;\n"),
            ("math/knn.rs", "\n"),
            ("math/linalg.rs", "pub fn eigen() {}\n"),
        ]);
        let before = graph(dir.path());
        let edit = |file: &str| {
            let path = dir.path().join(file);
            let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            text.push_str("// edited\n");
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
            graph(dir.path())
        };
        let after = edit("math/linalg.rs");
        assert_ne!(
            before.version("kinds::pca", ""),
            after.version("kinds::pca", "")
        );
        assert_eq!(
            before.version("kinds::knn", ""),
            after.version("kinds::knn", "")
        );
        let again = edit("kinds/knn.rs");
        assert_eq!(
            after.version("kinds::pca", ""),
            again.version("kinds::pca", "")
        );
        assert_ne!(
            after.version("kinds::knn", ""),
            again.version("kinds::knn", "")
        );
        // A new sibling kind changes neither.
        std::fs::write(dir.path().join("kinds/lda.rs"), "\n").unwrap_or_else(|e| panic!("{e}"));
        let with_new = graph(dir.path());
        assert_eq!(
            again.version("kinds::pca", ""),
            with_new.version("kinds::pca", "")
        );
        // The salt (dependency versions) reaches every version.
        assert_ne!(
            with_new.version("kinds::knn", ""),
            with_new.version("kinds::knn", "faer 1")
        );
    }

    #[test]
    fn dependency_versions_follow_the_lock_file_transitively() {
        let lock = |faer: &str| {
            format!(
                "version = 4\n\n[[package]]\nname = \"stages\"\nversion = \"0.1.0\"\ndependencies = [\n \"faer\",\n \"rand 0.9.1\",\n]\n\n\
                 [[package]]\nname = \"faer\"\nversion = \"{faer}\"\nsource = \"registry+x\"\ndependencies = [\n \"gemm\",\n]\n\n\
                 [[package]]\nname = \"gemm\"\nversion = \"0.18.0\"\nsource = \"registry+x\"\n\n\
                 [[package]]\nname = \"rand\"\nversion = \"0.8.5\"\nsource = \"registry+x\"\n\n\
                 [[package]]\nname = \"rand\"\nversion = \"0.9.1\"\nsource = \"registry+x\"\n\n\
                 [[package]]\nname = \"unrelated\"\nversion = \"1.0.0\"\nsource = \"registry+x\"\n"
            )
        };
        assert_eq!(
            dependency_versions(&lock("0.24.0"), "stages"),
            "faer 0.24.0\ngemm 0.18.0\nrand 0.9.1"
        );
        assert_ne!(
            dependency_versions(&lock("0.24.0"), "stages"),
            dependency_versions(&lock("0.24.1"), "stages")
        );
    }
}
