//! `burst results ID`: the results of a finished flare, and with
//! `--download DIR` the files its workers wrote to `/out`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;

use crate::api::Outputs;
use crate::client::{Client, Connection, block_on};
use crate::outputs;
use crate::report::ResultDoc;

/// Arguments of `burst results`.
#[derive(Args)]
pub struct ResultsArgs {
    /// The flare.
    id: String,
    /// Print one JSON document instead of a summary.
    #[arg(long)]
    json: bool,
    /// Also fetch the flare's output files into this directory (created
    /// when missing), under the paths the workers gave them.
    #[arg(long, value_name = "DIR")]
    download: Option<PathBuf>,
    #[command(flatten)]
    connection: Connection,
}

pub fn run(args: ResultsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    block_on(async {
        let code = print_results(&client, &args.id, args.json).await?;
        if let Some(dir) = &args.download {
            download(&client, &args.id, dir).await?;
        }
        Ok(code)
    })?
}

/// Fetches every output file of flare `id` into `dir`, streamed; paths from
/// the controller are written through `cap-std`, so none leaves `dir`.
async fn download(client: &Client, id: &str, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let listed: Outputs = client.get(&format!("/v1/flares/{id}/outputs")).await?;
    for file in &listed.files {
        let path = format!("/v1/flares/{id}/outputs/{}", outputs::url_segment(&file.path));
        let mut response = client.send(client.request(Method::GET, &path)).await?;
        let mut out = outputs::create(dir, &file.path)?;
        while let Some(chunk) = response.chunk().await.with_context(|| format!("downloading {}", file.path))? {
            out.write_all(&chunk).with_context(|| format!("writing {}", file.path))?;
        }
    }
    eprintln!("downloaded {} files ({} bytes) to {}", listed.files.len(), listed.bytes, dir.display());
    Ok(())
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
