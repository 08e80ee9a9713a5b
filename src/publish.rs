//! The only code that moves anything into the cache or the outputs folder.
//!
//! Every write goes to a temporary file beside its destination, then is renamed, so a reader
//! (or a run killed at any moment, SIGKILL included) sees the old file or the new one, never
//! a partial one. Order of a stage's commit: objects, then the manifest (the commit point),
//! each fsynced before its rename, then published copies under `outputs/STAGE/`. Published
//! files are copies, never links into the cache, so editing them cannot corrupt it; they are
//! synced at the end of the run, before the stat record that vouches for them is saved
//! ([`StatCache::record_once_synced`]).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use stages::kind::OutputSpec;

use crate::cache::{Cache, ObjectState};
use crate::content_hash::{hash_artifact, ContentHash, FileHashes};
use crate::manifest::{Manifest, OutputRecord};
use crate::stage_key::KeyHash;
use crate::stat_cache::{FileStat, StatCache};
use rayon::prelude::*;

/// Marks temporary files in output folders, so leftovers of a killed run can be removed.
pub(crate) const TMP_MARKER: &str = ".pipeline-tmp-";

/// A failure while committing or publishing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A filesystem operation failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The stage finished without writing a declared output.
    #[error("stage finished without writing its output `{output}` ({file})")]
    MissingOutput {
        /// The output name.
        output: String,
        /// The file it should have written.
        file: String,
    },
    /// A cached object does not match its hash.
    #[error("cache object `{path}` is corrupt (its content does not match its hash)")]
    CorruptObject {
        /// The object.
        path: PathBuf,
    },
    /// Something other than a regular file stands where an output is published.
    #[error(
        "cannot publish `{path}`: {what} is in the way; the pipeline writes a regular file there, so move or remove it and run again"
    )]
    InTheWay {
        /// The output path.
        path: PathBuf,
        /// What is there (`a directory`, `a symbolic link`).
        what: &'static str,
    },
    /// A manifest does not describe the stage's declared outputs.
    #[error("the cached result does not have the declared output `{output}`")]
    UndeclaredOutput {
        /// The output name.
        output: String,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PublishError + 'a {
    move |source| PublishError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync folder).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(io_err("create folder", dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_MARKER)
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(io_err("write", path))?;
    make_user_file(tmp.as_file());
    tmp.as_file().sync_all().map_err(io_err("sync", path))?;
    tmp.persist(path)
        .map_err(|e| io_err("replace", path)(e.error))?;
    sync_dir(dir);
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable; a failure here (some filesystems refuse) is not fatal.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A private, empty folder for one run of `stage`; removed when dropped.
pub(crate) fn staging_dir(cache: &Cache, stage: &str) -> Result<tempfile::TempDir, PublishError> {
    let tmp = cache.tmp_dir();
    fs::create_dir_all(&tmp).map_err(io_err("create folder", &tmp))?;
    tempfile::Builder::new()
        .prefix(&format!("{stage}-"))
        .tempdir_in(&tmp)
        .map_err(io_err("create a staging folder in", &tmp))
}

/// Moves a finished stage's outputs from `staging` into the object store. An object already
/// stored under the same hash is kept only if it verifies; a corrupt one is quarantined and
/// replaced by the fresh bytes.
pub(crate) fn commit_outputs(
    cache: &Cache,
    staging: &Path,
    outputs: &[OutputSpec],
    stat_cache: &StatCache,
) -> Result<BTreeMap<String, OutputRecord>, PublishError> {
    // Hashing, the slow part, runs for every output at once, so the small outputs are done
    // while the large one is hashed; storing stays in declared order (two outputs may hold
    // the same bytes, and so the same object).
    let hashed = outputs
        .par_iter()
        .map(|spec| hash_staged(staging, spec))
        .collect::<Vec<_>>();
    let mut records = BTreeMap::new();
    for (spec, hashed) in outputs.iter().zip(hashed) {
        let (staged, hashes, size) = hashed?;
        let record = store_output(cache, &staged, spec, hashes, size, stat_cache)?;
        records.insert(spec.name.clone(), record);
    }
    Ok(records)
}

fn hash_staged(
    staging: &Path,
    spec: &OutputSpec,
) -> Result<(PathBuf, FileHashes, u64), PublishError> {
    let staged = staging.join(&spec.file);
    if !fs::symlink_metadata(&staged).is_ok_and(|m| m.is_file()) {
        return Err(PublishError::MissingOutput {
            output: spec.name.clone(),
            file: spec.file.clone(),
        });
    }
    let hashes = hash_artifact(&staged).map_err(io_err("hash", &staged))?;
    let size = fs::metadata(&staged)
        .map_err(io_err("stat", &staged))?
        .len();
    Ok((staged, hashes, size))
}

fn store_output(
    cache: &Cache,
    staged: &Path,
    spec: &OutputSpec,
    hashes: FileHashes,
    size: u64,
    stat_cache: &StatCache,
) -> Result<OutputRecord, PublishError> {
    let object = cache.object_path(&hashes.object);
    let keep_existing = match cache.check_object(&hashes.object, stat_cache) {
        ObjectState::Sound => true,
        ObjectState::Missing => false,
        ObjectState::Corrupt => {
            let moved = quarantine_object(cache, &hashes.object)?;
            tracing::warn!(
                "cache object {} (output `{}`) was corrupt: moved to {}; storing the fresh result",
                object.display(),
                spec.name,
                moved.display()
            );
            false
        }
    };
    if keep_existing {
        // Content-addressed and verified: the existing object holds these bytes.
        let _ = fs::remove_file(staged);
    } else {
        // Synced only when it is kept: a rerun that wrote bytes already stored (the
        // usual `--force`) does not wait for a disk write it then deletes.
        File::open(staged)
            .and_then(|f| f.sync_all())
            .map_err(io_err("sync", staged))?;
        let dir = parent(&object);
        fs::create_dir_all(dir).map_err(io_err("create folder", dir))?;
        fs::rename(staged, &object).map_err(io_err("move into the cache", &object))?;
        set_read_only(&object);
        sync_dir(dir);
        // Recorded after the permission change, which moves the ctime on.
        if let Some(stat) = FileStat::of(&object) {
            stat_cache.record(&object, stat, hashes);
        }
    }
    Ok(OutputRecord {
        file: spec.file.clone(),
        object: hashes.object,
        content: hashes.content,
        size,
    })
}

/// Moves any file of the object store aside into `cache/quarantine/` (one whose name is not
/// a hash at all, found by `pipeline verify`).
pub(crate) fn quarantine_file(cache: &Cache, path: &Path) -> Result<(), PublishError> {
    let dir = cache.quarantine_dir();
    fs::create_dir_all(&dir).map_err(io_err("create folder", &dir))?;
    let name = path.file_name().map_or_else(
        || "unnamed".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let target = dir.join(format!("{name}.{}", std::process::id()));
    fs::rename(path, &target).map_err(io_err("quarantine", path))
}

/// Removes one file of the cache (`gc`, `verify --repair`); an already absent one is fine.
pub(crate) fn remove_file(path: &Path) -> Result<(), PublishError> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(err)),
        _ => Ok(()),
    }
}

/// Moves the object `hash` aside into `cache/quarantine/`, where it is never read again (it
/// stays for a person to look at until `pipeline gc`); returns where it went.
pub(crate) fn quarantine_object(
    cache: &Cache,
    hash: &ContentHash,
) -> Result<PathBuf, PublishError> {
    let dir = cache.quarantine_dir();
    fs::create_dir_all(&dir).map_err(io_err("create folder", &dir))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let target = dir.join(format!("{}.{stamp}", hash.to_hex()));
    let object = cache.object_path(hash);
    fs::rename(&object, &target).map_err(io_err("quarantine", &object))?;
    sync_dir(parent(&object));
    Ok(target)
}

/// Temporary files are created private (0600); published files get the usual 0644.
fn make_user_file(file: &File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = file.set_permissions(fs::Permissions::from_mode(0o644));
    }
    #[cfg(not(unix))]
    let _ = file;
}

fn set_read_only(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mut perms = meta.permissions();
        perms.set_readonly(true);
        let _ = fs::set_permissions(path, perms);
    }
}

/// Adds `data`, already verified to hash to `hash`, to the object store (a download from
/// the remote cache). A corrupt object already there is quarantined first.
pub(crate) fn adopt_object(
    cache: &Cache,
    hash: &ContentHash,
    data: &[u8],
    stat_cache: &StatCache,
) -> Result<(), PublishError> {
    let object = cache.object_path(hash);
    match cache.check_object(hash, stat_cache) {
        ObjectState::Sound => return Ok(()),
        ObjectState::Missing => {}
        ObjectState::Corrupt => {
            let moved = quarantine_object(cache, hash)?;
            tracing::warn!(
                "cache object {} was corrupt: moved to {}",
                object.display(),
                moved.display()
            );
        }
    }
    let dir = parent(&object);
    fs::create_dir_all(dir).map_err(io_err("create folder", dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_MARKER)
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    tmp.write_all(data).map_err(io_err("write", &object))?;
    tmp.as_file().sync_all().map_err(io_err("sync", &object))?;
    tmp.persist(&object)
        .map_err(|e| io_err("move into the cache", &object)(e.error))?;
    set_read_only(&object);
    sync_dir(dir);
    Ok(())
}

/// Commits a manifest: after this rename the result counts as cached.
pub(crate) fn write_manifest(cache: &Cache, manifest: &Manifest) -> Result<(), PublishError> {
    let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| PublishError::Io {
        action: "encode",
        path: cache.manifest_path(&manifest.key),
        source: io::Error::other(e),
    })?;
    write_atomic(&cache.manifest_path(&manifest.key), &bytes)
}

/// Removes the manifest for a result whose objects turned out to be corrupt or missing, so it
/// no longer counts as cached.
pub(crate) fn discard_manifest(cache: &Cache, key: &KeyHash) {
    let _ = fs::remove_file(cache.manifest_path(key));
}

/// Copies each declared output of `manifest` from the cache to `dir`, verifying its hash on
/// the way. File names come from `outputs` (the configuration), never from the manifest.
pub(crate) fn publish_outputs(
    cache: &Cache,
    dir: &Path,
    outputs: &[OutputSpec],
    manifest: &Manifest,
    stat_cache: &StatCache,
) -> Result<(), PublishError> {
    publish_outputs_with(cache, dir, outputs, manifest, stat_cache, true)
}

/// Like [`publish_outputs`], for objects hashed moments ago by [`commit_outputs`]: the copy
/// is left to the kernel (`copy_file_range`, a reflink where the filesystem has them)
/// instead of being hashed a second time.
pub(crate) fn publish_fresh_outputs(
    cache: &Cache,
    dir: &Path,
    outputs: &[OutputSpec],
    manifest: &Manifest,
    stat_cache: &StatCache,
) -> Result<(), PublishError> {
    publish_outputs_with(cache, dir, outputs, manifest, stat_cache, false)
}

/// Fails when `path` exists as something a published file must not replace.
fn check_not_in_the_way(path: &Path) -> Result<(), PublishError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(PublishError::InTheWay {
            path: path.to_owned(),
            what: "a directory",
        }),
        Ok(meta) if meta.file_type().is_symlink() => Err(PublishError::InTheWay {
            path: path.to_owned(),
            what: "a symbolic link",
        }),
        Ok(meta) if !meta.is_file() => Err(PublishError::InTheWay {
            path: path.to_owned(),
            what: "a special file",
        }),
        _ => Ok(()),
    }
}

fn publish_outputs_with(
    cache: &Cache,
    dir: &Path,
    outputs: &[OutputSpec],
    manifest: &Manifest,
    stat_cache: &StatCache,
    verify: bool,
) -> Result<(), PublishError> {
    if fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(PublishError::InTheWay {
            path: dir.to_owned(),
            what: "a file",
        });
    }
    fs::create_dir_all(dir).map_err(io_err("create folder", dir))?;
    // Each output is its own file (its own inode lock), so the copies run side by side.
    outputs
        .par_iter()
        .map(|spec| publish_output(cache, dir, spec, manifest, stat_cache, verify))
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<(), PublishError>>()?;
    Ok(())
}

fn publish_output(
    cache: &Cache,
    dir: &Path,
    spec: &OutputSpec,
    manifest: &Manifest,
    stat_cache: &StatCache,
    verify: bool,
) -> Result<(), PublishError> {
    let record = manifest
        .outputs
        .get(&spec.name)
        .filter(|r| r.file == spec.file)
        .ok_or_else(|| PublishError::UndeclaredOutput {
            output: spec.name.clone(),
        })?;
    let object = cache.object_path(&record.object);
    let target = dir.join(&spec.file);
    check_not_in_the_way(&target)?;
    // Already there, untouched since it was written with these bytes (the check a no-op run
    // makes of published files): a rerun that reproduced its result copies nothing.
    if stat_cache
        .known(&target)
        .is_some_and(|hashes| hashes.object == record.object)
    {
        return Ok(());
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_MARKER)
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    if verify {
        let copied = copy_hashing(&object, tmp.as_file_mut()).map_err(io_err("read", &object))?;
        if copied != record.object {
            return Err(PublishError::CorruptObject { path: object });
        }
    } else {
        let mut source = File::open(&object).map_err(io_err("read", &object))?;
        io::copy(&mut source, tmp.as_file_mut()).map_err(io_err("copy", &object))?;
    }
    make_user_file(tmp.as_file());
    // Renamed into place without waiting for the disk: a copy of a durable object, which a
    // reader sees whole or not at all (a kill leaves its bytes in the page cache). Only a
    // power cut can lose them, and the stat record that would vouch for them is made once
    // they are synced, so a lost copy is found changed and published again.
    tmp.persist(&target)
        .map_err(|e| io_err("replace", &target)(e.error))?;
    if let Some(stat) = FileStat::of(&target) {
        stat_cache.record_once_synced(
            &target,
            stat,
            FileHashes {
                object: record.object,
                content: record.content,
            },
        );
    }
    Ok(())
}

fn copy_hashing(from: &Path, to: &mut File) -> io::Result<ContentHash> {
    let mut source = File::open(from)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
    }
    Ok(ContentHash(*hasher.finalize().as_bytes()))
}

/// Keeps the output streams a failed stage left in `staging` (a command's `stdout.log` and
/// `stderr.log`) under `cache/logs/STAGE/`, replacing the last failure's; returns the folder.
pub(crate) fn keep_logs(cache: &Cache, stage: &str, staging: &Path) -> Option<PathBuf> {
    let dir = cache.logs_dir().join(stage);
    let mut kept = false;
    for file in stages::kinds::command::LOG_FILES {
        let source = staging.join(file);
        if let Ok(bytes) = fs::read(&source) {
            kept |= write_atomic(&dir.join(file), &bytes).is_ok();
        }
    }
    kept.then_some(dir)
}

/// Removes what a killed run left behind: staging folders (ending any command still running
/// from one) and temporary output files. Must only be called while holding the run lock.
pub(crate) fn clean_leftovers(cache: &Cache, outputs_dir: &Path) {
    if let Ok(entries) = fs::read_dir(cache.tmp_dir()) {
        for entry in entries.flatten() {
            let path = entry.path();
            stages::kinds::command::end_recorded_group(&path);
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
    for dir in [
        cache.manifests_dir(),
        cache.objects_dir(),
        outputs_dir.to_owned(),
    ] {
        remove_tmp_files(&dir, 2);
    }
}

fn remove_tmp_files(dir: &Path, depth: usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(TMP_MARKER) {
            let _ = fs::remove_file(&path);
        } else if depth > 1 && path.is_dir() {
            remove_tmp_files(&path, depth - 1);
        }
    }
}
