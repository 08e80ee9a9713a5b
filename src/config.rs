//! The validated configuration: every stage with a known kind, parameters with defaults
//! filled in, and inputs resolved to upstream outputs or existing files.
//!
//! [`Config::load`] runs parse -> validate; nothing downstream ever sees a [`RawConfig`].
//! All independent mistakes are collected and reported together, sorted by line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use stages::kind::{InputInfo, OutputSpec, ParamError, StageKind};

use crate::config_error::{suggest, ConfigError, ConfigErrorKind, ConfigErrors};
use crate::dag::Dag;
use crate::executor::{ExecutorSettings, Resources};
use crate::raw_config::{RawConfig, RawStage};
use crate::registry::Registry;
use crate::span::Span;

/// A stage's name in `pipeline.toml`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct StageId(pub String);

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StageId {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where one input of a stage comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputRef {
    /// An output of another stage (`"pca:scores"`).
    Upstream {
        /// The upstream stage.
        stage: StageId,
        /// The output's name.
        output: String,
    },
    /// A file in the project, outside the pipeline.
    File {
        /// As written, relative to `pipeline.toml`.
        display: String,
        /// Resolved against the folder holding `pipeline.toml`.
        path: PathBuf,
    },
}

impl fmt::Display for InputRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputRef::Upstream { stage, output } => write!(f, "{stage}:{output}"),
            InputRef::File { display, .. } => f.write_str(display),
        }
    }
}

/// One validated stage.
#[derive(Clone)]
pub struct StageConfig {
    /// Its name.
    pub id: StageId,
    /// Its kind.
    pub kind: Arc<dyn StageKind>,
    /// Parameters with every default filled in.
    pub params: Value,
    /// Inputs in declaration order.
    pub inputs: Vec<InputRef>,
    /// Outputs the stage writes into its folder.
    pub outputs: Vec<OutputSpec>,
    /// For source kinds that stand for files outside the project: output name -> file.
    pub external_outputs: Option<Vec<(String, PathBuf)>>,
    /// Files whose content is part of the key besides the inputs (a command's scripts), as
    /// written and as a path.
    pub code: Vec<(String, PathBuf)>,
    /// Environment variables whose values are part of the key.
    pub env: Vec<String>,
    /// What its cluster job asks for (`[stages.NAME.resources]`); not part of the key.
    pub resources: Resources,
}

impl StageConfig {
    /// The upstream stages this stage reads from, in input order, without repeats.
    pub fn upstream(&self) -> Vec<&StageId> {
        let mut seen = Vec::new();
        for input in &self.inputs {
            if let InputRef::Upstream { stage, .. } = input {
                if !seen.contains(&stage) {
                    seen.push(stage);
                }
            }
        }
        seen
    }

    /// The names of the outputs downstream stages may refer to.
    pub fn output_names(&self) -> Vec<String> {
        match &self.external_outputs {
            Some(external) => external.iter().map(|(name, _)| name.clone()).collect(),
            None => self.outputs.iter().map(|o| o.name.clone()).collect(),
        }
    }
}

/// The validated pipeline.
#[derive(Clone)]
pub struct Config {
    /// The configuration file.
    pub file: PathBuf,
    /// The folder holding it; relative paths are resolved against it.
    pub root: PathBuf,
    /// The cache folder.
    pub cache_dir: PathBuf,
    /// The folder results are published to.
    pub outputs_dir: PathBuf,
    /// The remote cache URL from `[cache] remote`, if any.
    pub remote: Option<String>,
    /// `[cache] push`: upload results computed here.
    pub push: bool,
    /// `[cache] trusted_keys`: whose signed results the remote may serve.
    pub trusted_keys: Vec<crate::signing::TrustedKey>,
    /// `[executor]`: where stages run.
    pub executor: ExecutorSettings,
    /// Stages in declaration order.
    pub stages: Vec<StageConfig>,
    /// The stage graph.
    pub dag: Dag,
}

impl Config {
    /// Reads and validates the configuration at `file`.
    pub fn load(file: &Path, registry: &Registry) -> Result<Self, ConfigErrors> {
        Self::load_with(file, &[], registry)
    }

    /// Reads the configuration at `file`, applies `overrides` (`STAGE.KEY=VALUE`, as `--set`
    /// takes them) and validates the result.
    pub fn load_with(
        file: &Path,
        overrides: &[String],
        registry: &Registry,
    ) -> Result<Self, ConfigErrors> {
        let source: Arc<str> = match std::fs::read_to_string(file) {
            Ok(text) => text.into(),
            Err(err) => {
                return Err(ConfigErrors(vec![ConfigError {
                    file: file.to_owned(),
                    source: "".into(),
                    span: None,
                    overrides_start: 0,
                    kind: ConfigErrorKind::Unreadable {
                        message: format!("{}: {err}", file.display()),
                    },
                }]))
            }
        };
        Self::from_source_with(file, &source, overrides, registry)
    }

    /// Validates configuration text as if read from `file`.
    pub fn from_source(
        file: &Path,
        source: Arc<str>,
        registry: &Registry,
    ) -> Result<Self, ConfigErrors> {
        Self::from_source_with(file, &source, &[], registry)
    }

    fn from_source_with(
        file: &Path,
        file_text: &str,
        overrides: &[String],
        registry: &Registry,
    ) -> Result<Self, ConfigErrors> {
        let combined = crate::overrides::append(file_text, overrides);
        let source: Arc<str> = combined.source.into();
        let mut errors = Errors {
            file: file.to_owned(),
            source: source.clone(),
            overrides_start: combined.start,
            list: Vec::new(),
        };
        let mut raw = match RawConfig::parse(file_text) {
            Ok(raw) => raw,
            Err((message, span)) => {
                errors.push(span.map(Span::new), ConfigErrorKind::Syntax { message });
                return Err(errors.finish());
            }
        };
        crate::overrides::apply(&mut raw, &source, combined.start, &mut |span, kind| {
            errors.push(span, kind);
        });
        let root = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);

        let (cache_dir, outputs_dir) = match &raw.cache {
            Some(cache) => (
                cache
                    .get_ref()
                    .dir
                    .as_ref()
                    .map(|d| under_root(&root, d.get_ref())),
                cache
                    .get_ref()
                    .outputs
                    .as_ref()
                    .map(|d| under_root(&root, d.get_ref())),
            ),
            None => (None, None),
        };
        let mut trusted_keys = Vec::new();
        for text in raw
            .cache
            .iter()
            .flat_map(|c| c.get_ref().trusted_keys.iter().flatten())
        {
            match crate::signing::TrustedKey::parse(text.get_ref()) {
                Ok(key) => trusted_keys.push(key),
                Err(err) => errors.push(
                    Some(Span::new(text.span())),
                    ConfigErrorKind::InvalidCache {
                        message: err.to_string(),
                    },
                ),
            }
        }
        for (name, dir) in [("dir", &cache_dir), ("outputs", &outputs_dir)] {
            let span = raw.cache.as_ref().and_then(|c| {
                let c = c.get_ref();
                if name == "dir" {
                    c.dir.as_ref()
                } else {
                    c.outputs.as_ref()
                }
                .map(toml::Spanned::span)
            });
            if let Some(dir) = dir.as_ref().filter(|d| d.exists() && !d.is_dir()) {
                errors.push(
                    span.map(Span::new),
                    ConfigErrorKind::InvalidCache {
                        message: format!(
                            "{name}: `{}` exists and is not a folder",
                            dir.strip_prefix(&root).unwrap_or(dir).display()
                        ),
                    },
                );
            }
        }
        let (remote, push) = match &raw.cache {
            Some(cache) => {
                let cache = cache.get_ref();
                if let Some(url) = &cache.remote {
                    if let Err(message) = crate::remote::check_url(url.get_ref()) {
                        errors.push(
                            Some(Span::new(url.span())),
                            ConfigErrorKind::InvalidCache {
                                message: format!("remote: {message}"),
                            },
                        );
                    }
                }
                (
                    cache.remote.as_ref().map(|u| u.get_ref().clone()),
                    cache.push.unwrap_or(false),
                )
            }
            None => (None, false),
        };
        let mut executor = ExecutorSettings::default();
        for (key, value) in raw.executor.iter().flat_map(|t| t.get_ref().iter()) {
            if let Err(message) = executor.set(key.get_ref(), value.get_ref(), &root) {
                errors.push(
                    Some(Span::new(value.span())),
                    ConfigErrorKind::InvalidExecutor {
                        key: key.get_ref().clone(),
                        message,
                    },
                );
            }
        }
        if raw.stages.is_empty() {
            errors.push(None, ConfigErrorKind::NoStages);
            return Err(errors.finish());
        }

        let mut declared: Vec<_> = raw.stages.iter().collect();
        declared.sort_by_key(|(name, _)| name.span().start);
        let names: Vec<&str> = declared.iter().map(|(n, _)| n.get_ref().as_str()).collect();

        let mut parsed = Vec::new();
        let mut raw_inputs = Vec::new();
        for (name, table) in &declared {
            let stage = name.get_ref().clone();
            if !is_valid_stage_name(&stage) {
                errors.push(
                    Some(Span::new(name.span())),
                    ConfigErrorKind::InvalidStageName {
                        stage: stage.clone(),
                    },
                );
                continue;
            }
            if let Some((stage_config, inputs)) = parse_stage(
                &stage,
                name.span(),
                table.get_ref(),
                &root,
                registry,
                &mut errors,
            ) {
                parsed.push(stage_config);
                raw_inputs.push(inputs);
            }
        }

        // Resolve inputs now that every stage's outputs are known.
        let outputs_of: BTreeMap<String, Vec<String>> = parsed
            .iter()
            .map(|s: &StageConfig| (s.id.0.clone(), s.output_names()))
            .collect();
        for (stage, inputs) in parsed.iter_mut().zip(raw_inputs) {
            let mut resolved = Vec::new();
            let mut unresolved = false;
            for (text, span) in &inputs {
                match resolve_input(&stage.id.0, text, &root, &names, &outputs_of) {
                    Ok(input) => resolved.extend(input),
                    Err(kind) => {
                        unresolved = true;
                        errors.push(Some(Span::new(span.clone())), kind);
                    }
                }
            }
            let spec = match stage.kind.inputs(&stage.params) {
                Ok(spec) => spec,
                Err(err) => {
                    errors.push(
                        None,
                        ConfigErrorKind::InvalidParam {
                            stage: stage.id.0.clone(),
                            key: String::new(),
                            message: format!("{err:?}"),
                        },
                    );
                    continue;
                }
            };
            if !unresolved && !spec.accepts(resolved.len()) {
                let span = inputs.first().map(|(_, s)| s.clone());
                let mut expected = spec.slots.join(", ");
                if spec.variadic {
                    expected.push_str(", ...");
                }
                errors.push(
                    span.map(Span::new),
                    ConfigErrorKind::InputCount {
                        stage: stage.id.0.clone(),
                        kind: stage.kind.name().to_owned(),
                        expected,
                        got: resolved.len(),
                    },
                );
            }
            stage.inputs = resolved;
        }

        // Checks a kind makes against its inputs before any work (a command's placeholders, a
        // query's tables and columns), with whatever input files exist already.
        let outputs_root = outputs_dir
            .clone()
            .unwrap_or_else(|| under_root(&root, "outputs"));
        for stage in &parsed {
            let infos: Vec<InputInfo> = stage
                .inputs
                .iter()
                .map(|input| match input {
                    InputRef::File { display, path } => InputInfo {
                        name: display.clone(),
                        path: Some(path.clone()),
                    },
                    InputRef::Upstream { stage: up, output } => {
                        let upstream = parsed.iter().find(|s| &s.id == up);
                        let path = upstream.and_then(|u| match &u.external_outputs {
                            Some(files) => files
                                .iter()
                                .find(|(name, _)| name == output)
                                .map(|(_, p)| p.clone()),
                            None => u
                                .outputs
                                .iter()
                                .find(|o| &o.name == output)
                                .map(|o| outputs_root.join(up.as_str()).join(&o.file)),
                        });
                        InputInfo {
                            name: input.to_string(),
                            path: path.filter(|p| p.is_file()),
                        }
                    }
                })
                .collect();
            if let Err(err) = stage.kind.check(&stage.params, &infos) {
                let table = declared
                    .iter()
                    .find(|(n, _)| n.get_ref() == stage.id.as_str())
                    .map(|(n, t)| (n.span(), t.get_ref()));
                let (key, message) = match err {
                    ParamError::Invalid { key, message } => (key, message),
                    ParamError::Missing { key } => (key, "is required".into()),
                    ParamError::Unknown { key, .. } => (key, "is not a parameter".into()),
                };
                let span = table.map(|(header, t)| {
                    t.iter()
                        .find(|(k, _)| k.get_ref() == &key)
                        .map_or(header, |(_, v)| v.span())
                });
                errors.push(
                    span.map(Span::new),
                    ConfigErrorKind::InvalidParam {
                        stage: stage.id.0.clone(),
                        key,
                        message,
                    },
                );
            }
        }

        let dag = match Dag::build(&parsed) {
            Ok(dag) => dag,
            Err(path) => {
                let span = declared
                    .iter()
                    .find(|(n, _)| n.get_ref() == &path[0])
                    .map(|(n, _)| Span::new(n.span()));
                errors.push(span, ConfigErrorKind::Cycle { path });
                return Err(errors.finish());
            }
        };
        if !errors.list.is_empty() {
            return Err(errors.finish());
        }
        Ok(Config {
            file: file.to_owned(),
            cache_dir: cache_dir.unwrap_or_else(|| under_root(&root, "cache")),
            outputs_dir: outputs_dir.unwrap_or_else(|| under_root(&root, "outputs")),
            remote,
            push,
            trusted_keys,
            root,
            executor,
            stages: parsed,
            dag,
        })
    }

    /// The stage called `id`.
    pub fn stage(&self, id: &str) -> Option<&StageConfig> {
        self.stages.iter().find(|s| s.id.0 == id)
    }

    /// Every stage name, in declaration order.
    pub fn stage_names(&self) -> impl Iterator<Item = &str> {
        self.stages.iter().map(|s| s.id.as_str())
    }

    /// `path` relative to the project root, for messages.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// Whether `name` is one path component that stays in its folder.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with(crate::publish::TMP_MARKER)
}

/// Why `path` cannot be read as an input file, if it cannot.
fn not_a_file(stage: &str, path: &Path, shown: &str) -> Option<ConfigErrorKind> {
    let what = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => return None,
        Ok(meta) if meta.is_dir() => "a folder",
        Ok(_) => "a special file",
        Err(_) => {
            return Some(ConfigErrorKind::MissingFile {
                stage: stage.to_owned(),
                path: shown.to_owned(),
            })
        }
    };
    Some(ConfigErrorKind::NotAFile {
        stage: stage.to_owned(),
        path: shown.to_owned(),
        what: what.to_owned(),
    })
}

/// `rel` under the project root, without a leading `./` when the root is the current folder,
/// so paths in messages read `outputs/pca/scores.parquet`.
fn under_root(root: &Path, rel: &str) -> PathBuf {
    if root == Path::new(".") {
        PathBuf::from(rel)
    } else {
        root.join(rel)
    }
}

struct Errors {
    file: PathBuf,
    source: Arc<str>,
    overrides_start: usize,
    list: Vec<ConfigError>,
}

impl Errors {
    fn push(&mut self, span: Option<Span>, kind: ConfigErrorKind) {
        self.list.push(ConfigError {
            file: self.file.clone(),
            source: self.source.clone(),
            span,
            overrides_start: self.overrides_start,
            kind,
        });
    }

    fn finish(mut self) -> ConfigErrors {
        self.list.sort_by_key(ConfigError::line);
        ConfigErrors(self.list)
    }
}

fn is_valid_stage_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

type RawInputs = Vec<(String, std::ops::Range<usize>)>;

fn parse_stage(
    stage: &str,
    header: std::ops::Range<usize>,
    table: &RawStage,
    root: &Path,
    registry: &Registry,
    errors: &mut Errors,
) -> Option<(StageConfig, RawInputs)> {
    let kind_value = table.iter().find(|(k, _)| k.get_ref() == "kind");
    let Some((_, kind_value)) = kind_value else {
        errors.push(
            Some(Span::new(header)),
            ConfigErrorKind::MissingKind {
                stage: stage.to_owned(),
            },
        );
        return None;
    };
    let Some(kind_name) = kind_value.get_ref().as_str() else {
        errors.push(
            Some(Span::new(kind_value.span())),
            ConfigErrorKind::InvalidParam {
                stage: stage.to_owned(),
                key: "kind".into(),
                message: "expected a string naming a stage kind".into(),
            },
        );
        return None;
    };
    let Some(kind) = registry.get(kind_name) else {
        errors.push(
            Some(Span::new(kind_value.span())),
            ConfigErrorKind::UnknownKind {
                stage: stage.to_owned(),
                kind: kind_name.to_owned(),
                suggestion: suggest(kind_name, registry.names()),
            },
        );
        return None;
    };

    let mut inputs = Vec::new();
    let mut params = Map::new();
    let mut spans = BTreeMap::new();
    let mut ok = true;
    let mut resources = Resources::default_for(kind_name);
    for (key, value) in table {
        match key.get_ref().as_str() {
            "kind" => {}
            "resources" => {
                let mut fail = |key: &str, message: String| {
                    errors.push(
                        Some(Span::new(value.span())),
                        ConfigErrorKind::InvalidResources {
                            stage: stage.to_owned(),
                            key: key.to_owned(),
                            message,
                        },
                    );
                };
                match value.get_ref().as_table() {
                    Some(table) => {
                        for (key, value) in table {
                            if let Err(message) = resources.set(key, value) {
                                fail(key, message);
                                ok = false;
                            }
                        }
                    }
                    None => {
                        fail("", "expected a table (`[stages.NAME.resources]`)".into());
                        ok = false;
                    }
                }
            }
            "inputs" => match value.get_ref().as_array() {
                Some(items) if items.iter().all(|i| i.is_str()) => {
                    // Items of a TOML array carry no spans of their own; point at the list.
                    for item in items {
                        let text = item.as_str().unwrap_or_default().to_owned();
                        inputs.push((text, value.span()));
                    }
                }
                _ => {
                    errors.push(
                        Some(Span::new(value.span())),
                        ConfigErrorKind::InputsNotList {
                            stage: stage.to_owned(),
                        },
                    );
                    ok = false;
                }
            },
            name => match toml_to_json(value.get_ref()) {
                Some(json) => {
                    params.insert(name.to_owned(), json);
                    spans.insert(name.to_owned(), (key.span(), value.span()));
                }
                None => {
                    errors.push(
                        Some(Span::new(value.span())),
                        ConfigErrorKind::InvalidParam {
                            stage: stage.to_owned(),
                            key: name.to_owned(),
                            message: "not a finite number".into(),
                        },
                    );
                    ok = false;
                }
            },
        }
    }
    let params = match kind.normalize_params(&params) {
        Ok(params) => params,
        Err(err) => {
            push_param_error(stage, &header, &spans, err, errors);
            return None;
        }
    };
    if !ok {
        return None;
    }
    let declared = kind.outputs(&params).and_then(|outputs| {
        // Joined onto the root as every project path is, so messages read `fma/x.csv`.
        let base = if root == Path::new(".") {
            Path::new("")
        } else {
            root
        };
        Ok((outputs, kind.external_outputs(&params, base)?))
    });
    let (outputs, external_outputs) = match declared {
        Ok(declared) => declared,
        Err(err) => {
            push_param_error(stage, &header, &spans, err, errors);
            return None;
        }
    };
    // An output's file becomes `outputs/STAGE/FILE`: it must stay in that folder.
    if let Some(bad) = outputs.iter().find(|o| !is_plain_file_name(&o.file)) {
        errors.push(
            Some(Span::new(header.clone())),
            ConfigErrorKind::InvalidParam {
                stage: stage.to_owned(),
                key: bad.name.clone(),
                message: format!(
                    "output file `{}` must be a plain file name (no folder, `..` or absolute path)",
                    bad.file
                ),
            },
        );
        return None;
    }
    if let Some(external) = &external_outputs {
        for (_, path) in external {
            let shown = path
                .strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string();
            if let Some(kind) = not_a_file(stage, path, &shown) {
                errors.push(Some(Span::new(header.clone())), kind);
            }
        }
    }
    let mut code = Vec::new();
    for file in kind.code_files(&params) {
        let path = under_root(root, &file);
        if let Some(problem) = not_a_file(stage, &path, &file) {
            let span = spans.get("code").map_or(header.clone(), |(_, v)| v.clone());
            errors.push(Some(Span::new(span)), problem);
        }
        code.push((file, path));
    }
    let env = kind.env_vars(&params);
    Some((
        StageConfig {
            id: StageId(stage.to_owned()),
            kind: kind.clone(),
            params,
            inputs: Vec::new(),
            outputs,
            external_outputs,
            code,
            env,
            resources,
        },
        inputs,
    ))
}

fn push_param_error(
    stage: &str,
    header: &std::ops::Range<usize>,
    spans: &BTreeMap<String, (std::ops::Range<usize>, std::ops::Range<usize>)>,
    err: ParamError,
    errors: &mut Errors,
) {
    let stage = stage.to_owned();
    match err {
        ParamError::Unknown { key, known } => {
            let span = spans.get(&key).map(|(k, _)| k.clone());
            let mut candidates: Vec<&str> = known.iter().map(String::as_str).collect();
            candidates.extend(["kind", "inputs", "resources"]);
            errors.push(
                span.map(Span::new),
                ConfigErrorKind::UnknownParam {
                    suggestion: suggest(&key, candidates),
                    stage,
                    key,
                },
            );
        }
        ParamError::Invalid { key, message } => {
            let span = spans.get(&key).map_or(header.clone(), |(_, v)| v.clone());
            errors.push(
                Some(Span::new(span)),
                ConfigErrorKind::InvalidParam {
                    stage,
                    key,
                    message,
                },
            );
        }
        ParamError::Missing { key } => errors.push(
            Some(Span::new(header.clone())),
            ConfigErrorKind::MissingParam { stage, key },
        ),
    }
}

/// Resolves one `inputs` entry; `STAGE:*` stands for every output of `STAGE`, in order.
fn resolve_input(
    stage: &str,
    text: &str,
    root: &Path,
    stages: &[&str],
    outputs_of: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<InputRef>, ConfigErrorKind> {
    if let Some((upstream, output)) = split_reference(text) {
        if upstream == stage {
            return Err(ConfigErrorKind::SelfDependency {
                stage: stage.to_owned(),
            });
        }
        if !stages.contains(&upstream) {
            return Err(ConfigErrorKind::UnknownStage {
                stage: stage.to_owned(),
                upstream: upstream.to_owned(),
                suggestion: suggest(upstream, stages.iter().copied()),
            });
        }
        if output == "*" {
            return Ok(outputs_of
                .get(upstream)
                .map(|all| {
                    all.iter()
                        .map(|o| InputRef::Upstream {
                            stage: StageId(upstream.to_owned()),
                            output: o.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default());
        }
        // A stage that failed its own validation has no known outputs; its error is
        // reported already, so do not pile a second one on its dependents.
        if let Some(available) = outputs_of.get(upstream) {
            if !available.iter().any(|o| o == output) {
                return Err(ConfigErrorKind::UnknownOutput {
                    stage: stage.to_owned(),
                    upstream: upstream.to_owned(),
                    output: output.to_owned(),
                    available: available.clone(),
                });
            }
        }
        return Ok(vec![InputRef::Upstream {
            stage: StageId(upstream.to_owned()),
            output: output.to_owned(),
        }]);
    }
    let path = under_root(root, text);
    if let Some(kind) = not_a_file(stage, &path, text) {
        return Err(kind);
    }
    Ok(vec![InputRef::File {
        display: text.to_owned(),
        path,
    }])
}

/// `"stage:output"` -> `("stage", "output")`; file paths (with `/` or `.`) are not references.
fn split_reference(text: &str) -> Option<(&str, &str)> {
    let (stage, output) = text.split_once(':')?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    (plain(stage) && (plain(output) || output == "*")).then_some((stage, output))
}

fn toml_to_json(value: &toml::Value) -> Option<Value> {
    Some(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::Number(serde_json::Number::from_f64(*f)?),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(toml_to_json).collect::<Option<_>>()?)
        }
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Some((k.clone(), toml_to_json(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::is_plain_file_name;

    #[test]
    fn only_plain_file_names_are_output_files() {
        for good in ["scores.parquet", "a..b", "figure.svg"] {
            assert!(is_plain_file_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            "a\\b",
            ".pipeline-tmp-x",
        ] {
            assert!(!is_plain_file_name(bad), "{bad}");
        }
    }
}
