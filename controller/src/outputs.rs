//! Output directories: what a flare's workers wrote to `/out`, on the host
//! and in the controller's store.
//!
//! Every path here comes from a request or from a guest, so every file is
//! opened through `cap-std` relative to the flare's directory: `..`,
//! absolute paths and symbolic links that lead out of it are refused by the
//! open itself, not by string checks that could miss a case.

use std::io;
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::api::{OutputFile, Outputs};

/// Most files listed for one flare: a listing is one JSON document.
pub const MAX_LISTED_FILES: usize = 100_000;

/// Deepest directory nesting walked under `/out`.
const MAX_DEPTH: usize = 32;

/// Why an output path is refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The path is not a plain relative path of normal components.
    #[error("`{0}` is not a path under /out (use `/`-separated names, no `..`)")]
    BadPath(String),
    /// No such file.
    #[error("no output file `{0}`")]
    NotFound(String),
    /// The listing would be too long.
    #[error("the flare wrote more than {MAX_LISTED_FILES} files")]
    TooMany,
    /// The filesystem failed.
    #[error("{path}: {source}")]
    Io {
        /// What was being read or written.
        path: String,
        /// Why it failed.
        source: io::Error,
    },
}

fn io_error(path: &str) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io { path: path.to_owned(), source }
}

/// The directory of flare `flare_id` under `root`; a flare id names a
/// directory, so only ids of letters, digits, `-` and `_` get near one.
pub fn flare_dir(root: &Path, flare_id: &str) -> Result<PathBuf, OutputError> {
    let plain = (1..=128).contains(&flare_id.len())
        && flare_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if plain { Ok(root.join(flare_id)) } else { Err(OutputError::BadPath(flare_id.to_owned())) }
}

/// `path` as a relative path of normal components. Segments are checked
/// as written: `Path::components` would quietly drop a `.` or an empty
/// segment (`a/./b`, `a//b`), so two spellings could name one file.
pub fn relative(path: &str) -> Result<PathBuf, OutputError> {
    let plain = path.split('/').all(|segment| !matches!(segment, "" | "." | ".."))
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)));
    if plain { Ok(PathBuf::from(path)) } else { Err(OutputError::BadPath(path.to_owned())) }
}

/// Everything but unreserved characters is escaped, `/` included: a path
/// travels as one URL segment.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `path` as one URL path segment.
pub fn url_segment(path: &str) -> String {
    percent_encoding::utf8_percent_encode(path, SEGMENT).to_string()
}

/// Opens `dir` (a flare's output directory) as a capability.
fn open_dir(dir: &Path) -> Result<Dir, OutputError> {
    Dir::open_ambient_dir(dir, ambient_authority()).map_err(io_error(&dir.to_string_lossy()))
}

/// Every regular file under `dir`, in path order; none when `dir` does not
/// exist. Symbolic links are neither followed nor listed.
pub fn list(dir: &Path) -> Result<Outputs, OutputError> {
    let mut files = Vec::new();
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => walk(&open_dir(dir)?, "", 0, &mut files)?,
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(OutputError::Io { path: dir.display().to_string(), source }),
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let bytes = files.iter().map(|f| f.bytes).sum();
    Ok(Outputs { files, bytes })
}

fn walk(dir: &Dir, prefix: &str, depth: usize, files: &mut Vec<OutputFile>) -> Result<(), OutputError> {
    for entry in dir.entries().map_err(io_error(prefix))? {
        let entry = entry.map_err(io_error(prefix))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        let kind = entry.file_type().map_err(io_error(&path))?;
        if kind.is_dir() && depth < MAX_DEPTH {
            walk(&entry.open_dir().map_err(io_error(&path))?, &path, depth + 1, files)?;
        } else if kind.is_file() {
            if files.len() == MAX_LISTED_FILES {
                return Err(OutputError::TooMany);
            }
            let bytes = entry.metadata().map_err(io_error(&path))?.len();
            files.push(OutputFile { path, bytes });
        }
    }
    Ok(())
}

/// Opens output file `path` of the flare directory `dir` for reading.
pub fn open(dir: &Path, path: &str) -> Result<std::fs::File, OutputError> {
    let relative = relative(path)?;
    let dir = open_dir(dir).map_err(|_| OutputError::NotFound(path.to_owned()))?;
    match dir.open(&relative) {
        Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => Ok(file.into_std()),
        Ok(_) => Err(OutputError::NotFound(path.to_owned())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(OutputError::NotFound(path.to_owned())),
        // Escapes (`..` through a link) are refused as not found: nothing
        // outside the directory is confirmed to exist.
        Err(_) => Err(OutputError::NotFound(path.to_owned())),
    }
}

/// Creates file `path` (and its parent directories) under `root`, which
/// must exist, for writing.
pub fn create(root: &Path, path: &str) -> Result<std::fs::File, OutputError> {
    let relative = relative(path)?;
    let dir = open_dir(root)?;
    if let Some(parent) = relative.parent().filter(|p| !p.as_os_str().is_empty()) {
        dir.create_dir_all(parent).map_err(io_error(path))?;
    }
    Ok(dir.create(&relative).map_err(io_error(path))?.into_std())
}

/// Removes file `path` under `root`.
pub fn remove(root: &Path, path: &str) -> Result<(), OutputError> {
    open_dir(root)?.remove_file(relative(path)?).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn only_plain_relative_paths_are_output_paths() {
        for good in ["a", "part-00001", "dir/sub/file.txt"] {
            assert_eq!(relative(good).expect(good), PathBuf::from(good));
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a", "a/./b", "a//b", "a/"] {
            assert!(matches!(relative(bad), Err(OutputError::BadPath(p)) if p == bad), "{bad}");
        }
        assert!(flare_dir(Path::new("/s"), "f-0123-1").is_ok());
        for bad in ["", "..", "a/b", "f.1"] {
            assert!(flare_dir(Path::new("/s"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_listing_shows_regular_files_and_no_link_leads_out() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"no").expect("write");
        create(root.path(), "b/c.txt").expect("create").write_all(b"hello").expect("write");
        create(root.path(), "a").expect("create").write_all(b"").expect("write");
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).expect("symlink");
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("file-link")).expect("symlink");
        let listed = list(root.path()).expect("lists");
        let paths: Vec<(&str, u64)> = listed.files.iter().map(|f| (f.path.as_str(), f.bytes)).collect();
        assert_eq!(paths, [("a", 0), ("b/c.txt", 5)]);
        assert_eq!(listed.bytes, 5);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut open(root.path(), "b/c.txt").expect("opens"), &mut text).expect("reads");
        assert_eq!(text, "hello");
        for escape in ["link/secret", "file-link", "../secret", "b"] {
            assert!(matches!(open(root.path(), escape), Err(OutputError::NotFound(_) | OutputError::BadPath(_))));
        }
        assert!(create(root.path(), "link/new").is_err(), "a write through a link must not leave the directory");
        assert!(!outside.path().join("new").exists());
        assert_eq!(list(&root.path().join("missing")).expect("empty").files.len(), 0);
    }
}
