//! A cache that never serves a bad byte: objects flipped, truncated or deleted behind a
//! restored output or behind an input of a stage that must run, manifests pointing at missing
//! objects, edits that put the mtime back, `verify` and `gc`, and paths chosen by a writer of
//! the shared cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{keygen, stderr, stdout, Project};

const SMALL: &str = r#"
[stages.source]
kind = "synthetic_fma"
tracks = 80
seed = 5

[stages.ingest]
kind = "ingest"
inputs = ["source:features", "source:tracks", "source:genres"]

[stages.explore]
kind = "explore"
inputs = ["ingest:labels_genres", "ingest:tracks"]

[stages.standardize]
kind = "standardize"
inputs = ["ingest:features", "ingest:tracks"]

[stages.pca]
kind = "pca"
inputs = ["standardize:zscore"]
n_components = 20
"#;

fn run_ok(p: &Project) -> String {
    let out = p.pipeline(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stderr(&out)
}

fn outcomes(p: &Project) -> BTreeMap<String, String> {
    let out = p.pipeline(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_owned(),
                s["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every published file, by path relative to `outputs/`.
fn published(p: &Project) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let root = p.file("outputs");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(&root).unwrap().to_owned();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// The cache object behind `stage`'s output `output`, from `pipeline.lock`.
fn object_of(p: &Project, stage: &str, output: &str) -> PathBuf {
    let lock: Value = serde_json::from_str(&p.read("pipeline.lock")).unwrap();
    let hash = lock["stages"][stage]["outputs"][output]["object"]
        .as_str()
        .unwrap()
        .to_owned();
    p.file(&format!("cache/objects/{}/{hash}", &hash[..2]))
}

fn writable(path: &Path) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(
        clippy::permissions_set_readonly_false,
        reason = "a test damaging the cache"
    )]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
}

/// Changes one byte in the middle and puts the mtime back, as a careful vandal would.
fn flip_byte(path: &Path) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    writable(path);
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

fn truncate(path: &Path) {
    writable(path);
    let len = std::fs::metadata(path).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
}

fn quarantined(p: &Project) -> usize {
    std::fs::read_dir(p.file("cache/quarantine")).map_or(0, |d| d.count())
}

fn all_up_to_date(p: &Project) {
    let second = outcomes(p);
    assert!(
        second.values().all(|o| o == "up-to-date"),
        "a second run must do nothing: {second:?}"
    );
}

#[test]
fn a_damaged_object_behind_a_restored_output_is_quarantined_and_recomputed() {
    let p = Project::new(SMALL);
    run_ok(&p);
    let clean = published(&p);
    type Damage = fn(&Path);
    let cases: [(&str, &str, Damage); 4] = [
        ("explore", "occurrence_figure", flip_byte),
        ("ingest", "features", truncate),
        ("pca", "scores", flip_byte),
        ("standardize", "stats", |path: &Path| {
            std::fs::remove_file(path).unwrap()
        }),
    ];
    for (round, (stage, output, damage)) in cases.into_iter().enumerate() {
        let object = object_of(&p, stage, output);
        damage(&object);
        std::fs::remove_dir_all(p.file("outputs")).unwrap();
        let log = run_ok(&p);
        assert!(
            log.contains(&format!("(output `{output}`) is")),
            "{stage}:{output}: the log names the object and output: {log}"
        );
        assert_eq!(published(&p), clean, "{stage}:{output}: outputs differ");
        all_up_to_date(&p);
        let status = p.pipeline(&["status"]);
        assert!(
            stdout(&status).lines().all(|l| l.ends_with("up to date")),
            "{}",
            stdout(&status)
        );
        if round < 3 {
            assert_eq!(quarantined(&p), round + 1, "{stage}:{output}");
        }
    }
}

#[test]
fn a_damaged_input_of_a_stage_that_must_run_reruns_its_producer_first() {
    let changed = SMALL.replace("n_components = 20", "n_components = 10");
    let reference = Project::new(&changed);
    run_ok(&reference);
    for damage in [flip_byte as fn(&Path), truncate, |path: &Path| {
        std::fs::remove_file(path).unwrap()
    }] {
        let p = Project::new(SMALL);
        run_ok(&p);
        damage(&object_of(&p, "standardize", "zscore"));
        p.write("pipeline.toml", &changed);
        let ran = outcomes(&p);
        assert_eq!(ran["standardize"], "ran", "{ran:?}");
        assert_eq!(ran["pca"], "ran", "{ran:?}");
        assert_eq!(published(&p), published(&reference));
        all_up_to_date(&p);
    }
}

#[test]
fn a_manifest_pointing_at_a_missing_object_no_longer_counts_as_cached() {
    let p = Project::new(SMALL);
    run_ok(&p);
    let clean = published(&p);
    std::fs::remove_file(object_of(&p, "pca", "components")).unwrap();
    let status = p.pipeline(&["status", "pca"]);
    let object = object_of(&p, "pca", "components");
    let short = &object.file_name().unwrap().to_string_lossy()[..12];
    assert_eq!(
        stdout(&status),
        format!("pca    stale: cached object {short} of output `components` is missing\n")
    );
    let ran = outcomes(&p);
    assert_eq!(ran["pca"], "ran", "{ran:?}");
    assert_eq!(ran["standardize"], "up-to-date", "{ran:?}");
    assert_eq!(published(&p), clean);
    all_up_to_date(&p);
}

#[test]
fn a_same_size_edit_with_its_mtime_put_back_is_noticed() {
    let p = Project::new(SMALL);
    run_ok(&p);
    // A published output: restored.
    let output = p.file("outputs/pca/explained_variance.parquet");
    let clean = std::fs::read(&output).unwrap();
    flip_byte(&output);
    let status = p.pipeline(&["status", "pca"]);
    assert!(
        stdout(&status).contains("output `outputs/pca/explained_variance.parquet` was modified"),
        "{}",
        stdout(&status)
    );
    assert_eq!(outcomes(&p)["pca"], "restored");
    assert_eq!(std::fs::read(&output).unwrap(), clean);

    // An external input: its stage reruns.
    let source = Project::new(SMALL);
    run_ok(&source);
    let data = tempfile::tempdir().unwrap();
    for file in ["features.csv", "tracks.csv", "genres.csv"] {
        std::fs::copy(
            source.file(&format!("outputs/source/{file}")),
            data.path().join(file),
        )
        .unwrap();
    }
    let config = SMALL.replace(
        "kind = \"synthetic_fma\"\ntracks = 80\nseed = 5",
        &format!(
            "kind = \"fma_files\"\ndir = {:?}",
            data.path().display().to_string()
        ),
    );
    let p = Project::new(&config);
    run_ok(&p);
    let genres = data.path().join("genres.csv");
    let text = std::fs::read_to_string(&genres).unwrap();
    let edited = text.replacen("Avant-Garde", "Avant-Gardf", 1);
    assert_ne!(text, edited);
    let mtime = std::fs::metadata(&genres).unwrap().modified().unwrap();
    std::fs::write(&genres, edited).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&genres)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let ran = outcomes(&p);
    assert_eq!(ran["source"], "ran", "{ran:?}");
    assert_eq!(ran["ingest"], "ran", "{ran:?}");
}

#[test]
fn verify_reports_and_repairs_and_gc_collects_what_no_lock_references() {
    let p = Project::new(SMALL);
    run_ok(&p);
    let out = p.pipeline(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with("the cache is sound\n"),
        "{}",
        stdout(&out)
    );

    let corrupt = object_of(&p, "pca", "scores");
    flip_byte(&corrupt);
    let missing = object_of(&p, "explore", "genre_counts");
    std::fs::remove_file(&missing).unwrap();
    std::fs::write(p.file("cache/manifests/0000.json"), "{not json").unwrap();
    let out = p.pipeline(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let corrupt_rel = corrupt
        .strip_prefix(p.path())
        .unwrap()
        .display()
        .to_string();
    assert_eq!(report["corrupt_objects"], serde_json::json!([corrupt_rel]));
    let problems: std::collections::BTreeSet<(String, String, String)> = report
        ["broken_references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["stage"].as_str().unwrap().to_owned(),
                r["output"].as_str().unwrap().to_owned(),
                r["problem"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        [
            ("explore".into(), "genre_counts".into(), "missing".into()),
            ("pca".into(), "scores".into(), "corrupt".into())
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(report["unreadable_manifests"].as_array().unwrap().len(), 1);

    let out = p.pipeline(&["verify", "--repair"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("repaired: quarantined 1 object, dropped 3 manifests"),
        "{}",
        stdout(&out)
    );
    let out = p.pipeline(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let ran = outcomes(&p);
    assert_eq!(ran["pca"], "ran");
    assert_eq!(ran["explore"], "ran");
    assert_eq!(ran["ingest"], "up-to-date");

    // A parameter sweep leaves results nothing references; gc removes them and keeps a run
    // free of work.
    p.write(
        "pipeline.toml",
        SMALL.replace("n_components = 20", "n_components = 5"),
    );
    run_ok(&p);
    let dry = p.pipeline(&["gc", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let before = std::fs::read_dir(p.file("cache/manifests"))
        .unwrap()
        .count();
    assert!(
        stdout(&dry).starts_with("would remove 1 manifests"),
        "{}",
        stdout(&dry)
    );
    assert_eq!(
        std::fs::read_dir(p.file("cache/manifests"))
            .unwrap()
            .count(),
        before
    );
    let out = p.pipeline(&["gc", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["removed_manifests"], 1);
    assert!(report["removed_objects"].as_u64().unwrap() >= 4, "{report}");
    assert!(
        report["removed_quarantined"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(!p.file("cache/quarantine").read_dir().unwrap().any(|_| true));
    all_up_to_date(&p);
    assert!(p.pipeline(&["verify"]).status.success());
    // Switching back now recomputes (its result was collected), unless a lock keeps it.
    let kept = p.file("other.lock");
    std::fs::copy(p.file("pipeline.lock"), &kept).unwrap();
    p.write("pipeline.toml", SMALL);
    run_ok(&p);
    let out = p.pipeline(&["gc", "--keep-lock", "other.lock"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("removed 0 manifests"),
        "{}",
        stdout(&out)
    );
    let out = p.pipeline(&["gc", "--keep-lock", "missing.lock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read missing.lock"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_output_path_taken_by_a_directory_is_named_with_what_to_do() {
    let p = Project::new(SMALL);
    run_ok(&p);
    let path = p.file("outputs/pca/scores.parquet");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let out = p.pipeline(&["run", "pca"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error: stage `pca` failed: cannot publish `outputs/pca/scores.parquet`: a directory is in the way; the pipeline writes a regular file there, so move or remove it and run again\n"),
        "{err}"
    );
    std::fs::remove_dir(&path).unwrap();
    assert_eq!(outcomes(&p)["pca"], "restored");
}

/// The first manifest file of a `file://` remote whose stage is `stage`.
fn remote_manifest(remote: &Path, stage: &str) -> PathBuf {
    std::fs::read_dir(remote.join("manifests"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|path| {
            let m: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            m["components"]["stage"] == stage
        })
        .unwrap()
}

#[test]
fn a_remote_manifest_cannot_choose_where_its_bytes_are_written() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let first = Project::new(SMALL);
    let out = first.pipeline(&["run", "--remote", &url, "--push"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let victim = tempfile::tempdir().unwrap();
    let target = victim.path().join("planted.txt");
    let manifest = remote_manifest(shared.path(), "explore");
    let original = std::fs::read_to_string(&manifest).unwrap();
    for evil in [
        target.display().to_string(),
        "../../planted.txt".to_owned(),
        "sub/planted.txt".to_owned(),
    ] {
        let mut m: Value = serde_json::from_str(&original).unwrap();
        m["outputs"]["genre_counts"]["file"] = Value::String(evil.clone());
        std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        let second = Project::new(SMALL);
        let out = second.pipeline(&["run", "--remote", &url, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{evil}: {}", stderr(&out));
        let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
        let explore = report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == "explore")
            .unwrap();
        assert_eq!(explore["outcome"], "ran", "{evil}: {report}");
        assert!(
            stderr(&out).contains("its outputs are not the ones the stage declares"),
            "{evil}: {}",
            stderr(&out)
        );
        assert!(
            !target.exists(),
            "{evil}: a file was planted outside the project"
        );
        assert!(!second.path().join("../planted.txt").exists(), "{evil}");
        assert!(!second.file("outputs/explore/sub").exists(), "{evil}");
    }
}

#[test]
fn a_result_signed_by_an_untrusted_key_is_never_restored() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let pusher = Project::new(SMALL);
    let (trusted_public, trusted_secret) = keygen(&pusher);
    let (other_public, other_secret) = keygen(&pusher);
    assert_ne!(trusted_public, other_public);
    assert!(trusted_public.starts_with("ed25519:"), "{trusted_public}");

    // Pushed by a key nobody trusts.
    let out = pusher
        .command(&["run", "--remote", &url, "--push"])
        .env("PIPELINE_SIGNING_KEY", &other_secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trusting = format!("[cache]\ntrusted_keys = [{trusted_public:?}]\n{SMALL}");
    let puller = Project::new(&trusting);
    let out = puller.pipeline(&["run", "--remote", &url, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outcome"] == "ran"),
        "{report}"
    );
    assert!(
        stderr(&out).contains("is not signed by a trusted key; ignored (computing locally)"),
        "{}",
        stderr(&out)
    );

    // Signed by the trusted key as well (the same results, so the same message): restored.
    let out = pusher
        .command(&["push", "--remote", &url])
        .env("PIPELINE_SIGNING_KEY", &trusted_secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = Project::new(&trusting);
    let out = fresh.pipeline(&["run", "--remote", &url, "--json"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outcome"] == "restored"),
        "{report}"
    );

    // A forged signature file (another key's signature under the trusted key's name) fails.
    let sig_dir = std::fs::read_dir(shared.path().join("signatures"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let id = trusted_public.trim_start_matches("ed25519:");
    let other_id = other_public.trim_start_matches("ed25519:");
    std::fs::copy(
        sig_dir.join(format!("{other_id}.sig")),
        sig_dir.join(format!("{id}.sig")),
    )
    .unwrap();
    let out = Project::new(&trusting).pipeline(&["run", "--remote", &url]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));

    // A malformed key is a configuration error at its position.
    let bad = Project::new(&format!(
        "[cache]\ntrusted_keys = [\"ed25519:zz\"]\n{SMALL}"
    ));
    let out = bad.pipeline(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("trusted key `ed25519:zz` is not valid: not 64 hex digits"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_parquet_inputs_are_named_for_what_they_are() {
    // `PAR1` at both ends, garbage inside: the stage says the file is not valid Parquet.
    let p = Project::new("[stages.pca]\nkind = \"pca\"\ninputs = [\"data/x.parquet\"]\n");
    p.write("data/x.parquet", b"PAR1 this is not parquet at all PAR1");
    let out = p.pipeline(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("error: stage `pca` failed: "), "{err}");
    assert!(err.contains("data/x.parquet"), "{err}");
    assert!(!err.contains("missing"), "{err}");

    // A NaN in a feature is named by column and row before any decomposition.
    let source = Project::new(SMALL);
    run_ok(&source);
    let script = format!(
        "import pyarrow.parquet as pq, pyarrow as pa, numpy as np\n\
         t = pq.read_table({:?})\n\
         col = t.column(3).to_numpy().copy(); col[4] = np.nan\n\
         t = t.set_column(3, t.schema.field(3).name, pa.array(col))\n\
         pq.write_table(t, {:?})\n",
        source
            .file("outputs/standardize/zscore.parquet")
            .display()
            .to_string(),
        p.file("data/x.parquet").display().to_string(),
    );
    let python = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(python.status.success(), "{}", stderr(&python));
    let out = p.pipeline(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("data/x.parquet: column `"), "{err}");
    assert!(err.contains("` holds NaN at row 5 (track "), "{err}");
    assert!(err.contains("every value must be a finite number"), "{err}");
}

#[test]
fn a_lock_file_that_cannot_be_written_is_reported_once_and_json_still_prints() {
    let p = Project::new(SMALL);
    // A folder where pipeline.lock goes: every stage succeeds, the record of them cannot.
    std::fs::create_dir(p.file("pipeline.lock")).unwrap();
    let out = p.pipeline(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot write pipeline.lock: "),
        "{report}"
    );
    let err = stderr(&out);
    assert_eq!(
        err.matches("cannot write pipeline.lock").count(),
        1,
        "{err}"
    );
}

#[test]
fn small_tables_keep_their_schema_whatever_their_values() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let nullability = |p: &Project| -> Vec<String> {
        let file = std::fs::File::open(p.file("outputs/standardize/stats.parquet")).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        schema
            .columns()
            .iter()
            .map(|c| {
                format!(
                    "{}:{:?}",
                    c.name(),
                    c.self_type().get_basic_info().repetition()
                )
            })
            .collect()
    };
    let a = Project::new(SMALL);
    run_ok(&a);
    let b = Project::new(&SMALL.replace("seed = 5", "seed = 6"));
    run_ok(&b);
    assert_eq!(nullability(&a), nullability(&b));
    assert!(
        nullability(&a).iter().all(|c| c.ends_with(":OPTIONAL")),
        "{:?}",
        nullability(&a)
    );
}
