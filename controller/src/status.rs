//! `burst status ID`: where a flare is.

use std::process::ExitCode;

use clap::Args;

use crate::api::FlareDoc;
use crate::client::{Client, Connection, block_on};

/// Arguments of `burst status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The flare.
    id: String,
    /// Print the state as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    let doc: FlareDoc = block_on(client.get(&format!("/v1/flares/{}", args.id)))??;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "flare {}: {} ({} v{}, {} workers, {} started, {} finished, packing {}, backend {})",
            doc.flare_id,
            doc.status.as_str(),
            doc.definition,
            doc.version,
            doc.burst_size,
            doc.workers_started,
            doc.workers_finished,
            doc.packing,
            doc.backend
        );
        if let Some(failure) = &doc.failure {
            println!("failed: {failure}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
