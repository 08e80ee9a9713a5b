//! The `pipeline` binary: parse arguments, run one command, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use pipeline::cli::{execute, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    pipeline::logging::init(cli.verbose, cli.quiet);
    match execute(cli) {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            pipeline::error::exit_for(&err).into()
        }
    }
}
