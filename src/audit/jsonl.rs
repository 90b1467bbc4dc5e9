//! The JSON lines file (or standard output) that SIEM shippers tail, rotated by size and age.
//!
//! Rotation renames `events.jsonl` to `events.jsonl.1` (shifting older ones up to `keep`, the
//! oldest deleted) and opens a fresh file: the rename-then-create pattern every log shipper
//! (Filebeat, Vector, Fluent Bit) follows by inode, so no line is lost or read twice.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// When to rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotation {
    /// Rotate before a write would take the file past this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate when the file has been open this long.
    pub max_age: Option<Duration>,
    /// Rotated files kept (`.1` .. `.keep`).
    pub keep: u32,
}

/// Where lines go.
pub enum Output {
    /// Appending file.
    File {
        /// The open file.
        file: File,
        /// Its path (for rotation).
        path: PathBuf,
        /// Bytes in it.
        size: u64,
        /// When it was opened.
        opened: Instant,
        /// Rotation policy.
        rotation: Rotation,
    },
    /// Standard output (`jsonl = "-"`).
    Stdout,
}

fn open_file(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o640);
    }
    opts.open(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot open event file {}: {e}", path.display()),
        )
    })
}

/// Opens `path` for appending (created with mode 0640: events name employees).
pub fn open(path: &Path, rotation: Rotation) -> io::Result<Output> {
    if path == Path::new("-") {
        return Ok(Output::Stdout);
    }
    let file = open_file(path)?;
    let size = file.metadata().map_or(0, |m| m.len());
    Ok(Output::File {
        file,
        path: path.to_path_buf(),
        size,
        opened: Instant::now(),
        rotation,
    })
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl Output {
    /// Writes whole lines and pushes them to the OS, so a crash after this loses nothing written.
    pub fn write_batch(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::File {
                file,
                path,
                size,
                opened,
                rotation,
            } => {
                let too_big = rotation
                    .max_bytes
                    .is_some_and(|m| *size > 0 && *size + bytes.len() as u64 > m);
                let too_old = rotation.max_age.is_some_and(|a| opened.elapsed() >= a);
                if too_big || too_old {
                    let keep = rotation.keep.max(1);
                    let _ = std::fs::remove_file(numbered(path, keep));
                    for n in (1..keep).rev() {
                        let _ = std::fs::rename(numbered(path, n), numbered(path, n + 1));
                    }
                    std::fs::rename(&*path, numbered(path, 1))?;
                    *file = open_file(path)?;
                    *size = 0;
                    *opened = Instant::now();
                }
                file.write_all(bytes)?;
                *size += bytes.len() as u64;
                Ok(())
            }
            Output::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_every_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("e.jsonl");
        let rot = Rotation {
            max_bytes: Some(100),
            max_age: None,
            keep: 2,
        };
        let mut out = open(&path, rot).expect("open");
        for i in 0..6 {
            out.write_batch(format!("{{\"n\":{i:040}}}\n").as_bytes())
                .expect("write");
        }
        let lines = |p: PathBuf| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
        assert_eq!(lines(path.clone()), 2);
        assert_eq!(lines(numbered(&path, 1)), 2);
        assert_eq!(lines(numbered(&path, 2)), 2);
        assert!(!numbered(&path, 3).exists(), "only `keep` rotated files");
    }
}
