//! `autoencoder`: 518-512-512-256-164 ReLU encoder, mirrored decoder with sigmoid output,
//! binary cross-entropy on min-max features, 20 epochs. Reports the variance-weighted R^2 of
//! the reconstruction on held-out tracks (sklearn's `r2_score(multioutput=
//! "variance_weighted")`), and writes the encoder weights and every track's code.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::io::parquet::{read_matrix, write_matrix};
use crate::kind::{check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
use crate::nn::layers::Mlp;
use crate::nn::training::{self, Training};

/// Parameters of `autoencoder`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoencoderParams {
    /// Encoder layer sizes; the last is the code size.
    pub encoder: Vec<usize>,
    /// Passes over the training tracks.
    pub epochs: usize,
    /// Tracks per Adam step.
    pub batch: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Share of tracks held out for R^2.
    pub holdout: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for AutoencoderParams {
    fn default() -> Self {
        Self {
            encoder: vec![512, 512, 256, 164],
            epochs: 20,
            batch: 32,
            learning_rate: 1e-3,
            holdout: 0.2,
            seed: 42,
        }
    }
}

impl Params for AutoencoderParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_range("epochs", self.epochs, 1, 100_000)?;
        check_range("batch", self.batch, 1, 1_000_000)?;
        check_range("holdout", self.holdout, 0.01, 0.9)?;
        if self.encoder.is_empty() || self.encoder.contains(&0) {
            return Err(ParamError::Invalid {
                key: "encoder".into(),
                message: "needs at least one positive layer size".into(),
            });
        }
        Ok(())
    }
}

/// Variance-weighted R^2 of `pred` against `truth` (rows x width).
pub fn r2_variance_weighted(pred: &[f32], truth: &[f32], width: usize) -> f64 {
    let rows = truth.len() / width.max(1);
    let mut ss_res = 0.0f64;
    let mut ss_tot = 0.0f64;
    for j in 0..width {
        let mean = (0..rows)
            .map(|r| f64::from(truth[r * width + j]))
            .sum::<f64>()
            / rows.max(1) as f64;
        for r in 0..rows {
            let t = f64::from(truth[r * width + j]);
            ss_res += (t - f64::from(pred[r * width + j])).powi(2);
            ss_tot += (t - mean).powi(2);
        }
    }
    if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        0.0
    }
}

/// The autoencoder stage.
pub struct Autoencoder;

impl Stage for Autoencoder {
    type Params = AutoencoderParams;
    const KIND: &'static str = "autoencoder";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&["features"])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("encoder", "encoder.safetensors"),
            OutputSpec::new("weights", "weights.safetensors"),
            OutputSpec::new("codes", "codes.parquet"),
            OutputSpec::new("curves", "curves.parquet"),
            OutputSpec::new("metrics", "metrics.json"),
            OutputSpec::new("loss_figure", "loss.svg"),
        ]
    }

    fn run(p: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let f = read_matrix(io.input(0, "features")?)?;
        let width = f.columns.len();
        let x: Vec<f32> = f.values.iter().map(|v| *v as f32).collect();
        if x.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(Error::BadParam { param: "inputs", message: "the autoencoder reconstructs with a sigmoid and needs min-max features in [0, 1] (use standardize:minmax)".into() });
        }
        let mut sizes = vec![width];
        sizes.extend(&p.encoder);
        let decoder: Vec<usize> = p
            .encoder
            .iter()
            .rev()
            .skip(1)
            .copied()
            .chain(std::iter::once(width))
            .collect();
        sizes.extend(&decoder);
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut net = Mlp::new(&sizes, 0.0, false, &mut rng);
        let (train, held) = training::split(f.track_ids.len(), p.holdout, p.seed ^ 0x5917);
        let training = Training::new(p.epochs, p.batch, p.learning_rate as f32, p.seed);
        let curves = training::train(
            &mut net,
            io,
            (&x, width, &x, width),
            (&train, &held),
            training,
        )?;
        let recon = training::predict(&mut net, &x, width, &held);
        let truth: Vec<f32> = held
            .iter()
            .flat_map(|&r| x[r * width..(r + 1) * width].iter().copied())
            .collect();
        let r2 = r2_variance_weighted(&recon, &truth, width);

        let encoder = Mlp::from_layers(net.layers[..p.encoder.len()].to_vec());
        let architecture = training::architecture(&net);
        training::save(
            &io.output("weights.safetensors"),
            &net,
            "dense_",
            &architecture,
            io.provenance,
        )?;
        training::save(
            &io.output("encoder.safetensors"),
            &encoder,
            "encoder_",
            &training::architecture(&encoder),
            io.provenance,
        )?;
        let mut enc = encoder.clone();
        let code_width = p.encoder[p.encoder.len() - 1];
        let all: Vec<usize> = (0..f.track_ids.len()).collect();
        let codes = training::outputs(&mut enc, &x, width, &all);
        let codes = ndarray::Array2::from_shape_vec(
            (f.track_ids.len(), code_width),
            codes.into_iter().map(f64::from).collect(),
        )
        .map_err(|e| Error::Numerical {
            what: "codes",
            message: e.to_string(),
        })?;
        let names: Vec<String> = (1..=code_width).map(|i| format!("code_{i:03}")).collect();
        write_matrix(
            &io.output("codes.parquet"),
            &f.track_ids,
            &names,
            &codes,
            true,
            io.provenance,
        )?;
        training::write_curves(io.out_dir, io.stage, &curves, io.provenance)?;
        crate::io::metrics::write_metrics(
            &io.output("metrics.json"),
            &json!({
                "r2": r2,
                "final_train_loss": curves.last().map(|c| c.0),
                "final_held_out_loss": curves.last().map(|c| c.1),
                "held_out_tracks": held.len(),
                    "architecture": architecture,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_is_one_for_a_perfect_reconstruction_and_zero_for_the_mean() {
        let truth = vec![0.0, 1.0, 1.0, 3.0, 2.0, 5.0];
        assert!((r2_variance_weighted(&truth, &truth, 2) - 1.0).abs() < 1e-12);
        let mean = vec![1.0, 3.0, 1.0, 3.0, 1.0, 3.0];
        assert!(r2_variance_weighted(&mean, &truth, 2).abs() < 1e-12);
    }
}
