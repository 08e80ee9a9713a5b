//! Content hashes of files: blake3 over the bytes, parallel for large files.
//!
//! A Parquet artifact has two hashes. Its *object* hash covers every byte and addresses it
//! in the cache. Its *content* hash leaves out the `pipeline.*` provenance metadata in the
//! footer, so that a stage that reruns (its key, and so its provenance, changed) and writes
//! the same data gives the same content hash, and its dependents do not rerun (early
//! cutoff). Every other file's content hash is its object hash.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::str::FromStr;

use stages::io::file_bytes::FileBytes;

use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter,
};

/// Files at least this large are hashed on every core (and memory-mapped, see
/// [`FileBytes`]).
const PARALLEL_THRESHOLD: u64 = stages::io::file_bytes::MAP_THRESHOLD;

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

fn load(path: &Path) -> io::Result<(File, FileBytes)> {
    let file = File::open(path)?;
    let bytes = FileBytes::load(&file)?;
    Ok((file, bytes))
}

/// Adds `bytes` to `hasher`, on every core when they are many.
fn update(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() as u64 >= PARALLEL_THRESHOLD {
        hasher.update_rayon(bytes);
    } else {
        hasher.update(bytes);
    }
}

/// blake3 of the whole file.
pub fn hash_file(path: &Path) -> io::Result<ContentHash> {
    let (_, bytes) = load(path)?;
    let mut hasher = blake3::Hasher::new();
    update(&mut hasher, &bytes);
    Ok(ContentHash(*hasher.finalize().as_bytes()))
}

/// Both hashes of the file at `path`, from one read (or map) of it. For Parquet the data
/// pages, nearly all of the file, are hashed once: the two hashes share that prefix, and
/// part only in what follows it.
pub fn hash_artifact(path: &Path) -> io::Result<FileHashes> {
    let (file, bytes) = load(path)?;
    // A file that only looks like Parquet (its footer does not parse) has no provenance to
    // leave out: its content is its bytes, and the stage that reads it says what is wrong.
    if is_parquet(&bytes) {
        if let Ok(hashes) = parquet_hashes(&file, &bytes) {
            return Ok(hashes);
        }
    }
    let mut hasher = blake3::Hasher::new();
    update(&mut hasher, &bytes);
    let object = ContentHash(*hasher.finalize().as_bytes());
    Ok(FileHashes {
        object,
        content: object,
    })
}

fn is_parquet(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1")
}

/// Marks a Parquet content hash: the data pages, the footer without provenance, then this.
const PARQUET_CONTENT_TAG: &[u8] = b"\0pipeline parquet content v2";

fn parquet_hashes(file: &File, bytes: &[u8]) -> io::Result<FileHashes> {
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(file)
        .map_err(io::Error::other)?;
    let footer = without_provenance(&metadata)?;
    let len = bytes.len();
    let tail = &bytes[len - 8..len - 4];
    let footer_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
    let data_end = len.saturating_sub(footer_len + 8);
    let mut data = blake3::Hasher::new();
    update(&mut data, &bytes[..data_end]);
    let mut content = data.clone();
    let mut object = data;
    object.update(&bytes[data_end..]);
    content.update(&footer);
    content.update(PARQUET_CONTENT_TAG);
    Ok(FileHashes {
        object: ContentHash(*object.finalize().as_bytes()),
        content: ContentHash(*content.finalize().as_bytes()),
    })
}

fn without_provenance(metadata: &ParquetMetaData) -> io::Result<Vec<u8>> {
    let file_meta = metadata.file_metadata();
    let kv: Option<Vec<KeyValue>> = file_meta.key_value_metadata().map(|entries| {
        entries
            .iter()
            .filter(|kv| !kv.key.starts_with(stages::provenance::PREFIX))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_read_files_hash_like_their_bytes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for len in [0usize, 1000, (PARALLEL_THRESHOLD as usize) + 12_345] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
            let path = dir.path().join(format!("{len}.bin"));
            std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
            let hashes = hash_artifact(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(hashes.object, ContentHash::of(&bytes), "{len} bytes");
            assert_eq!(hashes.content, hashes.object, "{len} bytes: not Parquet");
            assert_eq!(
                hash_file(&path).unwrap_or_else(|e| panic!("{e}")),
                hashes.object
            );
        }
    }

    #[test]
    fn a_parquet_object_hash_covers_every_byte_and_its_content_hash_no_provenance() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, values: Vec<f64>, key: &str| {
            let path = dir.path().join(name);
            let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
                "x",
                arrow_schema::DataType::Float64,
                false,
            )]));
            let column: arrow_array::ArrayRef = Arc::new(arrow_array::Float64Array::from(values));
            stages::io::parquet::write_columns(
                &path,
                schema,
                vec![column],
                &[(format!("{}key", stages::provenance::PREFIX), key.to_owned())],
                false,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
            (
                hash_artifact(&path).unwrap_or_else(|e| panic!("{e}")),
                bytes,
            )
        };
        let (first, first_bytes) = write("a.parquet", vec![1.0, 2.0, 3.0], "one");
        let (rerun, _) = write("b.parquet", vec![1.0, 2.0, 3.0], "two");
        let (changed, _) = write("c.parquet", vec![1.0, 2.0, 4.0], "one");
        assert_eq!(first.object, ContentHash::of(&first_bytes));
        assert_ne!(first.object, rerun.object, "the provenance is in the file");
        assert_eq!(first.content, rerun.content, "and not in its content");
        assert_ne!(first.content, first.object);
        assert_ne!(first.content, changed.content);
    }
}
