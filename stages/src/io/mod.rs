//! File formats the kinds read and write: the FMA CSV files, Parquet artifacts, safetensors
//! weights, `metrics.json`, SVG charts, topic tables, and the provenance and metrics of
//! upstream stages. Nothing here decides what a stage computes.

pub mod chart;
pub mod file_bytes;
pub mod fma;
pub mod labelled;
pub mod metrics;
pub mod parquet;
pub mod safetensors;
pub mod stage_results;
pub mod table_columns;
pub mod topic_table;
