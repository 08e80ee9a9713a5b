//! Numerical code with no file formats in it: linear algebra (faer), special functions,
//! scaling statistics, PCA, the exact k-NN search kernel and its vote, the LDA model.

pub mod knn_search;
pub mod knn_vote;
pub mod lda;
pub mod linalg;
pub mod pca;
pub mod scaling;
pub mod special;
