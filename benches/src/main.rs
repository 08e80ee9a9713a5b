//! `pipeline-bench`: on-demand benchmarks (never part of `cargo test`).
//!
//! ```text
//! cargo run --release -p pipeline-bench -- hash [SIZE_MB]        blake3 throughput on a file
//! cargo run --release -p pipeline-bench -- noop [CONFIG] [RUNS]   no-op `run` and `status`
//! cargo run --release -p pipeline-bench -- ingest [TRACKS]        synthetic CSV -> Parquet
//! cargo run --release -p pipeline-bench -- knn [QUERIES] [POINTS]   exact L1 neighbour search
//! cargo run --release -p pipeline-bench -- nn                      MLP training samples/s
//! cargo run --release -p pipeline-bench -- models [CONFIG]         pca, lsi, lda vs Python peers
//! cargo run --release -p pipeline-bench -- io [CONFIG] [TRACKS] [ROUNDS]
//!                                                                  ingest, standardize, pca vs
//!                                                                  polars-py / scikit-learn
//! cargo run --release -p pipeline-bench -- whole [CONFIG] [TRACKS] every stage in one fresh run
//!                                                                  at the default -j: table
//! cargo run --release -p pipeline-bench -- scale [TRACKS...]     every stage of pipeline.toml at
//!                                                                  each size: seconds, peak memory,
//!                                                                  growth exponents
//! cargo run --release -p pipeline-bench -- slurm [TRACKS]          8 k-NN stages: local -j 2 vs
//!                                                                  Slurm; sharded k-NN per shard
//! ```
//! Figures are wall-clock medians; the machines are shared and noisy, so compare ratios
//! measured in one session.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("hash") => hash(args.get(1).map_or(Ok(1024), |s| s.parse())?),
        Some("noop") => noop(
            Path::new(args.get(1).map_or("pipeline.toml", String::as_str)),
            args.get(2).map_or(Ok(20), |s| s.parse())?,
        ),
        Some("ingest") => ingest(args.get(1).map_or(Ok(106_574), |s| s.parse())?),
        Some("knn") => knn(
            args.get(1).map_or(Ok(1000), |s| s.parse())?,
            args.get(2).map_or(Ok(106_000), |s| s.parse())?,
        ),
        Some("nn") => {
            for sizes in [&[518, 512, 164][..], &[518, 512, 512, 256, 164][..]] {
                nn(sizes, 32)?;
                nn(sizes, 256)?;
            }
            Ok(())
        }
        Some("models") => models(
            Path::new(args.get(1).map_or("pipeline.toml", String::as_str)),
            args.get(2).map_or(Ok(106_574), |s| s.parse())?,
        ),
        Some("io") => io_stages(
            Path::new(args.get(1).map_or("pipeline.toml", String::as_str)),
            args.get(2).map_or(Ok(106_574), |s| s.parse())?,
            args.get(3).map_or(Ok(5), |s| s.parse())?,
        ),
        Some("whole") => whole(
            Path::new(args.get(1).map_or("pipeline.toml", String::as_str)),
            args.get(2).map_or(Ok(106_574), |s| s.parse())?,
        ),
        Some("scale") => {
            let sizes: Vec<usize> = args[1..]
                .iter()
                .map(|s| s.parse())
                .collect::<std::result::Result<_, _>>()?;
            scale(if sizes.is_empty() {
                &[8_000, 26_644, 106_574, 426_296]
            } else {
                &sizes
            })
        }
        Some("slurm") => slurm(args.get(1).map_or(Ok(20_000), |s| s.parse())?),
        _ => bail!(
            "usage: pipeline-bench hash [SIZE_MB] | noop [CONFIG] [RUNS] | ingest [TRACKS] | knn [QUERIES] [POINTS] | nn | models [CONFIG] [TRACKS] | io [CONFIG] [TRACKS] [ROUNDS] | whole [CONFIG] [TRACKS] | scale [TRACKS...] | slurm [TRACKS]"
        ),
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn hash(size_mb: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.bin");
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for _ in 0..size_mb {
            file.write_all(&chunk)?;
        }
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut hasher = blake3::Hasher::new();
        hasher.update_mmap_rayon(&path)?;
        std::hint::black_box(hasher.finalize());
        times.push(start.elapsed());
    }
    let t = median(times);
    println!(
        "hash: {size_mb} MB in {:.3} s = {:.2} GB/s on {} threads (page cache warm)",
        t.as_secs_f64(),
        size_mb as f64 / 1024.0 / t.as_secs_f64(),
        rayon::current_num_threads()
    );
    Ok(())
}

fn pipeline_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name("pipeline")
}

fn noop(config: &Path, runs: usize) -> Result<()> {
    let binary = pipeline_binary();
    let first = Command::new(&binary)
        .args(["run", "-q", "--config"])
        .arg(config)
        .status()
        .context("run `pipeline` (build it with cargo build --release)")?;
    if !first.success() {
        bail!("the pipeline failed");
    }
    for command in ["run", "status"] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let out = Command::new(&binary)
                .args([command, "-q", "--config"])
                .arg(config)
                .output()?;
            times.push(start.elapsed());
            if !out.status.success() {
                bail!("`pipeline {command}` failed");
            }
        }
        println!(
            "no-op `pipeline {command}`: median {:.1} ms over {runs} runs",
            median(times).as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

fn ingest(tracks: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let params = stages::io::fma::synthetic::SyntheticParams { tracks, seed: 42 };
    let start = Instant::now();
    stages::io::fma::synthetic::generate(&params, dir.path(), &|| Ok(()))?;
    println!(
        "synthetic source: {tracks} tracks in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        "[stages.source]\nkind = \"fma_files\"\ndir = \".\"\n\n[stages.ingest]\nkind = \"ingest\"\ninputs = [\"source:features\", \"source:tracks\", \"source:genres\"]\n",
    )?;
    let start = Instant::now();
    let status = Command::new(pipeline_binary())
        .args(["run", "-q", "--config"])
        .arg(&config)
        .status()?;
    if !status.success() {
        bail!("ingest failed");
    }
    println!(
        "ingest (hash inputs + CSV -> Parquet + publish): {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The pca, lsi and lda stages of `config` with `--set source.tracks=TRACKS` (full scale by
/// default), each rerun three times
/// (median of the stage seconds the engine reports, which include reading the inputs and
/// writing the outputs), then the Python peers on the same files when they are installed.
fn models(config: &Path, tracks: usize) -> Result<()> {
    let binary = pipeline_binary();
    let scale = format!("source.tracks={tracks}");
    let stages = ["pca", "lsi", "lda"];
    prepare(&binary, config, &scale, &stages)?;
    for stage in stages {
        let mut times = Vec::new();
        for _ in 0..3 {
            times.push(Duration::from_secs_f64(forced_run(
                &binary, config, &scale, stage,
            )?));
        }
        println!(
            "pipeline {stage}: median {:.2} s over 3 runs (read + compute + write)",
            median(times).as_secs_f64()
        );
    }
    let outputs = outputs_dir(config);
    pca_compute(&outputs.join("standardize").join("zscore.parquet"))?;
    let peers = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/models.py");
    let status = Command::new("python3").arg(peers).arg(&outputs).status();
    if !status.is_ok_and(|s| s.success()) {
        println!("(Python peers not run: pip install pyarrow scikit-learn gensim)");
    }
    Ok(())
}

/// The stages that mostly move bytes (ingest, standardize, pca) at `--set
/// source.tracks=TRACKS`, each forced `rounds` times, every pipeline run followed at once by
/// its Python peer on the same input files (benches/peers/io_stages.py), so that the
/// machine's noise falls on both alike. Medians, with the range. The stage's published folder
/// is removed first, so every run pays for publishing; its cache objects are already stored,
/// so a run skips the fsync a new object gets (about 0.1 s for 220 MB here).
fn io_stages(config: &Path, tracks: usize, rounds: usize) -> Result<()> {
    let binary = pipeline_binary();
    let scale = format!("source.tracks={tracks}");
    let stages = ["ingest", "standardize", "pca"];
    prepare(&binary, config, &scale, &stages)?;
    let outputs = outputs_dir(config);
    let peer_inputs = [
        outputs.join("source"),
        outputs.join("ingest").join("features.parquet"),
        outputs.join("standardize").join("zscore.parquet"),
    ];
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/io_stages.py");
    let peer_dir = tempfile::tempdir()?;
    let mut ours: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
    let mut commands: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
    let mut peers: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
    let mut peer_names = vec![String::new(); stages.len()];
    for round in 1..=rounds {
        for (i, stage) in stages.iter().enumerate() {
            // Without its published files the run copies them again, as a new result is
            // published (a forced run that reproduces files still in place copies nothing).
            let published = outputs.join(stage);
            if published.exists() {
                std::fs::remove_dir_all(&published)
                    .with_context(|| format!("remove {}", published.display()))?;
            }
            let (stage_seconds, command_seconds) =
                timed_forced_run(&binary, config, &scale, stage)?;
            ours[i].push(stage_seconds);
            commands[i].push(command_seconds);
            let peer = Command::new("python3")
                .arg(script)
                .arg(stage)
                .arg(&peer_inputs[i])
                .arg(peer_dir.path())
                .output();
            let line = match &peer {
                Ok(out) if out.status.success() => {
                    String::from_utf8_lossy(&out.stdout).into_owned()
                }
                _ => String::new(),
            };
            let mut words = line.split_whitespace();
            if let (Some(name), Some(Ok(seconds))) = (words.next(), words.next().map(str::parse)) {
                peer_names[i] = name.to_owned();
                peers[i].push(seconds);
            }
            eprintln!(
                "round {round}: {stage} {:.2} s, peer {}",
                ours[i].last().copied().unwrap_or(f64::NAN),
                peers[i]
                    .last()
                    .map_or("not run".to_owned(), |s| format!("{s:.2} s"))
            );
        }
    }
    let summary = |times: &[f64]| -> Option<(f64, f64, f64)> {
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some((
            *sorted.get(sorted.len() / 2)?,
            *sorted.first()?,
            *sorted.last()?,
        ))
    };
    println!(
        "{:<12} {:>22} {:>22} {:>34} {:>8}",
        "stage",
        format!("pipeline s (of {rounds})"),
        "whole command s",
        "peer s",
        "peer/us"
    );
    for (i, stage) in stages.iter().enumerate() {
        let Some((ours_median, ours_min, ours_max)) = summary(&ours[i]) else {
            continue;
        };
        let command = summary(&commands[i]).map_or(String::new(), |(median, min, max)| {
            format!("{median:.2} ({min:.2}-{max:.2})")
        });
        let (peer, ratio) = match summary(&peers[i]) {
            Some((median, min, max)) => (
                format!("{} {median:.2} ({min:.2}-{max:.2})", peer_names[i]),
                format!("{:.2}", median / ours_median),
            ),
            None => (
                "not run (pip install polars scikit-learn)".to_owned(),
                "-".to_owned(),
            ),
        };
        println!(
            "{stage:<12} {:>22} {command:>22} {peer:>34} {ratio:>8}",
            format!("{ours_median:.2} ({ours_min:.2}-{ours_max:.2})")
        );
    }
    Ok(())
}

/// Every stage of `config` at `--set source.tracks=TRACKS` in one run from an empty cache, at
/// the default `-j`: the wall time of the whole run and each stage's seconds and outcome.
fn whole(config: &Path, tracks: usize) -> Result<()> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("read {}", config.display()))?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, text)?;
    let scale = format!("source.tracks={tracks}");
    let start = Instant::now();
    let out = Command::new(pipeline_binary())
        .args(["run", "-q", "--json", "--set", &scale, "--config"])
        .arg(&file)
        .output()
        .context("run `pipeline` (build it with cargo build --release)")?;
    let wall = start.elapsed();
    if !out.status.success() {
        bail!(
            "the pipeline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let stages = summary["stages"]
        .as_array()
        .context("run --json prints a `stages` array")?;
    println!("{:<24} {:>10} {:>9}", "stage", "outcome", "seconds");
    for stage in stages {
        println!(
            "{:<24} {:>10} {:>9.2}",
            stage["stage"].as_str().unwrap_or("?"),
            stage["outcome"].as_str().unwrap_or("?"),
            stage["seconds"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let busy: f64 = stages.iter().filter_map(|s| s["seconds"].as_f64()).sum();
    println!(
        "whole pipeline at {tracks} tracks: {:.1} s wall at the default -j ({busy:.1} s of stage time)",
        wall.as_secs_f64()
    );
    Ok(())
}

/// Runs `stages` of `config` (and what they need) at `scale`, so the timed runs after it
/// find their inputs in the cache.
fn prepare(binary: &Path, config: &Path, scale: &str, stages: &[&str]) -> Result<()> {
    let prepared = Command::new(binary)
        .args(["run", "-q", "--set", scale, "--config"])
        .arg(config)
        .args(stages)
        .status()
        .context("run `pipeline` (build it with cargo build --release)")?;
    if !prepared.success() {
        bail!("the pipeline failed");
    }
    Ok(())
}

/// The `outputs/` folder of the project `config` belongs to.
fn outputs_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("outputs")
}

/// The pca stage's computation alone, as the Python peers are timed: the full spectrum
/// (covariance + eigendecomposition), then the scores on 155 components. Medians of 3.
fn pca_compute(zscore: &Path) -> Result<()> {
    let start = Instant::now();
    let data =
        stages::io::parquet::read_column_major(zscore, stages::io::parquet::Landing::Centred)?;
    let n = data.rows();
    println!(
        "pipeline pca: reading and centring {n} x {} takes {:.2} s",
        data.columns.len(),
        start.elapsed().as_secs_f64()
    );
    let (mut fits, mut projections) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let start = Instant::now();
        let pca = stages::math::pca::Pca::fit_column_major(&data.values, n, data.means.clone())?;
        fits.push(start.elapsed());
        let start = Instant::now();
        std::hint::black_box(pca.scores_column_major(&data.values, n, 155.min(data.columns.len())));
        projections.push(start.elapsed());
    }
    let (fit, projection) = (median(fits), median(projections));
    println!(
        "pipeline pca compute: full spectrum {:.2} s, + 155 scores {:.2} s = {:.2} s",
        fit.as_secs_f64(),
        projection.as_secs_f64(),
        (fit + projection).as_secs_f64()
    );
    Ok(())
}

/// The seconds `pipeline run --json` reports for `stage`.
/// Forces `stage` at `--set SCALE` and returns its seconds from the run's JSON summary.
fn forced_run(binary: &Path, config: &Path, scale: &str, stage: &str) -> Result<f64> {
    Ok(timed_forced_run(binary, config, scale, stage)?.0)
}

/// A forced run of `stage`: its seconds in the run's table (until its outputs are published,
/// ready to read) and the whole command's (the process's start, planning, and the end-of-run
/// sync of the published copies included).
fn timed_forced_run(binary: &Path, config: &Path, scale: &str, stage: &str) -> Result<(f64, f64)> {
    let start = Instant::now();
    let out = Command::new(binary)
        .args(["run", "-q", "--force", "--json", "--set", scale, "--config"])
        .arg(config)
        .arg(stage)
        .output()?;
    let command = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("`pipeline run --force {stage}` failed");
    }
    Ok((stage_seconds(&out.stdout, stage)?, command))
}

fn stage_seconds(json: &[u8], stage: &str) -> Result<f64> {
    let summary: serde_json::Value = serde_json::from_slice(json)?;
    summary["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|s| s["stage"] == stage))
        .and_then(|s| s["seconds"].as_f64())
        .with_context(|| format!("no seconds for `{stage}` in the run summary"))
}

/// Training throughput of an MLP (Adam, BCE, dropout 0.2 on hidden layers) on the rayon pool
/// (`RAYON_NUM_THREADS=1` for one thread).
fn nn(sizes: &[usize], batch: usize) -> Result<()> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut net = stages::nn::layers::Mlp::new(sizes, 0.2, false, &mut rng);
    let x: Vec<f32> = (0..batch * 518).map(|i| (i % 97) as f32 / 97.0).collect();
    let y: Vec<f32> = (0..batch * 164)
        .map(|i| f32::from(u8::from(i % 13 == 0)))
        .collect();
    let adam = stages::nn::layers::Adam::new(1e-3);
    let steps = (20_000 / batch).max(20);
    let start = Instant::now();
    let mut loss = 0.0;
    for _ in 0..steps {
        let out = net.forward(&x, batch, Some(&mut rng));
        let (l, grad) = stages::nn::layers::bce_with_logits(&out, &y);
        loss = l;
        net.backward(&grad, batch);
        net.update(adam);
    }
    let rate = (steps * batch) as f64 / start.elapsed().as_secs_f64();
    let shape: Vec<String> = sizes.iter().map(ToString::to_string).collect();
    println!(
        "MLP {}, batch {batch}: {rate:.0} samples/s ({} threads; final loss {loss:.4})",
        shape.join("-"),
        rayon::current_num_threads()
    );
    Ok(())
}

/// Exact L1 neighbour search: `queries` queries against `points` points of 518 dimensions.
fn knn(queries: usize, points: usize) -> Result<()> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let values = stages::ndarray_matrix(points + queries, 518, |_, _| rng.random::<f64>());
    let train_index: Vec<usize> = (0..points).collect();
    let query_index: Vec<usize> = (points..points + queries).collect();
    let train = stages::math::knn_search::Rows::gather(&values, &train_index);
    let query = stages::math::knn_search::Rows::gather(&values, &query_index);
    let ids: Vec<i64> = (0..points as i64).collect();
    let start = Instant::now();
    let found = stages::math::knn_search::nearest(
        &query,
        &train,
        &ids,
        10,
        stages::math::knn_search::Metric::L1,
    );
    std::hint::black_box(found);
    println!(
        "knn: {queries} queries x {points} points x 518 dims (L1, k = 10) in {:.2} s on {} threads",
        start.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    Ok(())
}

/// A sweep of 8 k-NN stages (one per seed) run locally with `-j 2` and as Slurm jobs on the
/// cluster `sinfo` answers for, with the per-job overhead (submission to published result,
/// less the worker's own compute time); then one larger k-NN with 1, 2 and 4 shards on Slurm,
/// with the compute time of each shard.
fn slurm(tracks: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = format!(
        "[executor]\npoll_seconds = 0.5\n\n[stages.source]\nkind = \"synthetic_fma\"\ntracks = {tracks}\n\n[stages.ingest]\nkind = \"ingest\"\ninputs = [\"source:features\", \"source:tracks\", \"source:genres\"]\n\n[stages.standardize]\nkind = \"standardize\"\ninputs = [\"ingest:features\", \"ingest:tracks\"]\n"
    );
    let inputs = "inputs = [\"standardize:zscore\", \"ingest:labels_genres\", \"ingest:tracks\"]";
    let sweep: Vec<String> = (0..8).map(|i| format!("knn_{i}")).collect();
    for (i, name) in sweep.iter().enumerate() {
        config.push_str(&format!(
            "\n[stages.{name}]\nkind = \"knn\"\n{inputs}\nseed = {i}\n"
        ));
    }
    config.push_str(&format!(
        "\n[stages.knn_big]\nkind = \"knn\"\n{inputs}\nrepeats = 1\ntest_fraction = 0.2\n"
    ));
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, &config)?;
    let binary = pipeline_binary();
    let run = |args: &[&str]| -> Result<(serde_json::Value, f64)> {
        let start = Instant::now();
        let out = Command::new(&binary)
            .args(["run", "-q", "--json", "--config"])
            .arg(&file)
            .args(args)
            .output()
            .context("run `pipeline` (build it with cargo build --release)")?;
        let seconds = start.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "pipeline {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok((serde_json::from_slice(&out.stdout)?, seconds))
    };
    run(&["source", "ingest", "standardize"])?;
    let mut sweep_args: Vec<&str> = vec!["--force"];
    sweep_args.extend(sweep.iter().map(String::as_str));

    let (_, local) = run(&[&["-j", "2"][..], &sweep_args].concat())?;
    println!("sweep of 8 k-NN stages, {tracks} tracks, local -j 2:      {local:.2} s");
    let (report, cluster) = run(&[&["-j", "2", "--executor", "slurm"][..], &sweep_args].concat())?;
    println!("sweep of 8 k-NN stages, {tracks} tracks, Slurm -j 2:      {cluster:.2} s");
    let compute = |stage: &str| -> Result<f64> {
        let lock: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("pipeline.lock"))?)?;
        let key = lock["stages"][stage]["key"]
            .as_str()
            .context("a key in pipeline.lock")?;
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(
            dir.path()
                .join("cache/manifests")
                .join(format!("{key}.json")),
        )?)?;
        manifest["seconds"]
            .as_f64()
            .context("seconds in the manifest")
    };
    let mut overheads = Vec::new();
    for stage in &sweep {
        overheads.push(stage_seconds(&serde_json::to_vec(&report)?, stage)? - compute(stage)?);
    }
    overheads.sort_by(f64::total_cmp);
    println!(
        "per-job overhead (submission to published result, less compute): median {:.2} s, max {:.2} s (poll every 0.5 s)",
        overheads[overheads.len() / 2],
        overheads[overheads.len() - 1]
    );
    let (_, all_at_once) = run(&[&["-j", "8", "--executor", "slurm"][..], &sweep_args].concat())?;
    println!("sweep of 8 k-NN stages, {tracks} tracks, Slurm -j 8:      {all_at_once:.2} s (all submitted at once)");

    for shards in [1, 2, 4] {
        let set = format!("knn_big.shards={shards}");
        let (report, _) = run(&["--force", "--executor", "slurm", "--set", &set, "knn_big"])?;
        let stage = stage_seconds(&serde_json::to_vec(&report)?, "knn_big")?;
        let mut pieces = Vec::new();
        for entry in std::fs::read_dir(dir.path().join("cache/manifests"))?.flatten() {
            let manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(entry.path())?)?;
            let name = manifest["components"]["stage"].as_str().unwrap_or("");
            if name.starts_with("knn_big.shard-") && name.ends_with(&format!("-of-{shards}")) {
                pieces.push(manifest["seconds"].as_f64().unwrap_or(f64::NAN));
            }
        }
        let per_shard = if pieces.is_empty() {
            format!("{:.2} s (unsharded)", compute("knn_big")?)
        } else {
            let shown: Vec<String> = pieces.iter().map(|s| format!("{s:.2}")).collect();
            format!(
                "{} s, merge {:.2} s",
                shown.join(" / "),
                compute("knn_big")?
            )
        };
        println!("k-NN, {tracks} tracks, 20% queries, {shards} shard(s) on Slurm: stage {stage:.2} s; per shard {per_shard}");
    }
    Ok(())
}

/// Every stage of the default `pipeline.toml` at each number of tracks, each in a process of
/// its own (its upstream stages already done), so the peak memory (`/usr/bin/time`'s maximum
/// resident set) is the stage's. Then the growth exponent of each stage's time between sizes:
/// the slope of log(seconds) against log(tracks), 1 for linear, 2 for quadratic.
fn scale(sizes: &[usize]) -> Result<()> {
    let binary = pipeline_binary();
    let config = std::fs::read_to_string("pipeline.toml")
        .context("run from the repository root (reads pipeline.toml)")?;
    let timer = Path::new("/usr/bin/time");
    // Per stage, per size: seconds and peak kilobytes.
    type Measured = Vec<(f64, Option<u64>)>;
    let mut table: Vec<(String, Measured)> = Vec::new();
    for &tracks in sizes {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("pipeline.toml");
        std::fs::write(&file, &config)?;
        let scale = format!("source.tracks={tracks}");
        let status = Command::new(&binary)
            .args(["status", "--json", "--set", &scale, "--config"])
            .arg(&file)
            .output()?;
        let stages: Vec<String> = serde_json::from_slice::<serde_json::Value>(&status.stdout)?
            .as_array()
            .context("status --json prints an array")?
            .iter()
            .filter_map(|s| s["stage"].as_str().map(str::to_owned))
            .collect();
        for stage in &stages {
            let mut command = if timer.is_file() {
                let mut c = Command::new(timer);
                c.args(["-f", "peak %M"]).arg(&binary);
                c
            } else {
                Command::new(&binary)
            };
            let out = command
                .args([
                    "run", "-q", "--json", "-j", "1", "--set", &scale, "--config",
                ])
                .arg(&file)
                .arg(stage)
                .output()?;
            if !out.status.success() {
                bail!(
                    "{stage} at {tracks} tracks failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let seconds = stage_seconds(&out.stdout, stage)?;
            let peak_kb = String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .find_map(|l| {
                    l.strip_prefix("peak ")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                });
            eprintln!(
                "{tracks} tracks: {stage} {seconds:.2} s, peak {} MB",
                peak_kb.map_or("?".into(), |k| (k / 1024).to_string())
            );
            match table.iter_mut().find(|(s, _)| s == stage) {
                Some((_, row)) => row.push((seconds, peak_kb)),
                None => table.push((stage.clone(), vec![(seconds, peak_kb)])),
            }
        }
    }
    let mut header = format!("{:<24}", "stage");
    for tracks in sizes {
        header.push_str(&format!(" {:>16}", format!("{tracks} s / MB")));
    }
    for pair in sizes.windows(2) {
        header.push_str(&format!(
            " {:>12}",
            format!("exp {}k-{}k", pair[0] / 1000, pair[1] / 1000)
        ));
    }
    println!("{header}");
    let mut total = vec![0.0; sizes.len()];
    for (stage, row) in &table {
        let mut line = format!("{stage:<24}");
        for (i, (seconds, peak)) in row.iter().enumerate() {
            total[i] += seconds;
            let mb = peak.map_or("?".into(), |k| (k / 1024).to_string());
            line.push_str(&format!(" {:>16}", format!("{seconds:.2} / {mb}")));
        }
        for (i, pair) in sizes.windows(2).enumerate() {
            let exponent = match (row.get(i), row.get(i + 1)) {
                // Below a tenth of a second the time is mostly start-up, not growth.
                (Some(a), Some(b)) if a.0 >= 0.1 => {
                    format!(
                        "{:.2}",
                        (b.0 / a.0).ln() / (pair[1] as f64 / pair[0] as f64).ln()
                    )
                }
                _ => "-".into(),
            };
            line.push_str(&format!(" {exponent:>12}"));
        }
        println!("{line}");
    }
    let mut line = format!("{:<24}", "total");
    for t in &total {
        line.push_str(&format!(" {:>16}", format!("{t:.1}")));
    }
    println!("{line}");
    Ok(())
}
