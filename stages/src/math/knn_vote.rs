//! The k-NN vote and its scores: a label is predicted when at least half of the k neighbours
//! have it (the original's `round(mean + 0.01)`), scored per track with the Jaccard index and
//! per label with precision, recall and F1.

/// Scores of one (repeat, k).
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// Mean Jaccard index over test tracks.
    pub jaccard: f64,
    /// Share of test tracks with at least one label right.
    pub at_least_one: f64,
    /// Micro-averaged precision, recall, F1.
    pub micro: (f64, f64, f64),
    /// Macro-averaged precision, recall, F1 over labels where each is defined.
    pub macro_avg: (f64, f64, f64),
    /// Per label: (support, predicted, true positives).
    pub per_label: Vec<(u64, u64, u64)>,
    /// Per test track: (jaccard, true labels, predicted labels).
    pub per_track: Vec<(f64, u32, u32)>,
}

/// Votes with the first `k` neighbours and scores against `truth`.
pub fn score(
    neighbours: &[Vec<usize>],
    k: usize,
    train_labels: &[Vec<bool>],
    truth: &[Vec<bool>],
) -> Scores {
    let labels = truth.first().map_or(0, Vec::len);
    let mut per_label = vec![(0u64, 0u64, 0u64); labels];
    let mut per_track = Vec::with_capacity(truth.len());
    let mut counts = vec![0usize; labels];
    for (nb, t) in neighbours.iter().zip(truth) {
        counts.iter_mut().for_each(|c| *c = 0);
        let used = k.min(nb.len());
        for &n in &nb[..used] {
            for (c, has) in counts.iter_mut().zip(&train_labels[n]) {
                *c += usize::from(*has);
            }
        }
        let (mut inter, mut union, mut n_true, mut n_pred) = (0u32, 0u32, 0u32, 0u32);
        for l in 0..labels {
            let p = counts[l] * 2 >= used && used > 0;
            let tr = t[l];
            inter += u32::from(p && tr);
            union += u32::from(p || tr);
            n_true += u32::from(tr);
            n_pred += u32::from(p);
            per_label[l].0 += u64::from(tr);
            per_label[l].1 += u64::from(p);
            per_label[l].2 += u64::from(p && tr);
        }
        let j = if union == 0 {
            1.0
        } else {
            f64::from(inter) / f64::from(union)
        };
        per_track.push((j, n_true, n_pred));
    }
    let n = per_track.len().max(1) as f64;
    let (tp, pred, sup) = per_label
        .iter()
        .fold((0u64, 0u64, 0u64), |a, l| (a.0 + l.2, a.1 + l.1, a.2 + l.0));
    let f1 = |p: f64, r: f64| {
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    };
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let micro_p = ratio(tp, pred);
    let micro_r = ratio(tp, sup);
    let precisions: Vec<f64> = per_label
        .iter()
        .filter(|l| l.1 > 0)
        .map(|l| l.2 as f64 / l.1 as f64)
        .collect();
    let recalls: Vec<f64> = per_label
        .iter()
        .filter(|l| l.0 > 0)
        .map(|l| l.2 as f64 / l.0 as f64)
        .collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let f1s: Vec<f64> = per_label
        .iter()
        .filter(|l| l.0 > 0 || l.1 > 0)
        .map(|l| f1(ratio(l.2, l.1), ratio(l.2, l.0)))
        .collect();
    Scores {
        jaccard: per_track.iter().map(|t| t.0).sum::<f64>() / n,
        at_least_one: per_track.iter().filter(|t| t.0 > 0.0).count() as f64 / n,
        micro: (micro_p, micro_r, f1(micro_p, micro_r)),
        macro_avg: (mean(&precisions), mean(&recalls), mean(&f1s)),
        per_label,
        per_track,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voting_and_jaccard_follow_the_original() {
        // Two test tracks, three training tracks, three labels.
        let train = vec![
            vec![true, false, false],
            vec![true, true, false],
            vec![false, true, true],
        ];
        let truth = vec![vec![true, true, false], vec![false, false, true]];
        let neighbours = vec![vec![0, 1, 2], vec![2, 0, 1]];
        let k1 = score(&neighbours, 1, &train, &truth);
        // Track 1 predicts {0}: J = 1/2. Track 2 predicts {1, 2}: J = 1/2.
        assert!((k1.jaccard - 0.5).abs() < 1e-12);
        assert_eq!(k1.at_least_one, 1.0);
        let k2 = score(&neighbours, 2, &train, &truth);
        // Track 1: label 0 by 2 of 2, label 1 by 1 of 2 (half counts) -> {0, 1}: J = 1.
        assert!((k2.per_track[0].0 - 1.0).abs() < 1e-12);
        // Track 2: neighbours 2 and 0 -> labels 0, 1, 2 each by 1 of 2 -> {0,1,2}: J = 1/3.
        assert!((k2.per_track[1].0 - 1.0 / 3.0).abs() < 1e-12);
    }
}
