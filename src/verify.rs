//! `pipeline verify`: hashes every object and reads every manifest of the cache, and reports
//! what cannot be trusted (corrupt objects, manifests that are unreadable or name missing or
//! corrupt objects), what nothing needs (orphaned objects) and what was set aside
//! (quarantine). With `--repair` it quarantines corrupt objects and drops the manifests that
//! depend on them, so the next run recomputes exactly those results.
//!
//! It reads every byte: unlike a run, it trusts no stat record. Repairs go through
//! `publish.rs`, under the run lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::cache::Cache;
use crate::content_hash::{hash_file, ContentHash};
use crate::manifest::Manifest;
use crate::publish::{self, PublishError};
use crate::stage_key::KeyHash;

/// One object in the store, as found.
#[derive(Debug, Clone)]
pub(crate) struct StoredObject {
    /// Its file.
    pub path: PathBuf,
    /// The hash its name claims, if its name is one.
    pub name: Option<ContentHash>,
    /// Its size in bytes.
    pub size: u64,
}

/// Every object file under `cache/objects/`, in path order.
pub(crate) fn list_objects(cache: &Cache) -> Vec<StoredObject> {
    let mut found = Vec::new();
    let Ok(shards) = std::fs::read_dir(cache.objects_dir()) else {
        return found;
    };
    for shard in shards.flatten() {
        let Ok(entries) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with(publish::TMP_MARKER) {
                continue;
            }
            let size = entry.metadata().map_or(0, |m| m.len());
            found.push(StoredObject {
                name: file_name.parse().ok(),
                path,
                size,
            });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// One manifest file, as read.
#[derive(Debug, Clone)]
pub(crate) enum StoredManifest {
    /// Parsed, and its key matches its name and its components.
    Sound(Box<Manifest>),
    /// Unreadable, or its key does not match.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// Every manifest under `cache/manifests/`, in path order.
pub(crate) fn list_manifests(cache: &Cache) -> Vec<StoredManifest> {
    let Ok(entries) = std::fs::read_dir(cache.manifests_dir()) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(publish::TMP_MARKER))
        })
        .collect();
    paths.sort();
    paths.into_iter().map(|path| read_manifest(&path)).collect()
}

fn read_manifest(path: &Path) -> StoredManifest {
    let unreadable = |why: String| StoredManifest::Unreadable {
        path: path.to_owned(),
        why,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) => return unreadable(err.to_string()),
    };
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(err) => return unreadable(format!("not a manifest: {err}")),
    };
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    if stem.as_deref() != Some(manifest.key.0.as_str()) {
        return unreadable("its key is not its file name".into());
    }
    if manifest.components.hash() != manifest.key {
        return unreadable("its key does not match its components".into());
    }
    StoredManifest::Sound(Box::new(manifest))
}

/// A manifest that names an object the store lacks or holds corrupt.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BrokenReference {
    /// The manifest's stage.
    pub stage: String,
    /// The manifest's key.
    pub key: String,
    /// The output.
    pub output: String,
    /// The object's hash.
    pub object: String,
    /// `missing` or `corrupt`.
    pub problem: &'static str,
}

/// What `pipeline verify` found (and did).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct VerifyReport {
    /// Objects hashed.
    pub objects: usize,
    /// Their bytes.
    pub object_bytes: u64,
    /// Manifests read.
    pub manifests: usize,
    /// Objects whose bytes do not match their names (paths relative to the project).
    pub corrupt_objects: Vec<String>,
    /// Manifests that cannot be read or whose key does not match.
    pub unreadable_manifests: Vec<String>,
    /// Manifest outputs whose object is missing or corrupt.
    pub broken_references: Vec<BrokenReference>,
    /// Sound objects that no manifest names (`pipeline gc` removes them).
    pub orphaned_objects: usize,
    /// Their bytes.
    pub orphaned_bytes: u64,
    /// Files set aside in `cache/quarantine/`.
    pub quarantined: usize,
    /// Whether `--repair` was given and applied.
    pub repaired: bool,
}

impl VerifyReport {
    /// Whether anything cannot be trusted (orphans and quarantine are not problems).
    pub(crate) fn has_problems(&self) -> bool {
        !self.corrupt_objects.is_empty()
            || !self.unreadable_manifests.is_empty()
            || !self.broken_references.is_empty()
    }

    /// The human form.
    pub(crate) fn render(&self) -> String {
        let mut out = format!(
            "checked {} objects ({}) and {} manifests\n",
            self.objects,
            bytes(self.object_bytes),
            self.manifests
        );
        for path in &self.corrupt_objects {
            let _ = writeln!(out, "corrupt object: {path}");
        }
        for path in &self.unreadable_manifests {
            let _ = writeln!(out, "unreadable manifest: {path}");
        }
        for r in &self.broken_references {
            let _ = writeln!(
                out,
                "{} object {} of stage `{}`, output `{}` (key {})",
                r.problem,
                &r.object[..12.min(r.object.len())],
                r.stage,
                r.output,
                &r.key[..12.min(r.key.len())]
            );
        }
        if self.orphaned_objects > 0 {
            let _ = writeln!(
                out,
                "orphaned objects: {} ({}); `pipeline gc` removes them",
                self.orphaned_objects,
                bytes(self.orphaned_bytes)
            );
        }
        if self.quarantined > 0 {
            let _ = writeln!(
                out,
                "quarantined: {} in cache/quarantine; `pipeline gc` removes them",
                self.quarantined
            );
        }
        if !self.has_problems() {
            out.push_str("the cache is sound\n");
        } else if self.repaired {
            let manifests = self
                .broken_references
                .iter()
                .map(|r| r.key.as_str())
                .collect::<BTreeSet<_>>()
                .len()
                + self.unreadable_manifests.len();
            let _ = writeln!(
                out,
                "repaired: quarantined {} {}, dropped {} {}; the next run recomputes them",
                self.corrupt_objects.len(),
                plural(self.corrupt_objects.len(), "object", "objects"),
                manifests,
                plural(manifests, "manifest", "manifests"),
            );
        } else {
            out.push_str("run `pipeline verify --repair` to drop what cannot be trusted\n");
        }
        out
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `1234567` -> `1.2 MB`.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        0..=999 => format!("{n} B"),
        1_000..=999_999 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

/// Checks the whole cache; with `repair`, drops what cannot be trusted (the run lock must be
/// held). `relative` shows a path relative to the project.
pub(crate) fn verify(
    cache: &Cache,
    repair: bool,
    relative: &dyn Fn(&Path) -> String,
) -> Result<VerifyReport, PublishError> {
    let objects = list_objects(cache);
    let verdicts: Vec<bool> = objects
        .par_iter()
        .map(|o| match (&o.name, hash_file(&o.path)) {
            (Some(name), Ok(hash)) => hash == *name,
            _ => false,
        })
        .collect();
    let mut report = VerifyReport {
        objects: objects.len(),
        object_bytes: objects.iter().map(|o| o.size).sum(),
        ..VerifyReport::default()
    };
    let mut sound: BTreeMap<ContentHash, u64> = BTreeMap::new();
    let mut corrupt: Vec<&StoredObject> = Vec::new();
    for (object, ok) in objects.iter().zip(verdicts) {
        match (ok, object.name) {
            (true, Some(name)) => {
                sound.insert(name, object.size);
            }
            _ => corrupt.push(object),
        }
    }
    report.corrupt_objects = corrupt.iter().map(|o| relative(&o.path)).collect();

    let manifests = list_manifests(cache);
    report.manifests = manifests.len();
    let mut referenced = BTreeSet::new();
    let mut drop_keys: BTreeSet<KeyHash> = BTreeSet::new();
    let mut drop_paths: Vec<PathBuf> = Vec::new();
    let corrupt_names: BTreeSet<ContentHash> = corrupt.iter().filter_map(|o| o.name).collect();
    for manifest in &manifests {
        match manifest {
            StoredManifest::Unreadable { path, why } => {
                report
                    .unreadable_manifests
                    .push(format!("{} ({why})", relative(path)));
                drop_paths.push(path.clone());
            }
            StoredManifest::Sound(m) => {
                for (output, record) in &m.outputs {
                    referenced.insert(record.object);
                    let problem = if sound.contains_key(&record.object) {
                        continue;
                    } else if corrupt_names.contains(&record.object) {
                        "corrupt"
                    } else {
                        "missing"
                    };
                    report.broken_references.push(BrokenReference {
                        stage: m.components.stage.clone(),
                        key: m.key.0.clone(),
                        output: output.clone(),
                        object: record.object.to_hex(),
                        problem,
                    });
                    drop_keys.insert(m.key.clone());
                }
            }
        }
    }
    for (hash, size) in &sound {
        if !referenced.contains(hash) {
            report.orphaned_objects += 1;
            report.orphaned_bytes += size;
        }
    }
    report.quarantined = std::fs::read_dir(cache.quarantine_dir())
        .map(|entries| entries.flatten().count())
        .unwrap_or(0);

    if repair && report.has_problems() {
        for object in &corrupt {
            match object.name {
                Some(name) => {
                    publish::quarantine_object(cache, &name)?;
                }
                // A file whose name is no hash was never written by the pipeline.
                None => publish::quarantine_file(cache, &object.path)?,
            }
        }
        for key in &drop_keys {
            publish::discard_manifest(cache, key);
        }
        for path in &drop_paths {
            publish::remove_file(path)?;
        }
        report.repaired = true;
    }
    Ok(report)
}
