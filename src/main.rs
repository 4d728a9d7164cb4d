//! The `kindling` binary: parse arguments, run one command, turn the outcome into an exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let output = args.output;
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            cli::report_error(&err, output);
            ExitCode::from(cli::exit_code(&err))
        }
    }
}
