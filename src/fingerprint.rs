//! Decides whether a stage is up to date, and if not, exactly why.
//!
//! # What goes into a stage's key
//!
//! | component        | source                                   | why                                   |
//! |------------------|------------------------------------------|---------------------------------------|
//! | `format`         | [`CACHE_FORMAT`]                         | a new key encoding invalidates all    |
//! | `stage`          | the stage's name                         | it is written into artifact provenance|
//! | `kind`           | `kind = "..."`                           | different computation                 |
//! | `code_version`   | blake3 of every file in `stages/src` that the kind's module transitively imports (derived from the module graph by `stages/build.rs`), of the name and version of every third-party crate the `stages` crate depends on (from `Cargo.lock`), and of the `stages` crate version | editing a file reruns exactly the kinds that use it and their dependents; a faer or parquet upgrade reruns every kind |
//! | `params`         | the kind's parameters, defaults filled in, keys sorted | a default written out or left implicit gives the same key |
//! | `code`           | per code file of the stage (a `command`'s `code = [...]`), its path and content hash; absent for kinds without code files | editing a script reruns the stage, touching it does not |
//! | `env`            | per declared variable (`env = [...]`), a blake3 of its value (`unset` when unset); absent when none | the value decides the result; a hash, so a secret never lands in a manifest or `pipeline.lock` |
//! | `inputs`         | per input, in order: its name and the *content* hash of its bytes (for an upstream output, the hash recorded in the upstream's manifest; for a Parquet file, without its `pipeline.*` provenance) | any change of data reruns; an upstream that reruns and writes identical data does not rerun its dependents (early cutoff) |
//!
//! # Deliberately left out
//!
//! - mtimes, inodes and sizes: a checkout or copy changes them without changing content
//!   (they only let the stat cache skip rehashing an untouched file);
//! - absolute paths: moving the project must not invalidate the cache;
//! - thread counts (`-j`), log levels, the terminal: they do not change results;
//! - where and how a stage runs: the executor (`--executor slurm`), a stage's
//!   `[stages.NAME.resources]` (cpus, memory, time limit, partition) and a kind's scheduling
//!   parameters (the k-NN's `shards`). A worker on a cluster node computes the same bytes as a
//!   local run, so a result computed anywhere serves every machine; putting them in the key
//!   would make a time-limit tweak recompute everything downstream;
//! - `#[cfg(test)]` code, comments or strings that merely mention a module: the module
//!   graph ignores them when it follows imports (a file's own text, comments included, is
//!   still hashed);
//! - a folder's `mod.rs` listing its children: adding a kind does not rerun its siblings.
//!
//! # How a kind's code version is derived
//!
//! Nobody keeps a list of files by hand. `stages/build.rs` walks `stages/src` recursively and
//! reads each file's `crate::`, `self::`, `super::` and child-module paths, in `use` items
//! and inline (`build/module_graph.rs`); a path resolves to the longest prefix that names a
//! module. A kind declares only `const MODULE = module_path!()`, and its version is the hash
//! of that module's transitive closure. Tests in the `stages` crate check that an edit to a
//! transitively used file changes a kind's version and an edit to an unrelated kind's file
//! does not, and that no kind imports another.
//!
//! # Deciding freshness
//!
//! With every upstream resolved (its output hashes known), a stage's key is computed and:
//! a manifest for the key whose published outputs match -> up to date; a manifest whose
//! published outputs are missing or edited -> restore; no manifest -> run. The reasons come
//! from comparing the key's components with those recorded in `pipeline.lock`, in a fixed
//! order: format, kind, code version, parameters, inputs.

use crate::stage_key::{StageKey, CACHE_FORMAT};
use crate::stale_reason::StaleReason;

/// The reasons `new` differs from the recorded `old` components, in a fixed order.
pub(crate) fn compare(old: &StageKey, new: &StageKey) -> Vec<StaleReason> {
    let mut reasons = Vec::new();
    if old.format != new.format {
        reasons.push(StaleReason::CacheFormatChanged {
            old: old.format,
            new: CACHE_FORMAT,
        });
    }
    if old.kind != new.kind {
        reasons.push(StaleReason::KindChanged {
            old: old.kind.clone(),
            new: new.kind.clone(),
        });
    } else if old.code_version != new.code_version {
        reasons.push(StaleReason::CodeVersionChanged {
            old: old.code_version.clone(),
            new: new.code_version.clone(),
        });
    }
    compare_params(&old.params, &new.params, &mut reasons);
    let names = |c: &[crate::stage_key::KeyInput]| -> Vec<String> {
        c.iter().map(|i| i.name.clone()).collect()
    };
    if names(&old.code) != names(&new.code) {
        reasons.push(StaleReason::CodeFilesChanged {
            old: names(&old.code),
            new: names(&new.code),
        });
    } else {
        for (o, n) in old.code.iter().zip(&new.code) {
            if o.hash != n.hash {
                reasons.push(StaleReason::CodeFileChanged {
                    path: n.name.clone(),
                });
            }
        }
    }
    let env_names: std::collections::BTreeSet<&String> =
        old.env.keys().chain(new.env.keys()).collect();
    for name in env_names {
        if old.env.get(name) != new.env.get(name) {
            reasons.push(StaleReason::EnvChanged { name: name.clone() });
        }
    }
    let old_names: Vec<String> = old.inputs.iter().map(|i| i.name.clone()).collect();
    let new_names: Vec<String> = new.inputs.iter().map(|i| i.name.clone()).collect();
    if old_names != new_names {
        reasons.push(StaleReason::InputsChanged {
            old: old_names,
            new: new_names,
        });
    } else {
        for (o, n) in old.inputs.iter().zip(&new.inputs) {
            if o.hash != n.hash {
                reasons.push(StaleReason::InputChanged {
                    input: n.name.clone(),
                    old: o.hash.short(),
                    new: n.hash.short(),
                });
            }
        }
    }
    reasons
}

fn compare_params(old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<StaleReason>) {
    let empty = serde_json::Map::new();
    let old_map = old.as_object().unwrap_or(&empty);
    let new_map = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = old_map.keys().chain(new_map.keys()).collect();
    keys.sort();
    keys.dedup();
    let null = serde_json::Value::Null;
    for key in keys {
        let before = old_map.get(key).unwrap_or(&null);
        let after = new_map.get(key).unwrap_or(&null);
        if before != after {
            out.push(StaleReason::ParamChanged {
                param: key.clone(),
                old: before.to_string(),
                new: after.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content_hash::ContentHash;
    use crate::stage_key::KeyInput;
    use serde_json::json;

    fn key(params: serde_json::Value, input: &[u8]) -> StageKey {
        StageKey {
            format: CACHE_FORMAT,
            stage: "s".into(),
            kind: "k".into(),
            code_version: "v1".into(),
            params,
            inputs: vec![KeyInput {
                name: "up:out".into(),
                hash: ContentHash::of(input),
            }],
            code: vec![],
            env: Default::default(),
        }
    }

    #[test]
    fn compare_names_each_changed_param_and_input() {
        let old = key(json!({"n": 2, "seed": 1}), b"a");
        let new = key(json!({"n": 3, "seed": 1}), b"b");
        let reasons: Vec<String> = compare(&old, &new)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(reasons[0], "param `n` changed: 2 -> 3");
        assert!(reasons[1].starts_with("input `up:out` changed: "));
        assert_eq!(reasons.len(), 2);
    }

    #[test]
    fn identical_components_give_no_reason() {
        let a = key(json!({"n": 2}), b"a");
        assert!(compare(&a, &a.clone()).is_empty());
        assert_eq!(a.hash(), a.clone().hash());
    }
}
