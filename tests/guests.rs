//! Builds the guest components of `examples/` and `tests/fixtures` once per
//! process, for the integration tests and the benchmarks.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("controller/ has a parent").to_owned()
}

fn guests_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        // The guests get their own target directory so that building them
        // never waits on the lock of the build that runs the tests.
        let target = root.join("target").join("guests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "hello",
                "-p",
                "microbench",
                "-p",
                "pagerank",
                "-p",
                "terasort",
                "-p",
                "gridsearch",
                "-p",
                "kmeans",
                "-p",
                "burst-fixtures",
                "-p",
                "burst-fixture-socket",
            ])
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("running cargo to build the guests");
        assert!(status.success(), "building the guests failed");
        target.join("wasm32-wasip2").join("release")
    })
}

/// Path of a guest component (`hello`, `microbench`, the workloads
/// `pagerank`, `terasort`, `gridsearch`, `kmeans`, `burst_fixtures`,
/// `burst_fixture_socket`).
pub fn guest_path(name: &str) -> PathBuf {
    guests_dir().join(format!("{name}.wasm"))
}
