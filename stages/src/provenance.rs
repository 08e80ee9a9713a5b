//! The `pipeline.*` key-value metadata every Parquet artifact carries: what stage, kind, key,
//! parameters, inputs and code made it. The engine writes these keys; `evaluate`, `report`
//! and `inspect` read them; the content hash leaves them out (early cutoff). One set of names
//! for all of them.

/// The prefix every provenance key starts with.
pub const PREFIX: &str = "pipeline.";
/// The stage's name.
pub const STAGE: &str = "pipeline.stage";
/// The stage kind.
pub const KIND: &str = "pipeline.kind";
/// The full cache key.
pub const KEY: &str = "pipeline.key";
/// The parameters as canonical JSON.
pub const PARAMS: &str = "pipeline.params";
/// The inputs (name and content hash) as JSON.
pub const INPUTS: &str = "pipeline.inputs";
/// The kind's code version.
pub const CODE_VERSION: &str = "pipeline.code_version";
/// The version of the pipeline that wrote the artifact.
pub const VERSION: &str = "pipeline.version";
