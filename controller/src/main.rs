//! `burst`: run burst-parallel WebAssembly work functions.
//!
//! One file per subcommand; this one parses the command line, sets up
//! logging (quiet unless `BURST_LOG` says otherwise) and dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod report;
mod run;
mod sandbox;

#[derive(Parser)]
#[command(name = "burst", version, about = "Run burst-parallel jobs of WebAssembly workers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a flare of a work function in this process.
    Run(run::RunArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BURST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
