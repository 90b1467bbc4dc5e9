//! Putting a checked file in place so that no reader ever sees half of it.
//!
//! Databases are memory-mapped by the running gateway, so a file must never be rewritten in
//! place: the new bytes go to a temporary file in the same directory (same file system, so the
//! rename is atomic), are synced, and are renamed over the old name; the directory is synced so
//! the rename survives a crash. A reader has either the old inode or the new one.
//!
//! The validators of conditional requests (ETag, Last-Modified) are kept in a small JSON file
//! next to the data, updated only after the file it describes was installed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the directory).
/// On any error the old file is untouched and the temporary file is removed.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent(path);
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let tmp = dir.join(format!(".{name}.locgate-tmp-{}", std::process::id()));
    let result = (|| {
        // A leftover from a crashed run is removed; create_new never follows a planted symlink.
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        // Keep the old file's permissions (operators may have restricted them).
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = std::fs::set_permissions(&tmp, meta.permissions());
        }
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// HTTP validators remembered for one installed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    /// The URL they belong to: a changed URL must not send the old validators.
    pub url: String,
    /// `ETag` of the installed response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// `Last-Modified` of the installed response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// Name of the state file in each data directory.
pub const STATE_FILE: &str = ".locgate-update.json";

fn state_path(data_file: &Path) -> PathBuf {
    parent(data_file).join(STATE_FILE)
}

fn key(data_file: &Path) -> String {
    data_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_state(data_file: &Path) -> BTreeMap<String, Validators> {
    std::fs::read(state_path(data_file))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The validators to send for `data_file` fetched from `url`: only when the file still exists
/// (a 304 for a file that is gone would leave nothing) and the URL is the same.
pub fn validators_for(data_file: &Path, url: &str) -> Option<Validators> {
    if !data_file.is_file() {
        return None;
    }
    read_state(data_file)
        .remove(&key(data_file))
        .filter(|v| v.url == url)
}

/// Records the validators of the response just installed at `data_file`.
pub fn remember(data_file: &Path, v: Validators) -> std::io::Result<()> {
    let mut state = read_state(data_file);
    state.insert(key(data_file), v);
    let bytes = serde_json::to_vec_pretty(&state).map_err(std::io::Error::other)?;
    atomic_write(&state_path(data_file), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_atomically_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tor.txt");
        atomic_write(&p, b"1.2.3.4\n").unwrap();
        atomic_write(&p, b"5.6.7.8\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"5.6.7.8\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn validators_need_the_file_and_the_same_url() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        let v = Validators {
            url: "http://x/a".into(),
            etag: Some("\"1\"".into()),
            last_modified: None,
        };
        remember(&p, v.clone()).unwrap();
        assert_eq!(validators_for(&p, "http://x/a"), None, "file missing");
        std::fs::write(&p, "x").unwrap();
        assert_eq!(validators_for(&p, "http://x/a"), Some(v));
        assert_eq!(validators_for(&p, "http://x/b"), None);
    }
}
