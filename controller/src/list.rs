//! `burst list`: your definitions and flares.

use clap::Args;

use crate::api::{Definition, FlareDoc};
use crate::client::{Client, Connection, block_on};

/// Arguments of `burst list`.
#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    connection: Connection,
}

pub fn run(args: ListArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connection)?;
    let (definitions, flares) = block_on(async {
        let definitions: Vec<Definition> = client.get("/v1/definitions").await?;
        let flares: Vec<FlareDoc> = client.get("/v1/flares").await?;
        Ok::<_, crate::client::ClientError>((definitions, flares))
    })??;
    println!("definitions:");
    for definition in &definitions {
        if let Some(v) = definition.current() {
            println!("  {:<24} v{:<4} {} bytes  sha256 {}", definition.name, v.version, v.size, v.digest);
        }
    }
    println!("flares:");
    for flare in &flares {
        println!(
            "  {:<28} {:<10} {} v{}, {} workers",
            flare.flare_id,
            flare.status.as_str(),
            flare.definition,
            flare.version,
            flare.burst_size
        );
    }
    Ok(())
}
