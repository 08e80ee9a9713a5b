//! Content hashes of files: blake3 over the bytes, parallel for large files.
//!
//! A Parquet artifact has two hashes. Its *object* hash covers every byte and addresses it
//! in the cache. Its *content* hash leaves out the `pipeline.*` provenance metadata in the
//! footer, so that a stage that reruns (its key, and so its provenance, changed) and writes
//! the same data gives the same content hash, and its dependents do not rerun (early
//! cutoff). Every other file's content hash is its object hash.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter,
};

/// Files at least this large are memory-mapped and hashed on every core.
const PARALLEL_THRESHOLD: u64 = 16 << 20;

/// A blake3 hash of some bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The full lowercase hex form.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_owned()
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.short())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for ContentHash {
    type Err = blake3::HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(*blake3::Hash::from_hex(s)?.as_bytes()))
    }
}

impl serde::Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The two hashes of a file (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileHashes {
    /// Over every byte.
    pub object: ContentHash,
    /// Over the data, without `pipeline.*` provenance.
    pub content: ContentHash,
}

/// blake3 of the whole file.
pub fn hash_file(path: &Path) -> io::Result<ContentHash> {
    let len = std::fs::metadata(path)?.len();
    let mut hasher = blake3::Hasher::new();
    if len >= PARALLEL_THRESHOLD {
        hasher.update_mmap_rayon(path)?;
    } else {
        let mut file = File::open(path)?;
        let mut buf = Vec::with_capacity(len as usize);
        file.read_to_end(&mut buf)?;
        hasher.update(&buf);
    }
    Ok(ContentHash(*hasher.finalize().as_bytes()))
}

/// Both hashes of the file at `path`.
pub fn hash_artifact(path: &Path) -> io::Result<FileHashes> {
    let object = hash_file(path)?;
    let content = if is_parquet(path)? {
        parquet_content_hash(path)?
    } else {
        object
    };
    Ok(FileHashes { object, content })
}

fn is_parquet(path: &Path) -> io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len < 12 {
        return Ok(false);
    }
    let mut head = [0u8; 4];
    file.read_exact(&mut head)?;
    let mut tail = [0u8; 4];
    file.seek(SeekFrom::End(-4))?;
    file.read_exact(&mut tail)?;
    Ok(&head == b"PAR1" && &tail == b"PAR1")
}

fn parquet_content_hash(path: &Path) -> io::Result<ContentHash> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(io::Error::other)?;
    let footer = without_provenance(&metadata)?;
    let mut tail = [0u8; 8];
    {
        use std::io::{Seek, SeekFrom};
        let mut f = &file;
        f.seek(SeekFrom::End(-8))?;
        f.read_exact(&mut tail)?;
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    let data_end = len.saturating_sub(footer_len + 8);
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"pipeline parquet content v1\0");
    {
        use std::io::{Seek, SeekFrom};
        let mut f = &file;
        f.seek(SeekFrom::Start(0))?;
        hasher.update_reader(f.take(data_end))?;
    }
    hasher.update(&footer);
    Ok(ContentHash(*hasher.finalize().as_bytes()))
}

fn without_provenance(metadata: &ParquetMetaData) -> io::Result<Vec<u8>> {
    let file_meta = metadata.file_metadata();
    let kv: Option<Vec<KeyValue>> = file_meta.key_value_metadata().map(|entries| {
        entries
            .iter()
            .filter(|kv| !kv.key.starts_with("pipeline."))
            .cloned()
            .collect()
    });
    let stripped = FileMetaData::new(
        file_meta.version(),
        file_meta.num_rows(),
        file_meta.created_by().map(str::to_owned),
        kv,
        file_meta.schema_descr_ptr(),
        file_meta.column_orders().cloned(),
    );
    let rebuilt = ParquetMetaData::new(stripped, metadata.row_groups().to_vec());
    let mut bytes = Vec::new();
    ParquetMetaDataWriter::new(&mut bytes, &rebuilt)
        .finish()
        .map_err(io::Error::other)?;
    Ok(bytes)
}
