//! The FMA metadata files: their exact layouts (`format`), one parser per file (`features`,
//! `tracks`, `genres`, sharing `text`), the split of each track read back from Parquet
//! (`splits`), and a generator that writes all three files (`synthetic`).

pub mod features;
pub mod format;
pub mod genres;
pub mod splits;
pub mod synthetic;
pub mod text;
pub mod tracks;
