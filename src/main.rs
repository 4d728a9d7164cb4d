//! The `kindling` binary: parse arguments, run one command, turn the outcome into an exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(usage) => return cli::report_usage(usage),
    };
    let output = args.output;
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            cli::report_error(&err, output);
            ExitCode::from(cli::exit_code(&err))
        }
    }
}

/// `kindling … | head -1`: once the reader has gone, what is left to print has no one to read
/// it. Rust ignores SIGPIPE, so the next print panics ("failed printing to stdout: Broken
/// pipe", exit 101); end quietly instead, as ripgrep does. Every other panic is reported as
/// usual.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("Broken pipe") || message.contains("BrokenPipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
