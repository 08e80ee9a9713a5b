//! The layout of the cache folder and read access to it.
//!
//! ```text
//! cache/
//!   lock                  OS lock held by `pipeline run` (never deleted, never stale)
//!   objects/ab/abcd...    content-addressed outputs, read-only, named by blake3
//!   manifests/KEY.json    one per cached stage result (see manifest.rs)
//!   tmp/                  private staging folders of running stages
//!   stat-cache.json       hashes of files by (size, mtime, inode)
//! ```
//!
//! Reading is safe at any time, even during a run: every file here appears by an atomic
//! rename. Writing is `publish.rs`'s job alone.

use std::path::{Path, PathBuf};

use crate::content_hash::ContentHash;
use crate::manifest::Manifest;
use crate::stage_key::KeyHash;

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
    /// The cache rooted at `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
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
