//! `classifier` and `encoded_classifier`: multi-label genre classifiers (the original's
//! approaches 1 and 2).
//!
//! `classifier`: min-max features -> 512 relu -> dropout 0.2 -> 512 relu -> dropout ->
//! 256 relu -> dropout -> one sigmoid per genre (every size a parameter), Adam, binary
//! cross-entropy, batch 32, 20 epochs, 20% held out. `encoded_classifier`: the frozen encoder
//! of `autoencoder` -> 1024 relu -> dropout 0.2 -> sigmoid outputs, 10 epochs; the frozen
//! encoder has no dropout, so its codes are computed once and the head trains on them,
//! which is the same computation as running the frozen layers every step.
//! Both are scored on the held-out tracks by the threshold sweep of `nn_train.rs`.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::io::fma::splits::{fma_rows, read_splits, RowSets, Split};
pub use crate::io::labelled::{load, Dataset};
use crate::kind::{check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
use crate::nn::layers::{Dense, Mlp};
use crate::nn::training::{self, Training};

/// Parameters of `classifier` and `encoded_classifier`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierParams {
    /// Hidden layer sizes.
    pub hidden: Vec<usize>,
    /// Dropout after each hidden layer.
    pub dropout: f64,
    /// Passes over the training tracks.
    pub epochs: usize,
    /// Tracks per Adam step.
    pub batch: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// `random` (the original: `holdout` of the tracks held out, the threshold picked on
    /// them) or `fma` (train on `training`, pick the threshold on `validation`, score on
    /// `test`; needs the ingested tracks as a third input).
    pub split: Split,
    /// Share of tracks held out for evaluation (random split).
    pub holdout: f64,
    /// Seed of initialisation, split, shuffling and dropout.
    pub seed: u64,
}

impl Default for ClassifierParams {
    fn default() -> Self {
        Self {
            hidden: vec![512, 512, 256],
            dropout: 0.2,
            epochs: 20,
            batch: 32,
            learning_rate: 1e-3,
            split: Split::Random,
            holdout: 0.2,
            seed: 42,
        }
    }
}

impl ClassifierParams {
    fn encoded_default() -> Self {
        Self {
            hidden: vec![1024],
            epochs: 10,
            ..Self::default()
        }
    }
}

fn validate(p: &ClassifierParams) -> std::result::Result<(), ParamError> {
    check_range("dropout", p.dropout, 0.0, 0.95)?;
    check_range("epochs", p.epochs, 1, 100_000)?;
    check_range("batch", p.batch, 1, 1_000_000)?;
    check_range("learning_rate", p.learning_rate, 1e-9, 10.0)?;
    check_range("holdout", p.holdout, 0.01, 0.9)?;
    if p.hidden.contains(&0) {
        return Err(ParamError::Invalid {
            key: "hidden".into(),
            message: "layer sizes must be positive".into(),
        });
    }
    Ok(())
}

impl Params for ClassifierParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        validate(self)
    }
}

/// `encoded_classifier`'s parameters: the same fields, other defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncodedParams(pub ClassifierParams);

impl Default for EncodedParams {
    fn default() -> Self {
        Self(ClassifierParams::encoded_default())
    }
}

impl Params for EncodedParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        validate(&self.0)
    }
}

fn outputs() -> Vec<OutputSpec> {
    vec![
        OutputSpec::new("weights", "weights.safetensors"),
        OutputSpec::new("curves", "curves.parquet"),
        OutputSpec::new("thresholds", "thresholds.parquet"),
        OutputSpec::new("per_genre", "per_genre.parquet"),
        OutputSpec::new("metrics", "metrics.json"),
        OutputSpec::new("loss_figure", "loss.svg"),
        OutputSpec::new("threshold_figure", "thresholds.svg"),
        OutputSpec::new("per_genre_figure", "per_genre.svg"),
    ]
}

/// The rows a classifier trains on, watches its held-out loss on, tunes its threshold on and
/// is scored on. The random split tunes and scores on the same held-out tracks, as the
/// original did; the FMA split tunes on `validation` and scores on `test`.
/// `tracks` is given exactly when the split is `fma`.
fn row_sets(p: &ClassifierParams, data: &Dataset, tracks: Option<&Path>) -> Result<RowSets> {
    let sets = match tracks {
        Some(tracks) => fma_rows(&data.ids, &read_splits(tracks)?),
        None => {
            let (train, held) = training::split(data.ids.len(), p.holdout, p.seed ^ 0x5917);
            RowSets {
                train,
                validation: held.clone(),
                test: held,
            }
        }
    };
    sets.require(1, "tracks with features and labels")?;
    Ok(sets)
}

fn truth_of(data: &Dataset, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| {
            data.y[r * data.y_width..(r + 1) * data.y_width]
                .iter()
                .copied()
        })
        .collect()
}

fn fit_and_score(
    p: &ClassifierParams,
    io: &StageIo<'_>,
    data: &Dataset,
    frozen_front: Option<Mlp>,
    tracks: Option<&Path>,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let sets = row_sets(p, data, tracks)?;
    // With a frozen front, the head trains on its outputs (computed once).
    let (x, x_width) = match &frozen_front {
        Some(front) => {
            let mut front = front.clone();
            let all: Vec<usize> = (0..data.ids.len()).collect();
            let codes = training::outputs(&mut front, &data.x, data.x_width, &all);
            let width = front.layers.last().map_or(0, |l| l.n_out);
            (codes, width)
        }
        None => (data.x.clone(), data.x_width),
    };
    let mut sizes = vec![x_width];
    sizes.extend(&p.hidden);
    sizes.push(data.y_width);
    let mut head = Mlp::new(&sizes, p.dropout as f32, false, &mut rng);
    let training = Training::new(p.epochs, p.batch, p.learning_rate as f32, p.seed);
    let curves = training::train(
        &mut head,
        io,
        (&x, x_width, &data.y, data.y_width),
        (&sets.train, &sets.validation),
        training,
    )?;
    let chosen = match p.split {
        Split::Random => None,
        Split::Fma => {
            let outputs = training::predict(&mut head, &x, x_width, &sets.validation);
            let tuned = training::evaluate(
                &outputs,
                &truth_of(data, &sets.validation),
                data.y_width,
                None,
            );
            Some(tuned.best)
        }
    };
    let held = &sets.test;
    let outputs = training::predict(&mut head, &x, x_width, held);
    let truth = truth_of(data, held);
    let evaluation = training::evaluate(&outputs, &truth, data.y_width, chosen);
    // The saved network is the whole model: frozen front (if any) then the head.
    let mut whole = frozen_front.map(|f| f.layers).unwrap_or_default();
    for layer in &mut whole {
        layer.frozen = true;
    }
    whole.extend(head.layers.clone());
    let whole = Mlp::from_layers(whole);
    let architecture = training::architecture(&whole);
    training::save(
        &io.output("weights.safetensors"),
        &whole,
        "dense_",
        &architecture,
        io.provenance,
    )?;
    training::write_curves(io.out_dir, io.stage, &curves, io.provenance)?;
    training::write_evaluation(
        io.out_dir,
        io.stage,
        &data.labels,
        &evaluation,
        json!({
            "final_train_loss": curves.last().map(|c| c.0),
            "final_held_out_loss": curves.last().map(|c| c.1),
            "held_out_tracks": held.len(),
            "split": p.split,
            "training_tracks": sets.train.len(),
            "threshold_tuned_on": match p.split {
                Split::Random => "the held-out tracks (as the original)",
                Split::Fma => "the validation set",
            },
            "architecture": architecture,
        }),
        io.provenance,
    )
}

/// The direct classifier (approach 1).
pub struct Classifier;

impl Stage for Classifier {
    type Params = ClassifierParams;
    const KIND: &'static str = "classifier";
    const MODULE: &'static str = module_path!();

    fn inputs(params: &Self::Params) -> InputSpec {
        match params.split {
            Split::Random => InputSpec::fixed(&["features", "labels"]),
            Split::Fma => InputSpec::fixed(&["features", "labels", "tracks"]),
        }
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        outputs()
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let data = load(io.input(0, "features")?, io.input(1, "labels")?)?;
        let tracks = match params.split {
            Split::Random => None,
            Split::Fma => Some(io.input(2, "tracks")?),
        };
        fit_and_score(params, io, &data, None, tracks)
    }
}

/// The classifier on a frozen autoencoder's encoder (approach 2).
pub struct EncodedClassifier;

/// Loads the encoder layers saved by `autoencoder` (`encoder_0` ... with ReLU each), checking
/// that they chain: the first takes `input_width` features, each takes what the one before
/// gives, every weight is `[out, in]` and every bias `[out]`.
pub fn load_encoder(path: &Path, input_width: usize) -> Result<Mlp> {
    let (tensors, _) = crate::io::safetensors::read(path)?;
    let bad = |message: String| Error::BadFile {
        path: path.to_owned(),
        message,
    };
    let mut layers = Vec::new();
    let mut width = input_width;
    for i in 0.. {
        let (weight_name, bias_name) = (format!("encoder_{i}.weight"), format!("encoder_{i}.bias"));
        let (Some(w), Some(b)) = (tensors.get(&weight_name), tensors.get(&bias_name)) else {
            if tensors.contains_key(&weight_name) || tensors.contains_key(&bias_name) {
                return Err(bad(format!(
                    "encoder layer {i} needs both `{weight_name}` and `{bias_name}`"
                )));
            }
            break;
        };
        let [n_out, n_in] = w.shape[..] else {
            return Err(bad(format!(
                "`{weight_name}` has shape {:?}; expected [outputs, {width}]",
                w.shape
            )));
        };
        if n_in != width || n_out == 0 {
            return Err(bad(format!(
                "`{weight_name}` has shape [{n_out}, {n_in}]; expected [outputs, {width}] with at least one output ({})",
                if i == 0 {
                    "the features' width".to_owned()
                } else {
                    format!("the width of layer {}", i - 1)
                }
            )));
        }
        if b.shape != [n_out] {
            return Err(bad(format!(
                "`{bias_name}` has shape {:?}; expected [{n_out}]",
                b.shape
            )));
        }
        let mut weights = vec![0.0f32; n_in * n_out];
        for o in 0..n_out {
            for j in 0..n_in {
                weights[j * n_out + o] = w.data[o * n_in + j];
            }
        }
        layers.push(Dense::from_weights(
            n_in,
            n_out,
            weights,
            b.data.clone(),
            true,
            0.0,
        ));
        width = n_out;
    }
    if layers.is_empty() {
        return Err(bad(
            "no `encoder_0.weight` tensor: not an encoder saved by the autoencoder stage".into(),
        ));
    }
    Ok(Mlp::from_layers(layers))
}

impl Stage for EncodedClassifier {
    type Params = EncodedParams;
    const KIND: &'static str = "encoded_classifier";
    const MODULE: &'static str = module_path!();

    fn inputs(params: &Self::Params) -> InputSpec {
        match params.0.split {
            Split::Random => InputSpec::fixed(&["features", "labels", "encoder"]),
            Split::Fma => InputSpec::fixed(&["features", "labels", "encoder", "tracks"]),
        }
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        outputs()
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let data = load(io.input(0, "features")?, io.input(1, "labels")?)?;
        let encoder = load_encoder(io.input(2, "encoder")?, data.x_width)?;
        let tracks = match params.0.split {
            Split::Random => None,
            Split::Fma => Some(io.input(3, "tracks")?),
        };
        fit_and_score(&params.0, io, &data, Some(encoder), tracks)
    }
}

#[cfg(test)]
mod encoder_files {
    //! A bad encoder file is an error naming the tensor and what was expected, never a panic
    //! or an allocation the file cannot back.

    use super::*;

    /// Writes a safetensors file whose header is `header` (tensor name -> info) over `data`.
    fn raw(dir: &Path, header: serde_json::Value, data: &[u8]) -> std::path::PathBuf {
        let path = dir.join("encoder.safetensors");
        let mut text = header.to_string();
        while !(8 + text.len()).is_multiple_of(8) {
            text.push(' ');
        }
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(data);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    fn tensor(shape: serde_json::Value, begin: usize, end: usize) -> serde_json::Value {
        serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [begin, end]})
    }

    fn error(header: serde_json::Value, data_len: usize) -> String {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = raw(dir.path(), header, &vec![0u8; data_len]);
        match load_encoder(&path, 6) {
            Ok(_) => panic!("a bad encoder was accepted"),
            Err(err) => err
                .to_string()
                .replace(&format!("{}: ", path.display()), ""),
        }
    }

    #[test]
    fn every_bad_shape_is_named() {
        let bias = |n: usize, at: usize| tensor(serde_json::json!([n]), at, at + 4 * n);
        let cases = [
            (
                serde_json::json!({"encoder_0.weight": tensor(serde_json::json!([4]), 0, 16), "encoder_0.bias": bias(4, 16)}),
                32,
                "`encoder_0.weight` has shape [4]; expected [outputs, 6]",
            ),
            (
                serde_json::json!({"encoder_0.weight": tensor(serde_json::json!([5, 6]), 0, 96), "encoder_0.bias": bias(4, 96)}),
                112,
                "not a safetensors file: tensor `encoder_0.weight`: shape [5, 6] does not match its 96 bytes of data",
            ),
            (
                serde_json::json!({"encoder_0.weight": tensor(serde_json::json!([0, 6]), 0, 0), "encoder_0.bias": bias(0, 0)}),
                0,
                "`encoder_0.weight` has shape [0, 6]; expected [outputs, 6] with at least one output (the features' width)",
            ),
            (
                serde_json::json!({"encoder_0.weight": {"dtype": "F32", "data_offsets": [0, 96]}, "encoder_0.bias": bias(4, 96)}),
                112,
                "not a safetensors file: tensor `encoder_0.weight`: shape null is not a list of sizes",
            ),
            (
                serde_json::json!({"encoder_0.weight": tensor(serde_json::json!("4x6"), 0, 96), "encoder_0.bias": bias(4, 96)}),
                112,
                "not a safetensors file: tensor `encoder_0.weight`: shape \"4x6\" is not a list of sizes",
            ),
            (
                serde_json::json!({
                    "encoder_0.weight": tensor(serde_json::json!([4, 6]), 0, 96), "encoder_0.bias": bias(4, 96),
                    "encoder_1.weight": tensor(serde_json::json!([2, 3]), 112, 136), "encoder_1.bias": bias(2, 136),
                }),
                144,
                "`encoder_1.weight` has shape [2, 3]; expected [outputs, 4] with at least one output (the width of layer 0)",
            ),
            (
                serde_json::json!({"encoder_0.weight": tensor(serde_json::json!([1_099_511_627_776_u64, 6]), 0, 96), "encoder_0.bias": bias(4, 96)}),
                112,
                "not a safetensors file: tensor `encoder_0.weight`: shape [1099511627776, 6] does not match its 96 bytes of data",
            ),
            (
                serde_json::json!({"encoder_0.weight": tensor(serde_json::json!([4, 6]), 0, 96), "encoder_0.bias": tensor(serde_json::json!([3]), 96, 108)}),
                112,
                "`encoder_0.bias` has shape [3]; expected [4]",
            ),
            (
                serde_json::json!({"encoder_0.weight": tensor(serde_json::json!([4, 6]), 0, 96)}),
                96,
                "encoder layer 0 needs both `encoder_0.weight` and `encoder_0.bias`",
            ),
            (
                serde_json::json!({"encoder_0.weight": tensor(serde_json::json!([4, 6]), 0, 960), "encoder_0.bias": bias(4, 96)}),
                112,
                "not a safetensors file: tensor `encoder_0.weight`: data_offsets [0,960] do not lie within the 112 bytes of data",
            ),
        ];
        for (header, data_len, expected) in cases {
            assert_eq!(error(header, data_len), expected);
        }
    }

    #[test]
    fn a_header_length_beyond_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("encoder.safetensors");
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        let message = load_encoder(&path, 6).err().map(|e| e.to_string());
        assert_eq!(
            message,
            Some(format!(
                "{}: not a safetensors file: its header length {} exceeds the file",
                path.display(),
                u64::MAX
            ))
        );
    }

    #[test]
    fn a_chained_encoder_loads() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let header = serde_json::json!({
            "encoder_0.weight": tensor(serde_json::json!([4, 6]), 0, 96),
            "encoder_0.bias": tensor(serde_json::json!([4]), 96, 112),
        });
        let path = raw(dir.path(), header, &[0u8; 112]);
        let mlp = load_encoder(&path, 6).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mlp.layers.len(), 1);
        assert_eq!((mlp.layers[0].n_in, mlp.layers[0].n_out), (6, 4));
    }
}
