//! What every benchmark shares: the guests, medians, and writing its JSON
//! report where runs can be compared.

use serde_json::Value;

#[path = "../../../tests/guests.rs"]
#[allow(dead_code, reason = "shared with the tests; no benchmark builds the Python guests")]
pub mod guests;

/// The allocator `burst` runs with (`controller/src/main.rs`), so that a
/// benchmark measures the host's buffers as the binary allocates them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Writes `report` to `$BURST_BENCH_JSON`, else `target/bench/{name}.json`,
/// and says where.
pub fn write_report(name: &str, report: &Value) -> anyhow::Result<()> {
    let path = std::env::var_os("BURST_BENCH_JSON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| guests::workspace_root().join(format!("target/bench/{name}.json")));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(report)?)?;
    println!("\nwrote {}", path.display());
    Ok(())
}
