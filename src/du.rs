//! `pipeline du [--json]`: what each stage costs on disk: its cached results (every key it was
//! ever run with, so a parameter sweep shows up) and its published outputs, plus what
//! `pipeline gc` would free.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::content_hash::ContentHash;
use crate::plan::Project;
use crate::verify::{bytes, list_manifests, list_objects, StoredManifest};

/// One stage's footprint.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StageUsage {
    /// The stage (or a stage no longer in the configuration, whose results are still cached).
    pub stage: String,
    /// Cached results (keys) of the stage.
    pub cached_results: usize,
    /// Bytes of the distinct objects those results name.
    pub cache_bytes: u64,
    /// Bytes under `outputs/STAGE/`.
    pub output_bytes: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Usage {
    /// Per stage, in the configuration's order, then stages no longer configured.
    pub stages: Vec<StageUsage>,
    /// Bytes of every object in the cache (each counted once).
    pub cache_bytes: u64,
    /// Bytes `pipeline gc` would remove (not referenced by `pipeline.lock`, and quarantine).
    pub collectable_bytes: u64,
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Measures `project`'s cache and outputs.
pub(crate) fn measure(project: &Project) -> Usage {
    let sizes: BTreeMap<ContentHash, u64> = list_objects(&project.cache)
        .into_iter()
        .filter_map(|o| o.name.map(|n| (n, o.size)))
        .collect();
    let mut per_stage: BTreeMap<String, (usize, BTreeSet<ContentHash>)> = BTreeMap::new();
    for manifest in list_manifests(&project.cache) {
        if let StoredManifest::Sound(m) = manifest {
            let entry = per_stage.entry(m.components.stage.clone()).or_default();
            entry.0 += 1;
            entry.1.extend(m.outputs.values().map(|r| r.object));
        }
    }
    let referenced: BTreeSet<ContentHash> = project
        .lockfile
        .stages
        .values()
        .flat_map(|e| e.outputs.values().map(|r| r.object))
        .collect();
    let quarantine = dir_bytes(&project.cache.quarantine_dir());
    let collectable = sizes
        .iter()
        .filter(|(h, _)| !referenced.contains(h))
        .map(|(_, s)| s)
        .sum::<u64>()
        + quarantine;
    let mut names: Vec<String> = project
        .config
        .stages
        .iter()
        .map(|s| s.id.0.clone())
        .collect();
    names.extend(
        per_stage
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let stages = names
        .into_iter()
        .map(|stage| {
            let (results, objects) = per_stage.remove(&stage).unwrap_or_default();
            StageUsage {
                cache_bytes: objects.iter().filter_map(|o| sizes.get(o)).sum(),
                output_bytes: dir_bytes(&project.config.outputs_dir.join(&stage)),
                cached_results: results,
                stage,
            }
        })
        .collect();
    Usage {
        stages,
        cache_bytes: sizes.values().sum(),
        collectable_bytes: collectable,
    }
}

impl Usage {
    /// The table.
    pub(crate) fn render(&self) -> String {
        let width = self
            .stages
            .iter()
            .map(|s| s.stage.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!(
            "{:width$}  {:>7}  {:>10}  {:>10}\n",
            "stage", "results", "cache", "outputs"
        );
        for s in &self.stages {
            let _ = writeln!(
                out,
                "{:width$}  {:>7}  {:>10}  {:>10}",
                s.stage,
                s.cached_results,
                bytes(s.cache_bytes),
                bytes(s.output_bytes)
            );
        }
        let _ = writeln!(
            out,
            "cache: {} in all (objects shared by stages counted once); `pipeline gc` would free {}",
            bytes(self.cache_bytes),
            bytes(self.collectable_bytes)
        );
        out
    }
}
