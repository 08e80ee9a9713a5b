//! Remembers the hashes of files by their (size, mtime, ctime, inode), so an untouched file is
//! never hashed twice.
//!
//! Only a hint: a file whose stat differs is rehashed, and touching a file without changing
//! its bytes gives the same hash, so nothing reruns. Stat data never enters a cache key. The
//! ctime is what makes the hint safe: a user can put a file's mtime back after editing it
//! (`touch -d`, `cp -p`, an editor that preserves it), but not its ctime, which every write,
//! rename or permission change moves on. Cache objects are verified the same way: an object
//! whose stat record matches was hashed when the record was made, so an untouched object costs
//! one `stat`, not a rehash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::content_hash::{hash_artifact, FileHashes};

/// What identifies an unchanged file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// Length in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status-change time in nanoseconds since the epoch (0 where the platform has none).
    pub ctime_ns: i128,
    /// Inode number (0 where the platform has none).
    pub inode: u64,
}

impl FileStat {
    /// The stat of `path`, or `None` if it is not a readable regular file.
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        #[cfg(unix)]
        let (inode, ctime_ns) = {
            use std::os::unix::fs::MetadataExt;
            (
                meta.ino(),
                i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            )
        };
        #[cfg(not(unix))]
        let (inode, ctime_ns) = (0, 0);
        Some(Self {
            size: meta.len(),
            mtime_ns,
            ctime_ns,
            inode,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stat: FileStat,
    hashes: FileHashes,
}

/// Hashes by path, valid while the stat matches.
#[derive(Debug, Default)]
pub struct StatCache {
    entries: Mutex<BTreeMap<PathBuf, Entry>>,
    dirty: Mutex<bool>,
    /// Files written without waiting for the disk, recorded once they reach it.
    awaiting_disk: Mutex<Vec<(PathBuf, Entry)>>,
}

impl StatCache {
    /// Loads the cache from `file`; a missing or unreadable file gives an empty cache.
    pub fn load(file: &Path) -> Self {
        let entries = std::fs::read(file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            entries: Mutex::new(entries),
            dirty: Mutex::new(false),
            awaiting_disk: Mutex::new(Vec::new()),
        }
    }

    /// The serialized form, if anything changed since loading. Files awaiting the disk are
    /// synced (and recorded) first, so what is saved never vouches for bytes a power cut
    /// could still take.
    pub fn to_json_if_changed(&self) -> Option<Vec<u8>> {
        self.sync_awaiting();
        let dirty = *self.dirty.lock().ok()?;
        if !dirty {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        serde_json::to_vec(&*entries).ok()
    }

    /// The hashes of `path`, from the cache when its stat is unchanged.
    pub fn hashes(&self, path: &Path) -> std::io::Result<FileHashes> {
        let stat = FileStat::of(path).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such regular file")
        })?;
        if let Some(hashes) = self.lookup(path, stat) {
            return Ok(hashes);
        }
        let hashes = hash_artifact(path)?;
        self.record(path, stat, hashes);
        Ok(hashes)
    }

    /// Hashes several files in parallel (an untouched file costs one `stat`).
    pub fn hash_all(&self, paths: &[PathBuf]) -> Vec<std::io::Result<FileHashes>> {
        paths.par_iter().map(|p| self.hashes(p)).collect()
    }

    /// Remembers that `path`, now with stat `stat`, has `hashes`.
    pub fn record(&self, path: &Path, stat: FileStat, hashes: FileHashes) {
        if let (Ok(mut entries), Ok(mut dirty)) = (self.entries.lock(), self.dirty.lock()) {
            entries.insert(path.to_owned(), Entry { stat, hashes });
            *dirty = true;
        }
    }

    /// Like [`StatCache::record`] for a file just written and not yet synced: the record is
    /// made by [`StatCache::sync_awaiting`], after the file is on disk (and only if its stat
    /// is still `stat` then). Until then a check of the file rehashes it, and after a crash
    /// that lost its bytes it is found changed and written again, never trusted.
    ///
    /// This lets a published copy be renamed into place without waiting for the disk: a
    /// run's fsyncs then overlap the stages that follow instead of holding each one up, and
    /// by the run's end most of the bytes have been written back already.
    pub fn record_once_synced(&self, path: &Path, stat: FileStat, hashes: FileHashes) {
        if let Ok(mut waiting) = self.awaiting_disk.lock() {
            waiting.push((path.to_owned(), Entry { stat, hashes }));
        }
    }

    /// Syncs every file (and its folder) given to [`StatCache::record_once_synced`] and
    /// records those still as they were written. A file that cannot be synced, or that
    /// changed meanwhile, is left unrecorded: the next check rehashes it.
    pub fn sync_awaiting(&self) {
        let waiting = match self.awaiting_disk.lock() {
            Ok(mut waiting) => std::mem::take(&mut *waiting),
            Err(_) => return,
        };
        if waiting.is_empty() {
            return;
        }
        let folders: std::collections::BTreeSet<&Path> = waiting
            .iter()
            .filter_map(|(path, _)| path.parent())
            .collect();
        waiting.par_iter().for_each(|(path, entry)| {
            let synced = std::fs::File::open(path).and_then(|file| file.sync_all());
            match synced {
                Ok(()) if FileStat::of(path) == Some(entry.stat) => {
                    self.record(path, entry.stat, entry.hashes);
                }
                Ok(()) => {}
                Err(err) => tracing::debug!("cannot sync {}: {err}", path.display()),
            }
        });
        // The renames that put the files there, made durable.
        for folder in folders {
            if let Ok(dir) = std::fs::File::open(folder) {
                let _ = dir.sync_all();
            }
        }
    }

    /// The hashes of `path` if its stat matches the record made of it, without reading it.
    pub fn known(&self, path: &Path) -> Option<FileHashes> {
        self.lookup(path, FileStat::of(path)?)
    }

    fn lookup(&self, path: &Path, stat: FileStat) -> Option<FileHashes> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(path)?;
        (entry.stat == stat).then_some(entry.hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, FileStat, FileHashes) {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        let stat = FileStat::of(&path).unwrap_or_else(|| panic!("no stat for {name}"));
        let hashes = hash_artifact(&path).unwrap_or_else(|e| panic!("{e}"));
        (path, stat, hashes)
    }

    #[test]
    fn a_file_awaiting_the_disk_is_vouched_for_only_once_synced_and_unchanged() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = StatCache::default();
        let (kept, kept_stat, kept_hashes) = written(dir.path(), "kept.bin", b"published");
        let (edited, edited_stat, edited_hashes) = written(dir.path(), "edited.bin", b"first");
        cache.record_once_synced(&kept, kept_stat, kept_hashes);
        cache.record_once_synced(&edited, edited_stat, edited_hashes);
        assert_eq!(cache.known(&kept), None, "vouched for before the sync");
        assert_eq!(cache.to_json_if_changed().map(|_| ()), Some(()));
        // Saving synced the files: the untouched one is now known without reading it.
        assert_eq!(cache.known(&kept), Some(kept_hashes));

        // A file changed between its writing and the sync is not recorded.
        let cache = StatCache::default();
        cache.record_once_synced(&edited, edited_stat, edited_hashes);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&edited, b"changed by someone else").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cache.to_json_if_changed(), None, "nothing to save");
        assert_eq!(cache.known(&edited), None);
    }
}
