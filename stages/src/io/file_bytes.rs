//! A whole file's bytes, read into memory when small and memory-mapped when large: a map lets
//! the kernel serve the page cache directly, instead of zeroing as many fresh pages and
//! copying the file into them (a third of ingest's system time on `features.csv`).

use std::fs::File;
use std::io::{self, Read};

/// Files at least this large are memory-mapped.
pub const MAP_THRESHOLD: u64 = 16 << 20;

/// The bytes of a file, owned or mapped.
pub enum FileBytes {
    /// Read into memory.
    Read(Vec<u8>),
    /// Memory-mapped, read-only.
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Read(bytes) => bytes,
            Self::Mapped(map) => map,
        }
    }
}

impl FileBytes {
    /// Every byte of `file`, from its start.
    pub fn load(mut file: &File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        if len >= MAP_THRESHOLD {
            // SAFETY: the map is only ever read. A file truncated by another process meanwhile
            // would fault, as blake3's own `update_mmap_rayon` would; what is loaded here is a
            // stage's inputs and fresh outputs and the read-only cache objects, which nothing
            // edits during a run.
            return Ok(Self::Mapped(unsafe { memmap2::Mmap::map(file)? }));
        }
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut buf)?;
        Ok(Self::Read(buf))
    }
}
