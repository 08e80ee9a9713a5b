//! `report`: one self-contained HTML page with every figure and table of the analysis.
//!
//! Figures are inlined SVG, styles and the one script are inline, and a Content Security
//! Policy forbids any request, so the page opens offline from a file. Each section says in
//! one sentence what it shows and which stage, parameters and cache key it came from. The
//! script marks on `<body>` how many figures rendered, for the browser test.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::io::parquet::read_batches;
use crate::io::stage_results::{gather, StageResults};
use crate::kind::{InputSpec, OutputSpec, Params, Stage, StageIo};

/// Parameters of `report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportParams {
    /// The page title.
    pub title: String,
}

impl Default for ReportParams {
    fn default() -> Self {
        Self {
            title: "Music genres in the Free Music Archive".into(),
        }
    }
}

impl Params for ReportParams {}

/// The report stage.
pub struct Report;

impl Stage for Report {
    type Params = ReportParams;
    const KIND: &'static str = "report";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::variadic("results")
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![OutputSpec::new("html", "index.html")]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let stages = gather(io)?;
        let mut page = Page::default();
        // Sections in the order of the analysis, whatever order the inputs came in.
        let order = [
            "explore",
            "pca",
            "lsi",
            "lda",
            "knn",
            "classifier",
            "autoencoder",
            "encoded_classifier",
            "balanced_classifier",
            "popularity",
        ];
        findings(&mut page, &stages, &order);
        split_comparison(&mut page, &stages, &order);
        for kind in order {
            for (name, results) in stages.iter().filter(|(_, r)| r.kind() == kind) {
                match kind {
                    "explore" => explore(&mut page, name, results)?,
                    "pca" => pca(&mut page, name, results)?,
                    "lsi" | "lda" => topics(&mut page, name, results)?,
                    "knn" => knn(&mut page, name, results)?,
                    "balanced_classifier" => balanced(&mut page, name, results)?,
                    "popularity" => popularity(&mut page, name, results)?,
                    _ => neural(&mut page, name, results)?,
                }
            }
        }
        let html = page.render(&params.title);
        std::fs::write(io.output("index.html"), html)
            .map_err(Error::io("write", &io.output("index.html")))
    }
}

#[derive(Default)]
struct Page {
    body: String,
    toc: Vec<(String, String)>,
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Page {
    fn section(
        &mut self,
        id: &str,
        title: &str,
        sentence: &str,
        name: &str,
        results: &StageResults,
    ) {
        self.toc.push((id.to_owned(), title.to_owned()));
        let key = results
            .provenance
            .get(crate::provenance::KEY)
            .map_or("", String::as_str);
        let params = results
            .provenance
            .get(crate::provenance::PARAMS)
            .map_or("{}", String::as_str);
        let _ = write!(
            self.body,
            "<section id=\"{id}\"><h2>{}</h2><p>{}</p><p class=\"prov\">stage <code>{}</code> (kind <code>{}</code>), parameters <code>{}</code>, cache key <code>{}</code></p>",
            esc(title),
            esc(sentence),
            esc(name),
            esc(results.kind()),
            esc(params),
            esc(&key[..key.len().min(16)])
        );
    }

    fn end(&mut self) {
        self.body.push_str("</section>\n");
    }

    fn figure(&mut self, results: &StageResults, output: &str, caption: &str) -> Result<()> {
        let Some(path) = results.output(output) else {
            return Ok(());
        };
        let svg = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
        let svg = svg.trim_start_matches(|c| c != '<');
        let svg = svg
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
            .unwrap_or(svg);
        let _ = write!(
            self.body,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            esc(caption)
        );
        Ok(())
    }

    fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        self.body.push_str("<table><thead><tr>");
        for h in header {
            let _ = write!(self.body, "<th>{}</th>", esc(h));
        }
        self.body.push_str("</tr></thead><tbody>");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let _ = write!(self.body, "<td>{}</td>", esc(cell));
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</tbody></table>");
    }

    fn paragraph(&mut self, text: &str) {
        let _ = write!(self.body, "<p>{}</p>", esc(text));
    }

    fn list(&mut self, items: &[String]) {
        self.body.push_str("<ol class=\"topics\">");
        for item in items {
            let _ = write!(self.body, "<li><code>{}</code></li>", esc(item));
        }
        self.body.push_str("</ol>");
    }

    fn render(&self, title: &str) -> String {
        let mut toc = String::new();
        for (id, t) in &self.toc {
            let _ = write!(toc, "<li><a href=\"#{id}\">{}</a></li>", esc(t));
        }
        format!(
            r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }}
h1 {{ font-size: 1.7em; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }}
figure {{ margin: 1em 0; }} figure svg {{ max-width: 100%; height: auto; }} figcaption {{ color: #555; font-size: .9em; }}
table {{ border-collapse: collapse; margin: .8em 0; font-size: .9em; }} td, th {{ border: 1px solid #ddd; padding: .25em .6em; text-align: left; }}
.prov {{ color: #666; font-size: .85em; }} code {{ font-size: .9em; }} ol.topics code {{ white-space: normal; }}
</style></head>
<body>
<h1>{title}</h1>
<p>Every figure and table below was produced by a cached pipeline stage; each section names the stage, its parameters and its cache key.</p>
<nav><ol>{toc}</ol></nav>
{body}
<script>
(function () {{
  var figures = document.querySelectorAll('figure svg');
  var rendered = 0;
  figures.forEach(function (svg) {{ var box = svg.getBoundingClientRect(); if (box.width > 0 && box.height > 0 && svg.childElementCount > 0) rendered++; }});
  document.body.setAttribute('data-figures-total', String(figures.length));
  document.body.setAttribute('data-figures-rendered', String(rendered));
}})();
</script>
</body></html>
"#,
            title = esc(title),
            body = self.body
        )
    }
}

fn num(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn explore(page: &mut Page, name: &str, r: &StageResults) -> Result<()> {
    page.section(&format!("{name}-genres"), "The most and least frequent genres", "Genre occurrence counts over all tracks: a few genres dominate and most are rare, so the labels are heavily imbalanced.", name, r);
    if let Some(path) = r.output("top_bottom") {
        let (schema, batches) = read_batches(path)?;
        let mut rows = Vec::new();
        for batch in &batches {
            let column = |n: &str| schema.index_of(n).ok().map(|i| batch.column(i).clone());
            if let (Some(list), Some(rank), Some(genre), Some(tracks)) = (
                column("list"),
                column("rank"),
                column("genre"),
                column("tracks"),
            ) {
                for i in 0..batch.num_rows() {
                    let cell = |a: &arrow_array::ArrayRef| arrow_cast_string(a, i);
                    let mut name = cell(&genre);
                    if cell(&tracks) == "0" {
                        name.push_str(" (no tracks in this data)");
                    }
                    rows.push(vec![cell(&list), cell(&rank), name, cell(&tracks)]);
                }
            }
        }
        page.table(&["list", "rank", "genre", "tracks"], &rows);
    }
    page.figure(r, "top_genres_figure", "The ten most frequent genres.")?;
    page.figure(r, "bottom_genres_figure", "The ten least frequent genres.")?;
    page.end();
    page.section(
        &format!("{name}-occurrence"),
        "How often genres occur",
        "A histogram of per-genre track counts (50 bins): most genres occur on few tracks.",
        name,
        r,
    );
    page.figure(
        r,
        "occurrence_figure",
        "Histogram of genre occurrence counts.",
    )?;
    page.end();
    page.section(
        &format!("{name}-listens"),
        "Listens",
        "The distribution of listens per track (log scale): popularity is heavy-tailed.",
        name,
        r,
    );
    page.figure(r, "listens_figure", "Histogram of log10(listens + 1).")?;
    page.end();
    Ok(())
}

fn arrow_cast_string(array: &arrow_array::ArrayRef, i: usize) -> String {
    use arrow_array::Array;
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<arrow_array::StringArray>() {
        return a.value(i).to_owned();
    }
    if let Some(a) = any.downcast_ref::<arrow_array::Int64Array>() {
        return a.value(i).to_string();
    }
    if let Some(a) = any.downcast_ref::<arrow_array::UInt32Array>() {
        return a.value(i).to_string();
    }
    if let Some(a) = any.downcast_ref::<arrow_array::Float64Array>() {
        return format!("{:.4}", a.value(i));
    }
    if array.is_null(i) {
        String::new()
    } else {
        "?".into()
    }
}

fn pca(page: &mut Page, name: &str, r: &StageResults) -> Result<()> {
    let m = r.metrics.as_ref();
    let k = m
        .and_then(|m| m.get("components_for_threshold"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let t = num(m.and_then(|m| m.get("threshold")));
    let kept = m
        .and_then(|m| m.get("n_components"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let share = num(m.and_then(|m| m.get("explained_by_kept")));
    page.section(name, "PCA of the audio features", &format!("Cumulative explained variance of the z-scored features against the number of principal components: {k} components explain {:.0}% of the variance; the {kept} kept explain {:.1}%.", t * 100.0, share * 100.0), name, r);
    page.figure(
        r,
        "figure",
        "Cumulative explained variance ratio against components.",
    )?;
    page.end();
    Ok(())
}

fn topics(page: &mut Page, name: &str, r: &StageResults) -> Result<()> {
    let m = r.metrics.as_ref();
    let printed: Vec<String> = m
        .and_then(|m| m.get("topics_text").or_else(|| m.get("topics")))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if r.kind() == "lsi" {
        let correct = m
            .and_then(|m| m.get("topics_for_threshold"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let original = m
            .and_then(|m| m.get("topics_for_threshold_original_method"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let t = num(m.and_then(|m| m.get("threshold")));
        page.section(name, "LSI of the genre space", &format!("Cumulative variance of the genre space explained by LSI topics: {correct} topics reach {:.0}% when computed from squared singular values; the original method (unsquared, off by one) reads {original}.", t * 100.0), name, r);
        page.figure(
            r,
            "figure",
            "Cumulative share against topics, correct and as the original computed it.",
        )?;
        page.paragraph(
            "The first topics, as gensim prints them (signs of singular vectors are arbitrary):",
        );
        page.list(&printed);
    } else {
        let bound = num(m.and_then(|m| m.get("per_word_bound")));
        let perplexity = num(m.and_then(|m| m.get("perplexity")));
        page.section(name, "LDA topics of the genre space", &format!("Latent Dirichlet allocation groups genres into topics with positive weights; final per-word bound {bound:.3} (perplexity {perplexity:.2})."), name, r);
        page.figure(r, "figure", "Per-word bound after each pass.")?;
        page.paragraph("The first ten topics, as gensim prints them:");
        page.list(&printed.into_iter().take(10).collect::<Vec<_>>());
    }
    page.end();
    Ok(())
}

fn knn(page: &mut Page, name: &str, r: &StageResults) -> Result<()> {
    let m = r.metrics.as_ref();
    let best = m
        .and_then(|m| m.get("k_best"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let jb = num(m.and_then(|m| m.get("jaccard_best")));
    page.section(name, &format!("k-NN genre prediction: {name}"), &format!("Mean Jaccard index (± std over random splits) of k-nearest-neighbour predictions against k; the best is k = {best} with {jb:.3}."), name, r);
    page.figure(r, "jaccard_figure", "Mean Jaccard index against k.")?;
    let arr = |key: &str| -> Vec<f64> {
        m.and_then(|m| m.get(key))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let (jm, js, one) = (
        arr("jaccard_mean"),
        arr("jaccard_std"),
        arr("at_least_one_right"),
    );
    let rows: Vec<Vec<String>> = (0..jm.len())
        .map(|i| {
            vec![
                (i + 1).to_string(),
                format!("{:.4}", jm[i]),
                format!("{:.4}", js.get(i).copied().unwrap_or(f64::NAN)),
                format!("{:.1}%", one.get(i).copied().unwrap_or(f64::NAN) * 100.0),
            ]
        })
        .collect();
    page.table(
        &["k", "mean Jaccard", "std", "at least one label right"],
        &rows,
    );
    page.figure(
        r,
        "histogram_figure",
        "Per-track Jaccard index at the best k (first split).",
    )?;
    page.figure(
        r,
        "true_labels_figure",
        "Mean Jaccard index against the number of true labels.",
    )?;
    page.end();
    Ok(())
}

fn neural(page: &mut Page, name: &str, r: &StageResults) -> Result<()> {
    page.section(
        name,
        &format!("Neural network: {name}"),
        "Training curves and evaluation of the network.",
        name,
        r,
    );
    for (output, caption) in [
        ("loss_figure", "Loss per epoch, training and held out."),
        (
            "threshold_figure",
            "Jaccard index against the output threshold.",
        ),
        (
            "per_genre_figure",
            "Per-genre accuracy against precision and recall at the best threshold.",
        ),
    ] {
        page.figure(r, output, caption)?;
    }
    page.end();
    Ok(())
}

/// The headline figure of every model stage, beside the original analysis' where it reported
/// one: "what this run found", at the top of the page.
fn findings(
    page: &mut Page,
    stages: &std::collections::BTreeMap<String, StageResults>,
    order: &[&str],
) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let f = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
    };
    let in_order = order
        .iter()
        .flat_map(|kind| stages.iter().filter(move |(_, r)| r.kind() == *kind));
    for (name, r) in in_order {
        let Some(m) = &r.metrics else { continue };
        let num = |k: &str| m[k].as_f64();
        let at_best = |k: &str| {
            let best = m["k_best"].as_u64()?;
            let i = m["k"]
                .as_array()?
                .iter()
                .position(|k| k.as_u64() == Some(best))?;
            m[k].get(i)?.as_f64()
        };
        let link = name.clone();
        match r.kind() {
            "pca" => rows.push(vec![
                link,
                format!("components for {} of the variance", f(num("threshold"), 2)),
                f(num("components_for_threshold"), 0),
                "about 155".into(),
            ]),
            "lsi" => rows.push(vec![
                link,
                format!(
                    "topics for {} (squared singular values; the original's method in brackets)",
                    f(num("threshold"), 2)
                ),
                format!(
                    "{} ({})",
                    f(num("topics_for_threshold"), 0),
                    f(num("topics_for_threshold_original_method"), 0)
                ),
                "about 70 (original's method)".into(),
            ]),
            "lda" => rows.push(vec![
                link,
                "per-word bound".into(),
                f(num("per_word_bound"), 3),
                "not reported".into(),
            ]),
            "knn" => {
                let split = m["split"].as_str().unwrap_or("random");
                rows.push(vec![
                    link.clone(),
                    format!("best k and its mean Jaccard ({split} split)"),
                    format!("k = {}: {}", f(num("k_best"), 0), f(num("jaccard_best"), 3)),
                    "k = 1: about 0.33".into(),
                ]);
                rows.push(vec![
                    link,
                    "test tracks with at least one genre right".into(),
                    f(at_best("at_least_one_right"), 3),
                    "about 0.40".into(),
                ]);
            }
            "classifier" | "encoded_classifier" => {
                rows.push(vec![
                    link.clone(),
                    "best Jaccard (threshold)".into(),
                    format!(
                        "{} ({})",
                        f(num("jaccard_best"), 3),
                        f(num("threshold_best"), 2)
                    ),
                    "approach 2 beats approach 1 and k-NN".into(),
                ]);
                rows.push(vec![
                    link,
                    "mean per-genre accuracy, precision, recall".into(),
                    format!(
                        "{} / {} / {}",
                        f(num("mean_accuracy"), 3),
                        f(num("mean_precision_where_defined"), 3),
                        f(num("mean_recall_where_defined"), 3)
                    ),
                    "about 0.98 accuracy; precision and recall mostly under 0.80".into(),
                ]);
            }
            "balanced_classifier" => rows.push(vec![
                link,
                format!(
                    "macro F1 over genres, balanced (unbalanced), {} split",
                    m["split"].as_str().unwrap_or("?")
                ),
                format!(
                    "{} ({})",
                    f(num("macro_f1"), 3),
                    f(num("macro_f1_unbalanced"), 3)
                ),
                "proposed as future work".into(),
            ]),
            "popularity" => {
                for set in ["audio", "audio+metadata", "audio+engagement"] {
                    let r2 = |model: &str| m["models"][format!("{set}/{model}")]["r2"].as_f64();
                    rows.push(vec![
                        link.clone(),
                        format!("test R² of log(1 + listens) from {set}: ridge / trees"),
                        format!("{} / {}", f(r2("ridge"), 3), f(r2("trees"), 3)),
                        "named as a goal, not modelled".into(),
                    ]);
                }
            }
            "autoencoder" => rows.push(vec![
                link,
                "reconstruction R² on held-out tracks".into(),
                f(num("r2"), 3),
                "reported, value not given".into(),
            ]),
            _ => {}
        }
    }
    if rows.is_empty() {
        return;
    }
    page.body
        .push_str("<section id=\"findings\"><h2>What this run found</h2>\n");
    page.toc
        .push(("findings".into(), "What this run found".into()));
    page.paragraph("Each model stage's headline figure, beside what the original analysis reported. Details, figures and the cache key of each result are in its section below.");
    page.table(&["stage", "figure", "this run", "original analysis"], &rows);
    page.body.push_str("</section>\n");
}

/// The headline score of a stage that can be scored on either split, and what it is.
fn split_score(r: &StageResults) -> Option<(&'static str, f64)> {
    let m = r.metrics.as_ref()?;
    match r.kind() {
        "knn" => Some(("mean Jaccard at k = 1", m["jaccard_mean"].get(0)?.as_f64()?)),
        "classifier" | "encoded_classifier" => Some((
            "Jaccard at the tuned threshold",
            m["jaccard_best"].as_f64()?,
        )),
        "balanced_classifier" => Some(("macro F1 (balanced)", m["macro_f1"].as_f64()?)),
        _ => None,
    }
}

/// Every model scored on both the original's random split and the artist-disjoint FMA split,
/// side by side. Two stages are the same model when their kind, first input and parameters
/// (other than how the split is made) agree, and so do their inputs (the tracks table aside).
fn split_comparison(
    page: &mut Page,
    stages: &std::collections::BTreeMap<String, StageResults>,
    order: &[&str],
) {
    const SPLIT_KEYS: [&str; 6] = [
        "split",
        "repeats",
        "test_fraction",
        "holdout",
        "validation_fraction",
        "seed",
    ];
    // (report order, model) -> (stage, score) on the random and on the FMA split.
    type Sides = [Option<(String, f64)>; 2];
    let mut models: std::collections::BTreeMap<(usize, String), Sides> =
        std::collections::BTreeMap::new();
    let mut what: std::collections::BTreeMap<(usize, String), &'static str> =
        std::collections::BTreeMap::new();
    for (name, r) in stages {
        let (Some((label, score)), Some(m)) = (split_score(r), r.metrics.as_ref()) else {
            continue;
        };
        let side = usize::from(m["split"].as_str() == Some("fma"));
        let mut params: Value = r
            .provenance
            .get(crate::provenance::PARAMS)
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        if let Value::Object(p) = &mut params {
            for key in SPLIT_KEYS {
                p.remove(key);
            }
        }
        // Every input but the tracks table, which only says how to split. A stage whose
        // inputs cannot be read is left out rather than paired on a guess.
        let Some(inputs) = r
            .provenance
            .get(crate::provenance::INPUTS)
            .and_then(|i| serde_json::from_str::<Value>(i).ok())
            .and_then(|i| {
                i.as_array().map(|all| {
                    all.iter()
                        .filter_map(|input| input.get("name").and_then(Value::as_str))
                        .filter(|name| !name.ends_with(":tracks"))
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
            })
        else {
            continue;
        };
        let first_input = inputs.join(", ");
        let rank = order
            .iter()
            .position(|k| *k == r.kind())
            .unwrap_or(order.len());
        let key = (rank, format!("{} on {first_input} {params}", r.kind()));
        what.insert(key.clone(), label);
        models.entry(key).or_default()[side] = Some((name.clone(), score));
    }
    let rows: Vec<Vec<String>> = models
        .iter()
        .filter(|(_, sides)| sides.iter().all(Option::is_some))
        .map(|(key, sides)| {
            let cell = |s: &Option<(String, f64)>| {
                s.as_ref()
                    .map_or_else(|| "-".to_owned(), |(n, v)| format!("{v:.3} ({n})"))
            };
            let model = key.1.split(" {").next().unwrap_or(&key.1).to_owned();
            vec![
                model,
                what.get(key).copied().unwrap_or("").to_owned(),
                cell(&sides[0]),
                cell(&sides[1]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    page.body
        .push_str("<section id=\"splits\"><h2>Random split against artist-disjoint split</h2>\n");
    page.toc.push((
        "splits".into(),
        "Random split against artist-disjoint split".into(),
    ));
    page.paragraph("The original analysis scored every model on random splits, where a test track's album- and artist-mates sit in the training set. The FMA split keeps every artist on one side. The same model on both splits, side by side: where the random-split score is much higher, it mostly measured finding the same artist, not the genre.");
    page.table(
        &[
            "model",
            "score",
            "random split (stage)",
            "artist-disjoint FMA split (stage)",
        ],
        &rows,
    );
    page.body.push_str("</section>\n");
}

fn balanced(page: &mut Page, name: &str, r: &StageResults) -> Result<()> {
    let m = r.metrics.as_ref();
    let get = |k: &str| num(m.and_then(|m| m.get(k)));
    let model = m
        .and_then(|m| m.get("model"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    page.section(
        name,
        &format!("Balanced per-genre classifiers: {name}"),
        &format!(
            "One-vs-rest {model} classifiers, one output per genre, with each genre's positives weighted by its rarity in the training set and its threshold tuned on the validation set, against the same model unweighted and cut at 0.5; scored on the test set."
        ),
        name,
        r,
    );
    let row = |label: &str, suffix: &str| {
        vec![
            label.to_owned(),
            format!("{:.3}", get(&format!("macro_f1{suffix}"))),
            format!("{:.3}", get(&format!("micro_f1{suffix}"))),
            format!("{:.3}", get(&format!("macro_recall{suffix}"))),
            format!("{:.3}", get(&format!("macro_pr_auc{suffix}"))),
        ]
    };
    page.table(
        &[
            "model",
            "macro F1",
            "micro F1",
            "macro recall",
            "macro PR-AUC",
        ],
        &[row("balanced", ""), row("unbalanced", "_unbalanced")],
    );
    page.paragraph(&format!(
        "Macro means are over the {} genres with a test positive (of {}); balancing raised recall for {} of them.",
        get("genres_scored"),
        get("genres"),
        get("genres_with_higher_recall_balanced")
    ));
    page.figure(
        r,
        "figure",
        "Per-genre test recall and F1, balanced (y) against unbalanced (x); above the diagonal, balancing helped.",
    )?;
    page.end();
    Ok(())
}

fn popularity(page: &mut Page, name: &str, r: &StageResults) -> Result<()> {
    page.section(
        name,
        &format!("Popularity: {name}"),
        "How well log(1 + listens) is predicted from the audio features, from audio and what is known at upload, and from those plus the track's own engagement counts; trained on the FMA training set, tuned on validation, scored on test (no artist on two sides).",
        name,
        r,
    );
    let m = r.metrics.as_ref();
    let mut rows = Vec::new();
    for set in ["audio", "audio+metadata", "audio+engagement"] {
        for model in ["mean", "ridge", "trees"] {
            let e = m.and_then(|m| m["models"].get(format!("{set}/{model}")));
            let cell = |k: &str| {
                e.and_then(|e| e.get(k))
                    .and_then(Value::as_f64)
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
            };
            rows.push(vec![
                set.to_owned(),
                model.to_owned(),
                cell("r2"),
                cell("mae"),
                cell("spearman"),
                cell("top10_auc"),
            ]);
        }
    }
    page.table(
        &[
            "features",
            "model",
            "R²",
            "MAE",
            "Spearman",
            "top-10% ROC-AUC",
        ],
        &rows,
    );
    page.paragraph("The engagement counts (favorites, comments, interest) follow from being listened to: the audio+engagement rows measure how much of popularity they explain, not how well a new upload's popularity can be predicted. Listens themselves, and aggregates that contain them such as album.listens, are refused as features.");
    page.figure(r, "r2_figure", "Test R² per feature set and model.")?;
    page.figure(
        r,
        "scatter_figure",
        "Predicted against actual log(1 + listens) of test tracks (trees), per feature set; the line is a perfect prediction.",
    )?;
    page.figure(
        r,
        "importance_figure",
        "The features the trees split on most (share of the total gain), audio and metadata.",
    )?;
    page.end();
    Ok(())
}
