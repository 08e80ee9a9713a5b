//! Which ready stage the local executor starts first, and how many threads it gets.
//!
//! Ready stages start longest chain first: a stage's priority is its estimated seconds plus
//! the longest chain of estimates below it (list scheduling by critical path). Started in
//! declaration order, the autoencoder of the default pipeline, whose chain to the report is
//! the longest, waited behind a dozen shorter stages and ran last, alone. The estimate is the
//! seconds the stage took last time (`pipeline.lock`); a stage never run is assumed to take
//! its time limit (`[stages.NAME.resources] time`, by default 4 h for the training and search
//! kinds, 1 h for the rest), so the unknown starts early.
//!
//! Threads: the pool's threads (`RAYON_NUM_THREADS`, else one per core) are shared out
//! between the stages running at once, evenly, the first started taking what does not divide.
//! A stage running alone gets them all; two beside each other on two cores get one each, so
//! neither pays for splitting work that the other core is busy with anyway. When a stage ends
//! and none is waiting to start, its threads go to the stages still running, longest chain
//! first (`thread_gate.rs`). Nothing a stage computes depends on its thread count.

/// Each stage's estimated seconds of the longest chain from its start to the end of the
/// pipeline, indexed like `estimates`.
///
/// `order` is topological; `downstream(i)` lists the stages that read from stage `i`.
pub(crate) fn critical_paths<'a>(
    order: &[usize],
    downstream: impl Fn(usize) -> &'a [usize],
    estimates: &[f64],
) -> Vec<f64> {
    let mut chain = estimates.to_vec();
    for &index in order.iter().rev() {
        let below = downstream(index)
            .iter()
            .map(|&d| chain[d])
            .fold(0.0, f64::max);
        chain[index] = estimates[index] + below;
    }
    chain
}

/// The ready stages to start now, at most `slots` of them: longest chain first, then in
/// declaration order (`position`).
pub(crate) fn pick(
    ready: &[usize],
    slots: usize,
    chain: &[f64],
    position: impl Fn(usize) -> usize,
) -> Vec<usize> {
    let mut picked = ready.to_vec();
    picked.sort_by(|&a, &b| {
        chain[b]
            .total_cmp(&chain[a])
            .then_with(|| position(a).cmp(&position(b)))
    });
    picked.truncate(slots);
    picked
}

/// Threads for each of `starting` stages, out of the `free` ones left by the stages already
/// running: an even share, the remainder to the first; at least one each, even when every
/// thread is taken.
pub(crate) fn shares(free: usize, starting: usize) -> Vec<usize> {
    if starting == 0 {
        return Vec::new();
    }
    let (each, rest) = (free / starting, free % starting);
    (0..starting)
        .map(|i| (each + usize::from(i < rest)).max(1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_chain_below_a_stage_counts() {
        // 0 -> 1 -> 3, 0 -> 2 -> 3: through 2 is longer.
        let downstream = [vec![1, 2], vec![3], vec![3], vec![]];
        let chain = critical_paths(&[0, 1, 2, 3], |i| &downstream[i], &[1.0, 5.0, 20.0, 2.0]);
        assert_eq!(chain, vec![23.0, 7.0, 22.0, 2.0]);
    }

    #[test]
    fn ready_stages_start_longest_chain_first_then_in_declaration_order() {
        let chain = [3.0, 9.0, 3.0, 1.0];
        assert_eq!(pick(&[0, 1, 2, 3], 2, &chain, |i| i), vec![1, 0]);
        assert_eq!(pick(&[3, 2, 0], 5, &chain, |i| i), vec![0, 2, 3]);
        // Declaration order, not index order, breaks ties.
        assert_eq!(pick(&[0, 2], 1, &chain, |i| 10 - i), vec![2]);
        assert!(pick(&[0, 1], 0, &chain, |i| i).is_empty());
    }

    #[test]
    fn threads_are_shared_evenly_and_every_stage_gets_one() {
        assert_eq!(shares(2, 1), vec![2]);
        assert_eq!(shares(2, 2), vec![1, 1]);
        assert_eq!(shares(8, 3), vec![3, 3, 2]);
        assert_eq!(shares(1, 2), vec![1, 1]);
        assert_eq!(shares(0, 1), vec![1]);
        assert!(shares(4, 0).is_empty());
    }
}
