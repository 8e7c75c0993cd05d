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

/// Items of a list fetched per request.
const PAGE: usize = 1000;

/// Every item of the list at `path`, page after page.
async fn every<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    key: impl Fn(&T) -> String,
) -> Result<Vec<T>, crate::client::ClientError> {
    let mut items: Vec<T> = client.get(&format!("{path}?limit={PAGE}")).await?;
    let mut last = items.len();
    while last == PAGE {
        let after = items.last().map(&key).unwrap_or_default();
        let page: Vec<T> = client.get(&format!("{path}?limit={PAGE}&after={after}")).await?;
        last = page.len();
        items.extend(page);
    }
    Ok(items)
}

pub fn run(args: ListArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connection)?;
    let (definitions, flares) = block_on(async {
        let definitions = every(&client, "/v1/definitions", |d: &Definition| d.name.clone()).await?;
        let flares = every(&client, "/v1/flares", |f: &FlareDoc| f.flare_id.clone()).await?;
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
