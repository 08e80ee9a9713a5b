//! The shared remote cache: stage results pushed to and pulled from object storage (S3 and
//! S3-compatible stores, or a folder), with the `object_store` crate.
//!
//! Layout under the remote prefix mirrors the local cache: `objects/ab/HASH` and
//! `manifests/KEY.json`. Objects are content-addressed and immutable: they are uploaded with
//! create-if-absent semantics (the first writer wins; a second finds the object and moves
//! on), and a manifest is uploaded only after all its objects. A download is verified
//! against its blake3 hash before `publish.rs` adopts it into the local cache; one that does
//! not match is discarded. Network failures are returned to the runner, which degrades to
//! computing locally (unless `--require-remote`).
//!
//! Who can write the bucket can choose the results every puller publishes. With `[cache]
//! trusted_keys`, a result counts only if `signatures/KEY/SIGNER.sig` holds a valid signature
//! by a listed key (`signing.rs`); pushers sign with `PIPELINE_SIGNING_KEY`. Whatever the
//! trust, a manifest's file names never become paths (the stage's declared outputs do), and
//! every byte is checked against its blake3 hash.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use serde::Serialize;

use stages::kind::OutputSpec;

use crate::cache::{Cache, ObjectState};
use crate::content_hash::ContentHash;
use crate::manifest::Manifest;
use crate::publish::{self, PublishError};
use crate::signing::{SigningIdentity, TrustedKey};
use crate::stage_key::KeyHash;
use crate::stat_cache::StatCache;

/// Objects at least this large are announced in the log while they transfer.
const ANNOUNCE_BYTES: u64 = 16 << 20;

/// What went wrong with the remote cache.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The remote URL cannot be used.
    #[error("remote `{url}`: {message}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        message: String,
    },
    /// A request to the store failed.
    #[error("remote {action} `{path}`: {source}")]
    Store {
        /// What was being done.
        action: &'static str,
        /// The remote path.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A downloaded object or manifest does not match what it should be.
    #[error("remote `{path}` is corrupt: {message}; discarded")]
    Corrupt {
        /// The remote path.
        path: String,
        /// What does not match.
        message: String,
    },
    /// Writing into the local cache failed.
    #[error(transparent)]
    Local(#[from] PublishError),
}

/// Transfer counts for the run summary.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Transfers {
    /// Objects downloaded.
    pub downloaded_objects: u64,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// Objects uploaded.
    pub uploaded_objects: u64,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
}

/// An opened remote cache.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    runtime: tokio::runtime::Runtime,
    url: String,
    /// Upload results computed here.
    pub push: bool,
    /// Fail instead of degrading to local computation.
    pub require: bool,
    trust: Trust,
    transfers: Mutex<Transfers>,
}

/// Whose results a remote is trusted with, and who this machine is (see `signing.rs`).
#[derive(Default)]
pub struct Trust {
    /// Accept only results signed by one of these; empty: accept every result.
    pub trusted: Vec<TrustedKey>,
    /// Sign what this machine pushes.
    pub signer: Option<SigningIdentity>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Remote({})", self.url)
    }
}

/// Checks that `url` names a supported store, without connecting.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    match parsed.scheme() {
        "s3" | "file" | "memory" => Ok(()),
        other => Err(format!(
            "unsupported scheme `{other}` (use s3://bucket/prefix or file:///path)"
        )),
    }
}

impl Remote {
    /// Opens the store at `url`: `s3://bucket/prefix` (credentials, region and a custom
    /// endpoint from the usual `AWS_*` environment), `file:///path` or `memory://` (tests).
    pub fn open(url: &str, push: bool, require: bool, trust: Trust) -> Result<Self, RemoteError> {
        let bad = |message: String| RemoteError::Url {
            url: url.to_owned(),
            message,
        };
        check_url(url).map_err(bad)?;
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let (store, prefix): (Arc<dyn ObjectStore>, StorePath) = match parsed.scheme() {
            "s3" => {
                let retry = RetryConfig {
                    max_retries: 2,
                    retry_timeout: Duration::from_secs(10),
                    ..RetryConfig::default()
                };
                let client = ClientOptions::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_connect_timeout(Duration::from_secs(5));
                let mut builder = AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .with_client_options(client);
                if std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .is_ok_and(|e| e.starts_with("http://"))
                {
                    builder = builder.with_allow_http(true);
                }
                let store = builder.build().map_err(|e| bad(e.to_string()))?;
                (
                    Arc::new(store),
                    StorePath::from(parsed.path().trim_matches('/')),
                )
            }
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad("not a local path".into()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| bad(format!("cannot create the folder: {e}")))?;
                let store =
                    LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), StorePath::default())
            }
            _ => (Arc::new(InMemory::new()), StorePath::default()),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the I/O runtime: {e}")))?;
        Ok(Self {
            store,
            prefix,
            runtime,
            url: url.to_owned(),
            push,
            require,
            trust,
            transfers: Mutex::new(Transfers::default()),
        })
    }

    /// The URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Transfer counts so far.
    pub fn transfers(&self) -> Transfers {
        self.transfers.lock().map(|t| *t).unwrap_or_default()
    }

    fn path(&self, rel: &str) -> StorePath {
        if self.prefix.as_ref().is_empty() {
            StorePath::from(rel)
        } else {
            StorePath::from(format!("{}/{rel}", self.prefix.as_ref()))
        }
    }

    fn manifest_path(&self, key: &KeyHash) -> StorePath {
        self.path(&format!("manifests/{}.json", key.0))
    }

    fn signature_path(&self, key: &KeyHash, signer: &TrustedKey) -> StorePath {
        self.path(&format!("signatures/{}/{}.sig", key.0, signer.id()))
    }

    /// Whether a trusted key signed `manifest` (always, when no keys are listed).
    fn is_trusted(&self, manifest: &Manifest) -> Result<bool, RemoteError> {
        if self.trust.trusted.is_empty() {
            return Ok(true);
        }
        for key in &self.trust.trusted {
            if let Some(signature) = self.get(&self.signature_path(&manifest.key, key))? {
                if key.verifies(manifest, &signature) {
                    return Ok(true);
                }
                tracing::warn!(
                    "remote signature by {key} of {} does not verify",
                    manifest.key.short()
                );
            }
        }
        Ok(false)
    }

    fn object_path(&self, hash: &ContentHash) -> StorePath {
        let hex = hash.to_hex();
        self.path(&format!("objects/{}/{hex}", &hex[..2]))
    }

    fn get(&self, path: &StorePath) -> Result<Option<Vec<u8>>, RemoteError> {
        let result = self.runtime.block_on(async {
            match self.store.get(path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        result
            .map(|b| b.map(|b| b.to_vec()))
            .map_err(|source| RemoteError::Store {
                action: "download",
                path: path.to_string(),
                source,
            })
    }

    fn put_if_absent(&self, path: &StorePath, bytes: Vec<u8>) -> Result<bool, RemoteError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let result =
            self.runtime
                .block_on(self.store.put_opts(path, PutPayload::from(bytes), options));
        match result {
            Ok(_) => Ok(true),
            // Content-addressed: whoever wrote it first wrote the same bytes.
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(source) => Err(RemoteError::Store {
                action: "upload",
                path: path.to_string(),
                source,
            }),
        }
    }

    fn exists(&self, path: &StorePath) -> Result<bool, RemoteError> {
        match self.runtime.block_on(self.store.head(path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(RemoteError::Store {
                action: "look up",
                path: path.to_string(),
                source,
            }),
        }
    }

    /// Downloads the result for `key` into the local cache; `Ok(None)` if the remote has none.
    /// The manifest must describe exactly the `declared` outputs (its file names never become
    /// paths), and every object is verified against its hash before it is adopted.
    pub fn fetch(
        &self,
        cache: &Cache,
        key: &KeyHash,
        declared: &[OutputSpec],
        stat_cache: &StatCache,
    ) -> Result<Option<Manifest>, RemoteError> {
        let manifest_path = self.manifest_path(key);
        let Some(bytes) = self.get(&manifest_path)? else {
            return Ok(None);
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| RemoteError::Corrupt {
                path: manifest_path.to_string(),
                message: e.to_string(),
            })?;
        if &manifest.key != key || manifest.components.hash() != *key {
            return Err(RemoteError::Corrupt {
                path: manifest_path.to_string(),
                message: "its key does not match its components".into(),
            });
        }
        if !manifest.matches(declared) {
            return Err(RemoteError::Corrupt {
                path: manifest_path.to_string(),
                message: "its outputs are not the ones the stage declares".into(),
            });
        }
        if !self.is_trusted(&manifest)? {
            tracing::warn!(
                "{}: the remote result {} is not signed by a trusted key; ignored (computing locally)",
                manifest.components.stage,
                manifest.key.short()
            );
            return Ok(None);
        }
        for record in manifest.outputs.values() {
            if cache.check_object(&record.object, stat_cache) == ObjectState::Sound {
                continue;
            }
            let path = self.object_path(&record.object);
            if record.size >= ANNOUNCE_BYTES {
                tracing::info!(
                    "downloading {} ({:.0} MB) from {}",
                    record.file,
                    record.size as f64 / 1e6,
                    self.url
                );
            }
            let Some(data) = self.get(&path)? else {
                return Err(RemoteError::Corrupt {
                    path: path.to_string(),
                    message: "the manifest names an object the remote does not have".into(),
                });
            };
            if ContentHash::of(&data) != record.object {
                return Err(RemoteError::Corrupt {
                    path: path.to_string(),
                    message: "its content does not match its hash".into(),
                });
            }
            let len = data.len() as u64;
            publish::adopt_object(cache, &record.object, &data, stat_cache)?;
            if let Ok(mut t) = self.transfers.lock() {
                t.downloaded_objects += 1;
                t.downloaded_bytes += len;
            }
        }
        publish::write_manifest(cache, &manifest)?;
        if let Ok(mut t) = self.transfers.lock() {
            t.downloaded_bytes += bytes.len() as u64;
        }
        Ok(Some(manifest))
    }

    /// Uploads a cached result: its objects first, then its manifest.
    pub fn upload(&self, cache: &Cache, manifest: &Manifest) -> Result<(), RemoteError> {
        for record in manifest.outputs.values() {
            let path = self.object_path(&record.object);
            if self.exists(&path)? {
                continue;
            }
            let local = cache.object_path(&record.object);
            let data = std::fs::read(&local).map_err(|source| PublishError::Io {
                action: "read",
                path: local.clone(),
                source,
            })?;
            // Never push bytes that do not match their name.
            if ContentHash::of(&data) != record.object {
                return Err(PublishError::CorruptObject { path: local }.into());
            }
            if record.size >= ANNOUNCE_BYTES {
                tracing::info!(
                    "uploading {} ({:.0} MB) to {}",
                    record.file,
                    record.size as f64 / 1e6,
                    self.url
                );
            }
            let len = data.len() as u64;
            if self.put_if_absent(&path, data)? {
                if let Ok(mut t) = self.transfers.lock() {
                    t.uploaded_objects += 1;
                    t.uploaded_bytes += len;
                }
            }
        }
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| RemoteError::Corrupt {
            path: self.manifest_path(&manifest.key).to_string(),
            message: format!("cannot encode the manifest: {e}"),
        })?;
        if let Some(signer) = &self.trust.signer {
            // Before the manifest, so whoever sees the manifest can see its signature.
            let signature = signer.sign(manifest).into_bytes();
            let path = self.signature_path(&manifest.key, &signer.public());
            self.put_if_absent(&path, signature)?;
        }
        let len = bytes.len() as u64;
        if self.put_if_absent(&self.manifest_path(&manifest.key), bytes)? {
            if let Ok(mut t) = self.transfers.lock() {
                t.uploaded_bytes += len;
            }
        }
        Ok(())
    }

    /// Makes sure the remote holds the file at `path` as the object `hash` (a cluster job's
    /// input); uploads it when it does not.
    pub fn put_object(
        &self,
        path: &std::path::Path,
        hash: &ContentHash,
    ) -> Result<(), RemoteError> {
        let remote_path = self.object_path(hash);
        if self.exists(&remote_path)? {
            return Ok(());
        }
        let data = std::fs::read(path).map_err(|source| PublishError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        if ContentHash::of(&data) != *hash {
            return Err(PublishError::CorruptObject {
                path: path.to_owned(),
            }
            .into());
        }
        let len = data.len() as u64;
        if self.put_if_absent(&remote_path, data)? {
            if let Ok(mut t) = self.transfers.lock() {
                t.uploaded_objects += 1;
                t.uploaded_bytes += len;
            }
        }
        Ok(())
    }

    /// Downloads the object `hash` into `cache` unless it is there already, verified.
    pub fn fetch_object(
        &self,
        cache: &Cache,
        hash: &ContentHash,
        stat_cache: &StatCache,
    ) -> Result<(), RemoteError> {
        if cache.check_object(hash, stat_cache) == ObjectState::Sound {
            return Ok(());
        }
        let path = self.object_path(hash);
        let Some(data) = self.get(&path)? else {
            return Err(RemoteError::Corrupt {
                path: path.to_string(),
                message: "the object is not in the remote cache".into(),
            });
        };
        if ContentHash::of(&data) != *hash {
            return Err(RemoteError::Corrupt {
                path: path.to_string(),
                message: "its content does not match its hash".into(),
            });
        }
        let len = data.len() as u64;
        publish::adopt_object(cache, hash, &data, stat_cache)?;
        if let Ok(mut t) = self.transfers.lock() {
            t.downloaded_objects += 1;
            t.downloaded_bytes += len;
        }
        Ok(())
    }

    /// Whether the remote holds a manifest for `key` (an error counts as no).
    pub fn has_manifest(&self, key: &KeyHash) -> bool {
        self.exists(&self.manifest_path(key)).unwrap_or(false)
    }
}
