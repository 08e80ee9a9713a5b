//! `pipeline gc`: removes the cache entries no lock file references, so a cache that grew
//! through parameter sweeps shrinks back to what the project uses.
//!
//! Kept: the manifest of every key recorded in this project's `pipeline.lock` and in any
//! other lock file given (`--keep-lock`, for branches or sibling projects sharing the cache),
//! and every object those manifests or lock entries name. Removed: every other manifest and
//! object, and the quarantine. Runs under the run lock; a run right after it has nothing to
//! do, since `pipeline.lock` names the current result of every stage.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::cache::Cache;
use crate::content_hash::ContentHash;
use crate::lockfile::Lockfile;
use crate::publish::{self, PublishError};
use crate::stage_key::KeyHash;
use crate::verify::{bytes, list_manifests, list_objects, StoredManifest};

/// What `gc` removed (or would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct GcReport {
    /// Whether this was `--dry-run`.
    pub dry_run: bool,
    /// Lock files whose entries were kept.
    pub locks: Vec<String>,
    /// Manifests kept.
    pub kept_manifests: usize,
    /// Objects kept.
    pub kept_objects: usize,
    /// Bytes kept.
    pub kept_bytes: u64,
    /// Manifests removed.
    pub removed_manifests: usize,
    /// Objects removed.
    pub removed_objects: usize,
    /// Quarantined files removed.
    pub removed_quarantined: usize,
    /// Bytes removed (objects and quarantine).
    pub removed_bytes: u64,
}

impl GcReport {
    /// The human form.
    pub(crate) fn render(&self) -> String {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{verb} {} manifests, {} objects and {} quarantined files ({})",
            self.removed_manifests,
            self.removed_objects,
            self.removed_quarantined,
            bytes(self.removed_bytes)
        );
        let _ = writeln!(
            out,
            "kept {} manifests and {} objects ({}) referenced by {}",
            self.kept_manifests,
            self.kept_objects,
            bytes(self.kept_bytes),
            self.locks.join(", ")
        );
        out
    }
}

/// Collects the cache against `locks` (name shown, lock file). The run lock must be held.
pub(crate) fn collect(
    cache: &Cache,
    locks: &[(String, Lockfile)],
    dry_run: bool,
) -> Result<GcReport, PublishError> {
    let mut keep_keys: BTreeSet<KeyHash> = BTreeSet::new();
    let mut keep_objects: BTreeSet<ContentHash> = BTreeSet::new();
    for (_, lock) in locks {
        for entry in lock.stages.values() {
            keep_keys.insert(entry.key.clone());
            keep_objects.extend(entry.outputs.values().map(|r| r.object));
        }
    }
    let mut report = GcReport {
        dry_run,
        locks: locks.iter().map(|(name, _)| name.clone()).collect(),
        ..GcReport::default()
    };
    let mut remove: Vec<PathBuf> = Vec::new();
    for manifest in list_manifests(cache) {
        match manifest {
            StoredManifest::Sound(m) if keep_keys.contains(&m.key) => {
                report.kept_manifests += 1;
                keep_objects.extend(m.outputs.values().map(|r| r.object));
            }
            StoredManifest::Sound(m) => {
                report.removed_manifests += 1;
                remove.push(cache.manifest_path(&m.key));
            }
            StoredManifest::Unreadable { path, .. } => {
                report.removed_manifests += 1;
                remove.push(path);
            }
        }
    }
    for object in list_objects(cache) {
        if object.name.is_some_and(|n| keep_objects.contains(&n)) {
            report.kept_objects += 1;
            report.kept_bytes += object.size;
        } else {
            report.removed_objects += 1;
            report.removed_bytes += object.size;
            remove.push(object.path);
        }
    }
    if let Ok(entries) = std::fs::read_dir(cache.quarantine_dir()) {
        for entry in entries.flatten() {
            report.removed_quarantined += 1;
            report.removed_bytes += entry.metadata().map_or(0, |m| m.len());
            remove.push(entry.path());
        }
    }
    if !dry_run {
        for path in &remove {
            publish::remove_file(path)?;
        }
    }
    Ok(report)
}
