//! The `kiln` command line.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = kiln::cli::Cli::parse();
    match kiln::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
