//! The layout of the cache folder and read access to it.
//!
//! ```text
//! cache/
//!   lock                  OS lock held by `pipeline run` (never deleted, never stale)
//!   objects/ab/abcd...    content-addressed outputs, read-only, named by blake3
//!   manifests/KEY.json    one per cached stage result (see manifest.rs)
//!   tmp/                  private staging folders of running stages
//!   quarantine/           objects whose bytes did not match their names, moved aside
//!   logs/STAGE/           stdout.log and stderr.log of the last failed command of STAGE
//!   stat-cache.json       hashes of files by (size, mtime, ctime, inode)
//! ```
//!
//! Reading is safe at any time, even during a run: every file here appears by an atomic
//! rename. Writing is `publish.rs`'s job alone.
//!
//! Nothing read from here is trusted by its name: [`Cache::check_object`] verifies an object
//! against its hash (one `stat` when its stat record is current, a rehash otherwise), and a
//! manifest counts only when its outputs are exactly the ones the stage declares
//! ([`Manifest::matches`]), so a name read from the cache never chooses a path.

use std::path::PathBuf;

use crate::content_hash::ContentHash;
use crate::manifest::Manifest;
use crate::stage_key::KeyHash;
use crate::stat_cache::StatCache;

/// What a cache object turned out to be when checked against its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectState {
    /// Its bytes hash to its name.
    Sound,
    /// There is no such object.
    Missing,
    /// Its bytes do not hash to its name, or it cannot be read.
    Corrupt,
}

impl ObjectState {
    /// The word used in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Sound => "sound",
            Self::Missing => "missing",
            Self::Corrupt => "corrupt",
        }
    }
}

/// The cache folder.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// A manifest that exists but cannot be used.
#[derive(Debug, Clone)]
pub struct UnreadableManifest {
    /// Its path.
    pub path: PathBuf,
}

impl Cache {
    /// The cache folder.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The cache rooted at `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Where objects live.
    pub fn objects_dir(&self) -> PathBuf {
        self.dir.join("objects")
    }

    /// Where manifests live.
    pub fn manifests_dir(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    /// Where running stages stage their outputs.
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Where the output of failed commands is kept.
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Where objects that failed verification are moved.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.dir.join("quarantine")
    }

    /// The lock file of `pipeline run`.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// The stat cache file.
    pub fn stat_cache_path(&self) -> PathBuf {
        self.dir.join("stat-cache.json")
    }

    /// The path of the object with hash `hash`.
    pub fn object_path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.objects_dir().join(&hex[..2]).join(&hex)
    }

    /// The path of the manifest for `key`.
    pub fn manifest_path(&self, key: &KeyHash) -> PathBuf {
        self.manifests_dir().join(format!("{}.json", key.0))
    }

    /// Whether the object `hash` is present and its bytes hash to its name. An object whose
    /// stat record is current costs one `stat`; any other is hashed (and recorded).
    pub fn check_object(&self, hash: &ContentHash, stat_cache: &StatCache) -> ObjectState {
        let path = self.object_path(hash);
        match std::fs::symlink_metadata(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return ObjectState::Missing,
            Ok(meta) if !meta.is_file() => return ObjectState::Corrupt,
            _ => {}
        }
        match stat_cache.hashes(&path) {
            Ok(hashes) if hashes.object == *hash => ObjectState::Sound,
            Ok(_) => ObjectState::Corrupt,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => ObjectState::Missing,
            Err(_) => ObjectState::Corrupt,
        }
    }

    /// The manifest for `key`: `Ok(None)` if none was committed.
    pub fn read_manifest(&self, key: &KeyHash) -> Result<Option<Manifest>, UnreadableManifest> {
        let path = self.manifest_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(_) => return Err(UnreadableManifest { path }),
        };
        match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(manifest) if &manifest.key == key => Ok(Some(manifest)),
            _ => Err(UnreadableManifest { path }),
        }
    }
}
