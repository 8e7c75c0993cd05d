//! `burst results ID`: the results of a finished flare.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::client::{Client, Connection, block_on};
use crate::report::ResultDoc;

/// Arguments of `burst results`.
#[derive(Args)]
pub struct ResultsArgs {
    /// The flare.
    id: String,
    /// Print one JSON document instead of a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub fn run(args: ResultsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    block_on(print_results(&client, &args.id, args.json))?
}

/// Prints a flare's results; exit status 1 when it failed.
pub async fn print_results(client: &Client, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let doc: ResultDoc = client.get(&format!("/v1/flares/{id}/results")).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let first = doc.workers.iter().map(|w| w.start_us).min().unwrap_or(0);
        let last = doc.workers.iter().map(|w| w.end_us).max().unwrap_or(first);
        print!("{}", doc.summary(Duration::from_micros(last.saturating_sub(first))));
    }
    Ok(match &doc.failure {
        Some(failure) => {
            eprintln!("error: flare {id} failed: {failure}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    })
}
