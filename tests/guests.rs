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

/// The Python guests: their names and apps.
const PYTHON_GUESTS: [(&str, &str); 3] = [
    ("hello", "examples/python/hello/app.py"),
    ("kmeans", "examples/python/kmeans/app.py"),
    ("fixtures", "tests/fixtures/python/app.py"),
];

/// Path of a Python guest component (`hello`, `kmeans`, `fixtures`), built once per
/// process the way a user builds one: the Python SDK installed with pip into
/// a virtualenv of its own (which pulls its pinned componentize-py), then
/// its `burst-py build`.
pub fn python_guest_path(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let root = workspace_root();
        let venv = root.join("target").join("python-sdk");
        let sdk = root.join("guest-sdk-python");
        let run = |command: &mut Command, what: &str| {
            let status = command.status().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(status.success(), "{what} failed");
        };
        if !venv.join("bin").join("python").exists() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "creating the SDK's virtualenv");
        }
        // Reinstalled every run (quick once its dependencies are there), so
        // the components hold this checkout's SDK.
        run(
            Command::new(venv.join("bin").join("pip")).args(["install", "-q", "--disable-pip-version-check"]).arg(&sdk),
            "installing the Python SDK",
        );
        let out = root.join("target").join("guests").join("python");
        std::fs::create_dir_all(&out).expect("creating the Python guests' directory");
        // Side by side: each build is one CPython process for ~10 s.
        let builds: Vec<_> = PYTHON_GUESTS
            .iter()
            .map(|(guest, app)| {
                let child = Command::new(venv.join("bin").join("burst-py"))
                    .arg("build")
                    .arg(root.join(app))
                    .arg("-o")
                    .arg(out.join(format!("{guest}.wasm")))
                    .spawn()
                    .unwrap_or_else(|e| panic!("building the Python guest {guest}: {e}"));
                (guest, child)
            })
            .collect();
        for (guest, mut child) in builds {
            let status = child.wait().unwrap_or_else(|e| panic!("building the Python guest {guest}: {e}"));
            assert!(status.success(), "building the Python guest {guest} failed");
        }
        out
    });
    assert!(PYTHON_GUESTS.iter().any(|(guest, _)| *guest == name), "no Python guest {name}");
    dir.join(format!("{name}.wasm"))
}
