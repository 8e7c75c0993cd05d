//! A compiled work function, ready to instantiate many times.
//!
//! A component is validated (size cap, component header, imports from the
//! allowed set only, the `burst:bcm` worker world) and compiled once; its `InstancePre` is reused for every
//! worker. With a cache directory, compiled artifacts are kept on disk keyed
//! by the component's SHA-256 and the engine's compatibility hash, so a
//! second load skips Cranelift entirely.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::bindings::WorkerPre;
use crate::engine::WorkerState;

/// Largest component accepted; compiling is superlinear in size, so this
/// bounds the CPU and memory a hostile upload can make us spend.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// The preamble of a WebAssembly component (magic, version 0x0d, layer 1).
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// Prefixes of the interfaces a work function may import: `burst:bcm`
/// (the comm and its types), and the WASI interfaces that give no authority
/// outside the sandbox: stdio, clocks, random, a filesystem that holds
/// nothing unless a flare grants directories, and sockets (with name
/// lookup), which standard toolchains' runtimes import even when the
/// program opens none (`componentize-py`'s CPython does): they are linked
/// with TCP, UDP and name lookup off and every address denied, so a worker
/// that tries gets an error and reaches nothing, and talks only through the
/// comm. HTTP, and any interface not listed, is refused at load.
pub const ALLOWED_IMPORTS: &[&str] =
    &["burst:bcm/", "wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/", "wasi:sockets/"];

/// Why a component cannot be used as a work function.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Larger than [`MAX_COMPONENT_BYTES`].
    #[error("component is {size} bytes, above the maximum of {MAX_COMPONENT_BYTES}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// Not a WebAssembly component (a core module, or not wasm at all).
    #[error("not a WebAssembly component (build it for wasm32-wasip2)")]
    NotAComponent,
    /// wasmtime could not compile it.
    #[error("compiling the component failed: {0}")]
    Compile(String),
    /// It imports an interface outside [`ALLOWED_IMPORTS`].
    #[error(
        "the component imports `{0}`, which workers may not use (allowed: burst:bcm, wasi:cli, wasi:io, wasi:clocks, wasi:random, wasi:filesystem, wasi:sockets)"
    )]
    ForbiddenImport(String),
    /// It does not fit the `burst:bcm/worker` world (imports or exports).
    #[error("the component does not target the burst:bcm/worker world: {0}")]
    WrongWorld(String),
    /// The artifact cache could not be read or written.
    #[error("artifact cache {path}: {source}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// A validated, compiled work function.
#[derive(Clone)]
pub struct Program {
    pre: WorkerPre<WorkerState>,
    digest: String,
}

impl Program {
    pub(crate) fn load(
        engine: &Engine,
        linker: &Linker<WorkerState>,
        wasm: &[u8],
        cache_dir: Option<&Path>,
    ) -> Result<Self, LoadError> {
        if wasm.len() > MAX_COMPONENT_BYTES {
            return Err(LoadError::TooLarge { size: wasm.len() });
        }
        if !wasm.starts_with(&COMPONENT_HEADER) {
            return Err(LoadError::NotAComponent);
        }
        let digest = hex::encode(Sha256::digest(wasm));
        // A fresh artifact is cached only once the component passed every
        // check: a refused component leaves nothing on disk.
        let (component, fresh) = match cache_dir {
            Some(dir) => load_cached(engine, wasm, &dir.join(artifact_name(engine, &digest)))?,
            None => (compile(engine, wasm)?, None),
        };
        let imports = component.component_type();
        if let Some((name, _)) =
            imports.imports(engine).find(|(name, _)| !ALLOWED_IMPORTS.iter().any(|allowed| name.starts_with(allowed)))
        {
            return Err(LoadError::ForbiddenImport(name.to_owned()));
        }
        let pre = linker.instantiate_pre(&component).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let pre = WorkerPre::new(pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        if let Some((path, artifact)) = fresh {
            let cache_error = |source| LoadError::Cache { path: path.clone(), source };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(cache_error)?;
            }
            write_atomically(&path, &artifact).map_err(cache_error)?;
        }
        Ok(Self { pre, digest })
    }

    /// Hex SHA-256 of the component's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub(crate) fn pre(&self) -> &WorkerPre<WorkerState> {
        &self.pre
    }
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component, LoadError> {
    Component::new(engine, wasm).map_err(|e| LoadError::Compile(format!("{e:#}")))
}

fn artifact_name(engine: &Engine, digest: &str) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{digest}-{:016x}.cwasm", hasher.finish())
}

/// The component from the artifact at `path`, or compiled afresh, with
/// the artifact to cache at `path` once the component is accepted.
type Loaded = (Component, Option<(PathBuf, Vec<u8>)>);

fn load_cached(engine: &Engine, wasm: &[u8], path: &Path) -> Result<Loaded, LoadError> {
    if path.exists() {
        // SAFETY: the file is one this function wrote: its name binds the
        // component's digest to this engine's compatibility hash, and it was
        // renamed into place only after being fully written.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => return Ok((component, None)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring an unusable cached artifact")
            }
        }
    }
    let artifact = engine.precompile_component(wasm).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
    // SAFETY: `artifact` was produced just now by this engine.
    #[allow(unsafe_code)]
    let component =
        unsafe { Component::deserialize(engine, &artifact) }.map_err(|e| LoadError::Compile(format!("{e:#}")))?;
    Ok((component, Some((path.to_owned(), artifact))))
}

/// Writes `bytes` to `path` all at once: into a temporary file of a unique
/// name beside it (readable by this user only), then renamed over it, so
/// readers never see a partial file and concurrent writers never share a
/// temporary file.
///
/// # Errors
/// The I/O error of creating, writing or renaming the file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = tempfile::NamedTempFile::new_in(path.parent().unwrap_or(Path::new(".")))?;
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
