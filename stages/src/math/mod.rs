//! Numerical code with no file formats in it: linear algebra (faer), special functions,
//! vectorised column sums, scaling statistics, PCA, the exact k-NN search kernel and its
//! vote, the LDA model, ridge regression, histogram gradient-boosted trees and rank-based
//! scores.

pub mod column_sums;
pub mod knn_search;
pub mod knn_vote;
pub mod lda;
pub mod linalg;
pub mod pca;
pub mod ranking;
pub mod ridge;
pub mod scaling;
pub mod special;
pub mod trees;
