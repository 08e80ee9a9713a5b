//! The exclusive OS lock that serialises `pipeline run` in one project.
//!
//! An OS file lock dies with its process, so a killed run never leaves a stale lock.
//! `status` takes no lock: it reads only committed files.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

/// Held for the whole of a run; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock at `path`, telling the user if another run holds it and waiting.
    pub(crate) fn acquire(path: &Path, display: &str) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                eprintln!("waiting for lock on {display} (held by another pipeline run)");
                file.lock()?;
            }
            Err(TryLockError::Error(err)) => return Err(err),
        }
        Ok(Self { _file: file })
    }
}
