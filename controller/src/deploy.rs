//! `burst deploy NAME FILE.wasm`: upload a work function to the controller.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;

use crate::api::Definition;
use crate::client::{Client, Connection, block_on};

/// Arguments of `burst deploy`.
#[derive(Args)]
pub struct DeployArgs {
    /// The name flares will use.
    name: String,
    /// The component (built for wasm32-wasip2).
    file: PathBuf,
    /// Default workers per pack of its flares.
    #[arg(long, short = 'g')]
    granularity: Option<u32>,
    /// Default linear memory cap of each worker, in bytes.
    #[arg(long)]
    memory_bytes: Option<u64>,
    /// Default deadline of its flares, in milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    #[command(flatten)]
    connection: Connection,
}

pub fn run(args: DeployArgs) -> anyhow::Result<()> {
    let wasm = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let client = Client::new(&args.connection)?;
    let mut query = Vec::new();
    if let Some(g) = args.granularity {
        query.push(("granularity", g.to_string()));
    }
    if let Some(m) = args.memory_bytes {
        query.push(("memory_bytes", m.to_string()));
    }
    if let Some(d) = args.deadline_ms {
        query.push(("deadline_ms", d.to_string()));
    }
    let request = client
        .request(Method::POST, &format!("/v1/definitions/{}", args.name))
        .query(&query)
        .header(CONTENT_TYPE, "application/wasm")
        .body(wasm);
    let definition: Definition = block_on(client.json(request))??;
    let version = definition.current().context("the controller answered a definition without versions")?;
    println!(
        "deployed {} version {} ({} bytes, sha256 {})",
        definition.name, version.version, version.size, version.digest
    );
    Ok(())
}
