//! `burst`: run burst-parallel WebAssembly work functions.
//!
//! One file per subcommand; this one parses the command line, sets up
//! logging (quiet unless `BURST_LOG` says otherwise) and dispatches.
//! `run` runs a flare in this process; `serve` is the controller
//! ([`service`]); `host` is a host daemon of a controller; `deploy`,
//! `flare`, `status`, `results` and `list` are its clients.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod api;
mod client;
mod datasets;
mod deploy;
mod execute;
mod flare;
mod host;
mod list;
mod outputs;
mod report;
mod results;
mod run;
mod sandbox;
mod serve;
mod service;
mod status;

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
    /// Run the controller (HTTP API, store, admission) with an embedded host.
    Serve(serve::ServeArgs),
    /// Run a host daemon that runs packs for a controller.
    Host(host::HostArgs),
    /// Deploy a work function to the controller under a name.
    Deploy(deploy::DeployArgs),
    /// Start a flare of a deployed work function.
    Flare(flare::FlareArgs),
    /// Show where a flare is.
    Status(status::StatusArgs),
    /// Show the results of a finished flare.
    Results(results::ResultsArgs),
    /// List your definitions and flares.
    List(list::ListArgs),
}

/// mimalloc keeps freed memory for reuse: the host's message buffers (frames
/// of a megabyte, reassembled messages) would otherwise be mapped, faulted
/// in page by page and unmapped again by the system allocator on every
/// message, which costs more than copying them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BURST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let done = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Serve(args) => done(serve::run(args)),
        Command::Host(args) => done(host::run(args)),
        Command::Deploy(args) => done(deploy::run(args)),
        Command::Flare(args) => flare::run(args),
        Command::Status(args) => status::run(args),
        Command::Results(args) => results::run(args),
        Command::List(args) => done(list::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
