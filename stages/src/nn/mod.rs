//! Dense networks: layers, loss and optimiser (`layers`), and the training loop, evaluation
//! and artifacts the neural kinds share (`training`).

pub mod layers;
pub mod training;
