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
        }
    }

    /// The serialized form, if anything changed since loading.
    pub fn to_json_if_changed(&self) -> Option<Vec<u8>> {
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
