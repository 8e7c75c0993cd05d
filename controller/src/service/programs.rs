//! Compiled work functions, by digest.
//!
//! Deploying validates and compiles a component (artifacts cached on disk
//! by the runtime); the embedded host then finds the compiled program
//! here, loading it from the store after a restart. A tenant deploying a
//! component none of its own definitions holds compiles it afresh: were
//! the cache used, a fast answer would tell it that another tenant has
//! deployed those bytes. Compiling is CPU-bound,
//! so it runs on the blocking pool, never on the async executor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use burst_host::{LoadError, Program, Runtime};

use super::store::Store;

/// The runtime and the programs it has loaded.
pub struct Programs {
    runtime: Arc<Runtime>,
    store: Arc<Store>,
    loaded: Mutex<HashMap<String, Program>>,
}

impl Programs {
    pub fn new(runtime: Arc<Runtime>, store: Arc<Store>) -> Self {
        Self { runtime, store, loaded: Mutex::new(HashMap::new()) }
    }

    /// The runtime programs run on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Validates and compiles a component, keeping the program; with
    /// `cached`, from (and into) the artifact cache.
    ///
    /// # Errors
    /// [`LoadError`] saying what is wrong with the component.
    pub async fn load(&self, wasm: bytes::Bytes, cached: bool) -> Result<Program, LoadError> {
        let (runtime, artifacts) = (Arc::clone(&self.runtime), cached.then(|| self.store.artifacts_dir()));
        let program = tokio::task::spawn_blocking(move || runtime.load(&wasm, artifacts.as_deref()))
            .await
            .map_err(|e| LoadError::Compile(format!("the compiler task failed: {e}")))??;
        self.lock().insert(program.digest().to_owned(), program.clone());
        Ok(program)
    }

    /// The program of a stored component.
    ///
    /// # Errors
    /// A message when the component is gone or no longer loads.
    pub async fn get(&self, digest: &str) -> Result<Program, String> {
        if let Some(program) = self.lock().get(digest) {
            return Ok(program.clone());
        }
        let wasm = self.store.component(digest).map_err(|e| e.to_string())?;
        let wasm = wasm.ok_or_else(|| format!("component {digest} is no longer stored"))?;
        self.load(wasm.into(), true).await.map_err(|e| e.to_string())
    }

    /// Forgets a program (its definition was deleted).
    pub fn forget(&self, digest: &str) {
        self.lock().remove(digest);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Program>> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
