//! Rank-based scores: ROC-AUC, average precision (PR-AUC) and Spearman's correlation, with
//! ties handled as scikit-learn and scipy do (tied scores share one step; tied values share
//! their mean rank), so the figures can be checked against them.

/// Mean ranks (1-based) of `values`, ties sharing the mean of the ranks they span.
pub fn mid_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end share their mean.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Area under the ROC curve of `scores` for the positives in `truth` (the Mann-Whitney U
/// statistic over the product of the class sizes); `None` when one class is empty.
pub fn roc_auc(scores: &[f64], truth: &[bool]) -> Option<f64> {
    let positives = truth.iter().filter(|t| **t).count();
    let negatives = truth.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let ranks = mid_ranks(scores);
    let rank_sum: f64 = ranks
        .iter()
        .zip(truth)
        .filter(|(_, t)| **t)
        .map(|(r, _)| r)
        .sum();
    let u = rank_sum - (positives * (positives + 1)) as f64 / 2.0;
    Some(u / (positives as f64 * negatives as f64))
}

/// Average precision: the sum over score thresholds, highest first, of precision times the
/// recall gained there (scikit-learn's `average_precision_score`); `None` without positives.
pub fn average_precision(scores: &[f64], truth: &[bool]) -> Option<f64> {
    let positives = truth.iter().filter(|t| **t).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut true_pos, mut seen, mut recall_before, mut area) = (0usize, 0usize, 0.0, 0.0);
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            true_pos += usize::from(truth[order[end]]);
            end += 1;
        }
        seen += end - start;
        let recall = true_pos as f64 / positives as f64;
        area += (recall - recall_before) * true_pos as f64 / seen as f64;
        recall_before = recall;
        start = end;
    }
    Some(area)
}

/// Spearman's rank correlation of `a` and `b`: Pearson's correlation of their mid ranks;
/// `None` when either is constant or they are shorter than two.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    pearson(&mid_ranks(a), &mid_ranks(b))
}

/// Pearson's correlation; `None` when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (mean_a, mean_b) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - mean_a, y - mean_b);
        ab += dx * dy;
        aa += dx * dx;
        bb += dy * dy;
    }
    (aa > 0.0 && bb > 0.0).then(|| ab / (aa * bb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_their_mean_rank() {
        assert_eq!(mid_ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn roc_auc_matches_hand_counts() {
        // Pairs (positive, negative) ordered right: (0.8>0.1), (0.8>0.4), (0.35<0.4), (0.35>0.1).
        let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
        assert_eq!(auc, Some(0.75));
        // A tie counts half.
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(roc_auc(&[0.5, 0.4], &[true, true]), None);
    }

    #[test]
    fn average_precision_matches_scikit_learn() {
        // sklearn.metrics.average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        // = 0.8333333333333333
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
        assert!((ap.unwrap_or(0.0) - 0.833_333_333_333_333_3).abs() < 1e-12);
        // Tied scores are one step: sklearn gives 0.5 for [1, 0] scored [0.5, 0.5].
        assert_eq!(average_precision(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(average_precision(&[0.5], &[false]), None);
    }

    #[test]
    fn spearman_is_pearson_of_ranks() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 35.0]), Some(1.0));
        let rho = spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]).unwrap_or(0.0);
        // scipy.stats.spearmanr: 0.8
        assert!((rho - 0.8).abs() < 1e-12);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
    }
}
