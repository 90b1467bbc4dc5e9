//! The process's own resource use, read from `/proc` at scrape time, for the standard
//! `process_*` metrics every Prometheus client exports (so the usual dashboards and alerts on
//! CPU, memory and file descriptors work for locgate too).

/// What `/proc/self` says now. Fields the system does not provide are `None` (not Linux, or
/// `/proc` not mounted) and are left out of `/metrics` rather than shown as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory, bytes.
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The descriptor limit (soft `RLIMIT_NOFILE`).
    pub max_fds: Option<u64>,
    /// When the process started, seconds since the epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self/stat`, `/proc/self/fd`, `/proc/self/limits` and `/proc/stat`.
    pub fn read() -> ProcessStats {
        let ticks = clock_ticks();
        let page = page_size();
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
        // Fields after the command name, counted from `state` (field 3 of proc(5)) as 0.
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok());
        let cpu_seconds = match (field(11), field(12), ticks) {
            (Some(utime), Some(stime), Some(t)) => Some((utime + stime) as f64 / t),
            _ => None,
        };
        let start_time_seconds = match (field(19), boot_time(), ticks) {
            (Some(start), Some(boot), Some(t)) => Some(boot as f64 + start as f64 / t),
            _ => None,
        };
        ProcessStats {
            cpu_seconds,
            resident_bytes: field(21).zip(page).map(|(pages, p)| pages * p),
            virtual_bytes: field(20),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
            max_fds: max_open_files(),
            start_time_seconds,
        }
    }
}

/// The fields of `/proc/self/stat` after `(comm)`: the command name may itself hold spaces and
/// parentheses, so the split starts after its last `)`.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// `btime` from `/proc/stat`: when the system booted, seconds since the epoch.
fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_open_files() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}

/// Clock ticks per second (`_SC_CLK_TCK`), the unit of the CPU and start times in `stat`.
fn clock_ticks() -> Option<f64> {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (t > 0).then_some(t as f64)
}

/// The memory page size, the unit of the resident set in `stat`.
fn page_size() -> Option<u64> {
    // SAFETY: sysconf only reads a system constant.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read();
        assert!(p.cpu_seconds.is_some_and(|c| c >= 0.0), "{p:?}");
        assert!(p.resident_bytes.is_some_and(|r| r > 1024 * 1024), "{p:?}");
        assert!(p.open_fds.is_some_and(|n| n >= 3), "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let started = p.start_time_seconds.unwrap_or(0.0);
        assert!(
            started > now - 86_400.0 && started <= now + 1.0,
            "{started} vs {now}"
        );
    }

    #[test]
    fn a_command_name_with_parentheses_does_not_shift_fields() {
        let f = stat_fields("42 (a) b (c)) S 1 2 3");
        assert_eq!(f, ["S", "1", "2", "3"]);
    }
}
