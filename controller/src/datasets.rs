//! Datasets: host directories an operator names (`--dataset NAME=DIR`) so
//! that a flare may ask for one by name and its workers read it at `/data`.
//!
//! A request only ever carries a name, looked up here; no path from a
//! request reaches the filesystem. A cluster shares data the way MPI
//! clusters do: every host that runs packs of a flare has the dataset under
//! the same name (a local copy or a shared filesystem), and admission
//! places packs only on such hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Datasets by name.
#[derive(Clone, Debug, Default)]
pub struct Datasets {
    dirs: BTreeMap<String, PathBuf>,
}

/// A dataset name: shown in documents and logs.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid { Ok(()) } else { Err(format!("dataset name `{name}` must be 1 to 64 of A-Z a-z 0-9 . _ -")) }
}

impl Datasets {
    /// Datasets from `NAME=DIR` entries; every directory must exist.
    ///
    /// # Errors
    /// A message naming the malformed entry, a name given twice, or a
    /// directory that cannot be used.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut dirs = BTreeMap::new();
        for entry in entries {
            let (name, dir) =
                entry.split_once('=').ok_or_else(|| format!("dataset `{entry}` must be given as NAME=DIR"))?;
            check_name(name)?;
            let dir = Path::new(dir).canonicalize().map_err(|e| format!("dataset `{name}`: directory {dir}: {e}"))?;
            if !dir.is_dir() {
                return Err(format!("dataset `{name}`: {} is not a directory", dir.display()));
            }
            if dirs.insert(name.to_owned(), dir).is_some() {
                return Err(format!("dataset `{name}` is given twice"));
            }
        }
        Ok(Self { dirs })
    }

    /// The directory of dataset `name`.
    pub fn dir(&self, name: &str) -> Option<&Path> {
        self.dirs.get(name).map(PathBuf::as_path)
    }

    /// The names, in order.
    pub fn names(&self) -> BTreeSet<String> {
        self.dirs.keys().cloned().collect()
    }
}

/// Which tenants may read which datasets: a dataset named in
/// `--dataset-tenants NAME=TENANT,TENANT` is readable by those tenants only;
/// every other dataset by every tenant.
#[derive(Clone, Debug, Default)]
pub struct DatasetGrants {
    only: BTreeMap<String, BTreeSet<String>>,
}

impl DatasetGrants {
    /// Grants from `NAME=TENANT,TENANT` entries.
    ///
    /// # Errors
    /// A message naming the malformed entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut only: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for entry in entries {
            let (name, tenants) = entry
                .split_once('=')
                .ok_or_else(|| format!("dataset grant `{entry}` must be given as NAME=TENANT,TENANT"))?;
            check_name(name)?;
            let tenants = tenants.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
            only.entry(name.to_owned()).or_default().extend(tenants);
        }
        Ok(Self { only })
    }

    /// Whether `tenant` may read dataset `name`.
    pub fn allows(&self, tenant: &str, name: &str) -> bool {
        self.only.get(name).is_none_or(|tenants| tenants.contains(tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_is_a_name_and_an_existing_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entry = format!("graphs={}", dir.path().display());
        let datasets = Datasets::parse(std::slice::from_ref(&entry)).expect("valid");
        assert_eq!(datasets.dir("graphs"), Some(dir.path().canonicalize().expect("exists").as_path()));
        assert_eq!(datasets.dir("other"), None);
        let errors = [
            Datasets::parse(&["graphs".into()]).expect_err("no ="),
            Datasets::parse(&["../x=/tmp".into()]).expect_err("bad name"),
            Datasets::parse(&["x=/no/such/dir".into()]).expect_err("missing dir"),
            Datasets::parse(&[entry.clone(), entry]).expect_err("twice"),
        ];
        assert!(errors[0].contains("NAME=DIR"), "{}", errors[0]);
        assert!(errors[1].contains("must be 1 to 64"), "{}", errors[1]);
        assert!(errors[2].contains("/no/such/dir"), "{}", errors[2]);
        assert!(errors[3].contains("given twice"), "{}", errors[3]);
    }

    #[test]
    fn a_restricted_dataset_is_readable_by_its_tenants_only() {
        let grants = DatasetGrants::parse(&["private=alice, bob".into()]).expect("valid");
        assert!(grants.allows("alice", "private"));
        assert!(grants.allows("bob", "private"));
        assert!(!grants.allows("eve", "private"));
        assert!(grants.allows("eve", "public"));
    }
}
