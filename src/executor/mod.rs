//! Where the stages that must run are computed: on threads of this process (`local.rs`, the
//! default) or as Slurm jobs (`slurm/`), each running `pipeline worker` (`worker.rs`) from a
//! [`job_spec::JobSpec`]. Either way the result enters the cache by the same atomic commit
//! (`publish.rs`), and the runner publishes it the same way.

pub mod job_spec;
pub(crate) mod local;
pub mod resources;
pub(crate) mod scheduling;
pub mod settings;
pub mod slurm;
pub(crate) mod thread_gate;
pub mod worker;

pub use resources::Resources;
pub use settings::{Exchange, ExecutorKind, ExecutorSettings};
