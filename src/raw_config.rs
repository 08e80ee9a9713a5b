//! `pipeline.toml` as serde reads it, with the position of every key and value kept.
//!
//! Parsing checks only what the user wrote (TOML syntax, top-level keys); whether stages,
//! kinds, parameters and inputs make sense is `config.rs`'s job.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A value together with its byte range in the file.
pub(crate) type SpannedValue = Spanned<toml::Value>;

/// One `[stages.NAME]` table: `kind`, `inputs` and the kind's parameters, all spanned.
pub(crate) type RawStage = BTreeMap<Spanned<String>, SpannedValue>;

/// The whole file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// Where and how results are cached.
    #[serde(default)]
    pub cache: Option<Spanned<RawCache>>,
    /// Where stages run (`[executor]`), keys and values spanned.
    #[serde(default)]
    pub executor: Option<Spanned<RawStage>>,
    /// The stages, keyed by name.
    #[serde(default)]
    pub stages: BTreeMap<Spanned<String>, Spanned<RawStage>>,
}

/// The `[cache]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    /// The cache folder, relative to `pipeline.toml` (default `cache`).
    pub dir: Option<Spanned<String>>,
    /// The folder results are published to (default `outputs`).
    pub outputs: Option<Spanned<String>>,
    /// A shared remote cache: `s3://bucket/prefix` or `file:///path`.
    pub remote: Option<Spanned<String>>,
    /// Upload results computed here to the remote cache (default false: read-only).
    pub push: Option<bool>,
    /// Accept from the remote only results signed by one of these keys (`ed25519:HEX`).
    pub trusted_keys: Option<Vec<Spanned<String>>>,
}

impl RawConfig {
    /// Parses `source`, returning the parser's message and span on failure.
    pub(crate) fn parse(source: &str) -> Result<Self, (String, Option<std::ops::Range<usize>>)> {
        toml::from_str(source).map_err(|err| (err.message().to_owned(), err.span()))
    }
}
