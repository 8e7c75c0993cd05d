//! The controller's embedded store, which survives restarts.
//!
//! Metadata lives in one redb database (`burst.redb`): definitions keyed by
//! tenant and name, flare states keyed by flare id, and finished results in
//! a table of their own so that listing flares never parses results.
//! Components are content-addressed files (`components/{digest}.wasm`,
//! written whole and renamed into place); compiled artifacts sit in
//! `artifacts/`, the runtime's cache. A component file and its artifacts
//! are deleted when no definition version of any tenant refers to its
//! digest any more. Everything is readable by the controller's user only.

use std::fs::Permissions;
use std::ops::Bound;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::api::{Definition, FlareDoc, FlareStatus};
use crate::report::ResultDoc;

/// Definitions, keyed by `{tenant}\0{name}`; values are JSON.
const DEFINITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("definitions");
/// Flare states ([`FlareRecord`] JSON), keyed by flare id.
const FLARES: TableDefinition<&str, &[u8]> = TableDefinition::new("flares");
/// Results of finished flares ([`ResultDoc`] JSON), keyed by flare id.
const RESULTS: TableDefinition<&str, &[u8]> = TableDefinition::new("results");
/// Every flare id under its tenant, keyed by `{tenant}\0{flare_id}` (empty
/// values): a tenant's flares, in creation order, without reading anyone
/// else's.
const FLARES_BY_TENANT: TableDefinition<&str, &[u8]> = TableDefinition::new("flares_by_tenant");

/// Why the store failed; always a fault of the machine, never of a request.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A stored value does not decode (the store was written by something else).
    #[error("corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::Db(error.into())
            }
        }
    )*};
}
from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// A flare as stored: its state and whose it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlareRecord {
    /// The tenant that started it.
    pub tenant: String,
    /// Its state.
    #[serde(flatten)]
    pub doc: FlareDoc,
}

/// The database and the component files.
pub struct Store {
    db: Database,
    dir: PathBuf,
}

/// Removes a file that may already be gone.
fn remove_file(path: PathBuf) -> Result<(), StoreError> {
    match std::fs::remove_file(&path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io { path, source }),
        _ => Ok(()),
    }
}

fn definition_key(tenant: &str, name: &str) -> String {
    format!("{tenant}\0{name}")
}

fn tenant_flare_key(tenant: &str, flare_id: &str) -> String {
    format!("{tenant}\0{flare_id}")
}

/// Up to `limit` entries of `table` under `tenant`'s prefix, after the one
/// named `after` (from the first when `None`), each as the rest of its key
/// and its value.
fn page_of<V: redb::Value + 'static>(
    table: &impl ReadableTable<&'static str, V>,
    tenant: &str,
    after: Option<&str>,
    limit: usize,
    mut each: impl FnMut(&str, V::SelfType<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let start = format!("{tenant}\0{}", after.unwrap_or_default());
    let end = format!("{tenant}\u{1}");
    let lower = if after.is_some() { Bound::Excluded(start.as_str()) } else { Bound::Included(start.as_str()) };
    for entry in table.range::<&str>((lower, Bound::Excluded(end.as_str())))?.take(limit) {
        let (key, value) = entry?;
        let key = key.value();
        each(key.split_once('\0').map_or(key, |(_, rest)| rest), value.value())?;
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// [`StoreError`] when the directory or database cannot be created or opened.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        // Tenants' code and results: readable by this user only.
        for private in [dir.to_owned(), dir.join("components"), dir.join("artifacts"), dir.join("outputs")] {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&private).map_err(io(&private))?;
            std::fs::set_permissions(&private, Permissions::from_mode(0o700)).map_err(io(&private))?;
        }
        let db_path = dir.join("burst.redb");
        let db = Database::create(&db_path)?;
        std::fs::set_permissions(&db_path, Permissions::from_mode(0o600)).map_err(io(&db_path))?;
        let txn = db.begin_write()?;
        txn.open_table(DEFINITIONS)?;
        txn.open_table(FLARES)?;
        txn.open_table(RESULTS)?;
        {
            // Stores written before the index existed: index their flares.
            let flares = txn.open_table(FLARES)?;
            let mut index = txn.open_table(FLARES_BY_TENANT)?;
            if index.first()?.is_none() {
                for entry in flares.iter()? {
                    let record: FlareRecord = serde_json::from_slice(entry?.1.value())?;
                    index.insert(tenant_flare_key(&record.tenant, &record.doc.flare_id).as_str(), &[][..])?;
                }
            }
        }
        txn.commit()?;
        Ok(Self { db, dir: dir.to_owned() })
    }

    /// Where the runtime caches compiled artifacts.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.dir.join("artifacts")
    }

    /// Where flares' output directories are kept, one per flare id.
    pub fn outputs_dir(&self) -> PathBuf {
        self.dir.join("outputs")
    }

    fn component_path(&self, digest: &str) -> PathBuf {
        self.dir.join("components").join(format!("{digest}.wasm"))
    }

    /// Stores a component under its digest (a no-op when it is there).
    ///
    /// # Errors
    /// [`StoreError::Io`] when the file cannot be written.
    pub fn put_component(&self, digest: &str, wasm: &[u8]) -> Result<(), StoreError> {
        let path = self.component_path(digest);
        if path.exists() {
            return Ok(());
        }
        burst_host::write_atomically(&path, wasm).map_err(|source| StoreError::Io { path, source })
    }

    /// The bytes of a stored component.
    ///
    /// # Errors
    /// [`StoreError::Io`] when it exists but cannot be read.
    pub fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.component_path(digest);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// A tenant's definition.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn definition(&self, tenant: &str, name: &str) -> Result<Option<Definition>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DEFINITIONS)?;
        let value = table.get(definition_key(tenant, name).as_str())?;
        Ok(value.map(|v| serde_json::from_slice(v.value())).transpose()?)
    }

    /// Writes a tenant's definition (every version).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn put_definition(&self, tenant: &str, definition: &Definition) -> Result<(), StoreError> {
        let json = serde_json::to_vec(definition)?;
        let txn = self.db.begin_write()?;
        txn.open_table(DEFINITIONS)?.insert(definition_key(tenant, &definition.name).as_str(), json.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// A tenant's definitions, by name.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn definitions(&self, tenant: &str, after: Option<&str>, limit: usize) -> Result<Vec<Definition>, StoreError> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        page_of(&txn.open_table(DEFINITIONS)?, tenant, after, limit, |_, value| {
            out.push(serde_json::from_slice(value)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// How many definitions `tenant` has, counting up to `up_to`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn count_definitions(&self, tenant: &str, up_to: usize) -> Result<usize, StoreError> {
        let txn = self.db.begin_read()?;
        let mut count = 0;
        page_of(&txn.open_table(DEFINITIONS)?, tenant, None, up_to, |_, _| {
            count += 1;
            Ok(())
        })?;
        Ok(count)
    }

    /// Whether any version of any of `tenant`'s definitions is the
    /// component `digest`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn tenant_has_component(&self, tenant: &str, digest: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let mut found = false;
        page_of(&txn.open_table(DEFINITIONS)?, tenant, None, usize::MAX, |_, value| {
            let definition: Definition = serde_json::from_slice(value)?;
            found |= definition.versions.iter().any(|v| v.digest == digest);
            Ok(())
        })?;
        Ok(found)
    }

    /// Deletes a tenant's definition, and the component files no other
    /// definition uses. Returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError`] when the database or a file fails.
    pub fn delete_definition(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let removed: Option<Definition> = {
            let mut table = txn.open_table(DEFINITIONS)?;
            let removed = table.remove(definition_key(tenant, name).as_str())?;
            removed.map(|v| serde_json::from_slice(v.value())).transpose()?
        };
        let Some(removed) = removed else { return Ok(false) };
        let mut in_use = std::collections::HashSet::new();
        for entry in txn.open_table(DEFINITIONS)?.iter()? {
            let other: Definition = serde_json::from_slice(entry?.1.value())?;
            in_use.extend(other.versions.into_iter().map(|v| v.digest));
        }
        txn.commit()?;
        for version in removed.versions.iter().filter(|v| !in_use.contains(&v.digest)) {
            remove_file(self.component_path(&version.digest))?;
            // Its compiled artifacts, one per engine configuration.
            let prefix = format!("{}-", version.digest);
            let artifacts = match std::fs::read_dir(self.artifacts_dir()) {
                Ok(entries) => entries,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Io { path: self.artifacts_dir(), source }),
            };
            for entry in artifacts.flatten() {
                if entry.file_name().to_str().is_some_and(|name| name.starts_with(&prefix)) {
                    remove_file(entry.path())?;
                }
            }
        }
        Ok(true)
    }

    /// A flare's stored state.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn flare(&self, flare_id: &str) -> Result<Option<FlareRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let value = txn.open_table(FLARES)?.get(flare_id)?;
        Ok(value.map(|v| serde_json::from_slice(v.value())).transpose()?)
    }

    /// Writes a flare's state, and its results when it has finished.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn put_flare(&self, record: &FlareRecord, result: Option<&ResultDoc>) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record)?;
        let result = result.map(serde_json::to_vec).transpose()?;
        let txn = self.db.begin_write()?;
        txn.open_table(FLARES)?.insert(record.doc.flare_id.as_str(), json.as_slice())?;
        let key = tenant_flare_key(&record.tenant, &record.doc.flare_id);
        txn.open_table(FLARES_BY_TENANT)?.insert(key.as_str(), &[][..])?;
        if let Some(result) = result {
            txn.open_table(RESULTS)?.insert(record.doc.flare_id.as_str(), result.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// A finished flare's results.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn result(&self, flare_id: &str) -> Result<Option<ResultDoc>, StoreError> {
        let txn = self.db.begin_read()?;
        let value = txn.open_table(RESULTS)?.get(flare_id)?;
        Ok(value.map(|v| serde_json::from_slice(v.value())).transpose()?)
    }

    /// Up to `limit` flares of `tenant` after flare `after` (from the first
    /// when `None`), in creation order.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn flares_of(&self, tenant: &str, after: Option<&str>, limit: usize) -> Result<Vec<FlareRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let flares = txn.open_table(FLARES)?;
        let mut out = Vec::new();
        page_of(&txn.open_table(FLARES_BY_TENANT)?, tenant, after, limit, |flare_id, _| {
            if let Some(value) = flares.get(flare_id)? {
                out.push(serde_json::from_slice(value.value())?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Every stored flare, in id order (which is creation order).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn flares(&self) -> Result<Vec<FlareRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for entry in txn.open_table(FLARES)?.iter()? {
            out.push(serde_json::from_slice(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Deletes finished flares (their results and output files) that ended
    /// before `cutoff_us`; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn prune(&self, cutoff_us: u64) -> Result<usize, StoreError> {
        let expired: Vec<FlareRecord> =
            self.flares()?.into_iter().filter(|r| r.doc.finished_us.is_some_and(|at| at < cutoff_us)).collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let txn = self.db.begin_write()?;
        {
            let mut flares = txn.open_table(FLARES)?;
            let mut results = txn.open_table(RESULTS)?;
            let mut index = txn.open_table(FLARES_BY_TENANT)?;
            for record in &expired {
                let id = record.doc.flare_id.as_str();
                flares.remove(id)?;
                results.remove(id)?;
                index.remove(tenant_flare_key(&record.tenant, id).as_str())?;
            }
        }
        txn.commit()?;
        for record in &expired {
            // The ids were checked when the flares were created.
            if let Ok(dir) = crate::outputs::flare_dir(&self.outputs_dir(), &record.doc.flare_id) {
                match std::fs::remove_dir_all(&dir) {
                    Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                        return Err(StoreError::Io { path: dir, source });
                    }
                    _ => {}
                }
            }
        }
        Ok(expired.len())
    }

    /// Marks every flare that was queued or running as failed with
    /// `failure` (a previous controller process held them); returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub fn fail_unfinished(&self, failure: &burst_host::Failure) -> Result<usize, StoreError> {
        let mut count = 0;
        for mut record in self.flares()? {
            if !record.doc.status.is_final() {
                record.doc.status = FlareStatus::Failed;
                record.doc.finished_us = Some(failure.at_us);
                record.doc.failure = Some(failure.clone());
                self.put_flare(&record, None)?;
                count += 1;
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use burst_host::result::now_us;
    use burst_host::{Failure, FailureKind};

    use super::*;
    use crate::api::{Defaults, Version};

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn store(what: &str) -> (Store, Dir) {
        let dir = std::env::temp_dir().join(format!("burst-store-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open(&dir).expect("opens"), Dir(dir))
    }

    fn definition(name: &str, digest: &str) -> Definition {
        let version =
            Version { version: 1, digest: digest.into(), size: 3, created_us: 1, defaults: Defaults::default() };
        Definition { name: name.into(), versions: vec![version] }
    }

    fn flare(id: &str, status: FlareStatus, finished_us: Option<u64>) -> FlareRecord {
        let doc = FlareDoc {
            flare_id: id.into(),
            definition: "d".into(),
            version: 1,
            status,
            burst_size: 1,
            granularity: 1,
            packing: "homogeneous".into(),
            backend: "memory".into(),
            deadline_ms: 1000,
            workers_started: 0,
            workers_finished: 0,
            created_us: 1,
            started_us: None,
            finished_us,
            failure: None,
            placement: None,
            dataset: None,
            output_quota_bytes: None,
        };
        FlareRecord { tenant: "t".into(), doc }
    }

    #[test]
    fn a_component_file_goes_when_no_definition_of_any_tenant_uses_it() {
        let (store, _dir) = store("gc");
        store.put_component("abc", b"wasm").expect("put");
        store.put_definition("a", &definition("one", "abc")).expect("put");
        store.put_definition("b", &definition("two", "abc")).expect("put");
        assert_eq!(store.definitions("a", None, 10).expect("list").len(), 1);
        assert_eq!(store.count_definitions("b", 10).expect("count"), 1);
        assert!(store.delete_definition("a", "one").expect("delete"));
        assert!(!store.delete_definition("a", "one").expect("delete"));
        assert_eq!(store.component("abc").expect("read").as_deref(), Some(&b"wasm"[..]));
        let artifact = store.artifacts_dir().join("abc-0123456789abcdef.cwasm");
        let other = store.artifacts_dir().join("abd-0123456789abcdef.cwasm");
        std::fs::write(&artifact, b"compiled").expect("write");
        std::fs::write(&other, b"compiled").expect("write");
        assert!(store.delete_definition("b", "two").expect("delete"));
        assert_eq!(store.component("abc").expect("read"), None);
        assert!(!artifact.exists(), "its compiled artifact is collected with it");
        assert!(other.exists(), "another component's artifact stays");
    }

    #[test]
    fn the_store_is_readable_by_its_user_only() {
        let (store, dir) = store("modes");
        store.put_component("abc", b"wasm").expect("put");
        let mode = |path: PathBuf| std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(dir.0.clone()), 0o700);
        assert_eq!(mode(dir.0.join("components")), 0o700);
        assert_eq!(mode(store.artifacts_dir()), 0o700);
        assert_eq!(mode(dir.0.join("burst.redb")), 0o600);
        assert_eq!(mode(store.component_path("abc")), 0o600);
    }

    #[test]
    fn pruning_drops_only_flares_that_ended_before_the_cutoff() {
        let (store, _dir) = store("prune");
        store.put_flare(&flare("f-1", FlareStatus::Succeeded, Some(10)), None).expect("put");
        store.put_flare(&flare("f-2", FlareStatus::Failed, Some(30)), None).expect("put");
        store.put_flare(&flare("f-3", FlareStatus::Running, None), None).expect("put");
        assert_eq!(store.prune(20).expect("prune"), 1);
        let left: Vec<String> = store.flares().expect("list").into_iter().map(|r| r.doc.flare_id).collect();
        assert_eq!(left, ["f-2", "f-3"]);
        let stopped = Failure::new(None, FailureKind::Backend, "stopped");
        assert_eq!(store.fail_unfinished(&stopped).expect("fail"), 1);
        let record = store.flare("f-3").expect("read").expect("kept");
        assert_eq!(record.doc.status, FlareStatus::Failed);
        assert!(record.doc.finished_us.is_some_and(|at| at <= now_us()));
    }
}
