//! `--set STAGE.KEY=VALUE`: parameters given on the command line, applied to what serde read
//! from `pipeline.toml` before validation, so they are checked exactly as if written in the
//! file.
//!
//! The arguments are appended to the configuration text as extra lines (one per `--set`), and
//! every span of an override points into those lines: an error in an override is reported
//! with the same message as in the file, pointing at the `--set` argument instead of a line of
//! `pipeline.toml`.

use toml::Spanned;

use crate::config_error::{suggest, ConfigErrorKind};
use crate::raw_config::RawConfig;
use crate::span::Span;

/// The configuration text with the overrides appended, and where they start.
pub(crate) struct WithOverrides {
    /// The file's text, a newline, then one line per override.
    pub(crate) source: String,
    /// The byte offset of the first override line.
    pub(crate) start: usize,
}

/// Appends `overrides` to `file_text` (see the module docs).
pub(crate) fn append(file_text: &str, overrides: &[String]) -> WithOverrides {
    let mut source = file_text.to_owned();
    if !source.ends_with('\n') {
        source.push('\n');
    }
    let start = source.len();
    for text in overrides {
        // A newline inside an argument would start a second line; it cannot be a valid
        // override anyway, and is reported as such.
        source.push_str(&text.replace('\n', " "));
        source.push('\n');
    }
    WithOverrides { source, start }
}

/// Applies each override line of `source` (from `start`) to `raw`, reporting what cannot be
/// applied through `report`.
pub(crate) fn apply(
    raw: &mut RawConfig,
    source: &str,
    start: usize,
    report: &mut dyn FnMut(Option<Span>, ConfigErrorKind),
) {
    let mut offset = start;
    for line in source[start..].split_terminator('\n') {
        let here = offset;
        offset += line.len() + 1;
        let invalid = |message: String| ConfigErrorKind::InvalidOverride {
            text: line.to_owned(),
            message,
        };
        let Some((target, value_text)) = line.split_once('=') else {
            report(
                Some(Span::new(here..here + line.len())),
                invalid("expected STAGE.KEY=VALUE".into()),
            );
            continue;
        };
        let Some((stage, key)) = target
            .split_once('.')
            .filter(|(s, k)| !s.trim().is_empty() && !k.trim().is_empty())
        else {
            report(
                Some(Span::new(here..here + target.len())),
                invalid("expected STAGE.KEY before `=`".into()),
            );
            continue;
        };
        let (stage, key) = (stage.trim(), key.trim());
        let value_start = here + target.len() + 1;
        let value_span = value_start..value_start + value_text.len();
        let value = match toml::from_str::<toml::Table>(&format!("value = {value_text}")) {
            Ok(mut table) => table.remove("value"),
            Err(_) => None,
        };
        let Some(value) = value else {
            report(
                Some(Span::new(value_span)),
                invalid(format!(
                    "`{value_text}` is not a TOML value (quote text: {stage}.{key}=\"...\")"
                )),
            );
            continue;
        };
        let names: Vec<String> = raw.stages.keys().map(|k| k.get_ref().clone()).collect();
        let Some((_, table)) = raw
            .stages
            .iter_mut()
            .find(|(name, _)| name.get_ref() == stage)
        else {
            report(
                Some(Span::new(here..here + stage.len())),
                ConfigErrorKind::UnknownOverrideStage {
                    stage: stage.to_owned(),
                    suggestion: suggest(stage, names.iter().map(String::as_str)),
                },
            );
            continue;
        };
        let key_start = here + target.find(key).unwrap_or(0);
        let table = table.get_mut();
        table.retain(|k, _| k.get_ref() != key);
        table.insert(
            Spanned::new(key_start..key_start + key.len(), key.to_owned()),
            Spanned::new(value_span, value),
        );
    }
}
