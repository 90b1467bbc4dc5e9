//! The JSON lines file (or standard output) that SIEM shippers tail.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Where lines go.
pub enum Output {
    /// Appending file.
    File(File),
    /// Standard output (`jsonl = "-"`).
    Stdout,
}

/// Opens `path` for appending (created with mode 0640: events name employees).
pub fn open(path: &Path) -> io::Result<Output> {
    if path == Path::new("-") {
        return Ok(Output::Stdout);
    }
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o640);
    }
    opts.open(path).map(Output::File).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot open event file {}: {e}", path.display()),
        )
    })
}

impl Output {
    /// Writes whole lines and pushes them to the OS, so a crash after this loses nothing written.
    pub fn write_batch(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::File(f) => f.write_all(bytes),
            Output::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
        }
    }
}
