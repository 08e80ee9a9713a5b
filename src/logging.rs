//! Log setup: `tracing` to stderr, level from `-v`/`-q` or `PIPELINE_LOG`.
//!
//! stdout is reserved for results (tables, JSON), so logs never mix into them.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("PIPELINE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,pipeline={default},stages={default}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::live_view::LogWriter)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
