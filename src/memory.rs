//! How much memory this process can still get: what recipe validation and the data readers compare their needs
//! with, so that a value or a file header that cannot fit is an error before anything is allocated, rather than an
//! abort ("memory allocation of … bytes failed") or the OOM killer halfway through a run.
//!
//! On Linux the figure is `MemAvailable + SwapFree` from `/proc/meminfo` (`MemFree` on kernels older than 3.14,
//! which lack `MemAvailable`), lowered to the room left under the process's cgroup memory limit when it has one
//! (v2 `memory.max - memory.current`, v1 `memory.limit_in_bytes - memory.usage_in_bytes`): in a container
//! `/proc/meminfo` shows the host's memory, not what the container may use. Where none of that can be read (other
//! systems), it is [`FALLBACK_BYTES`], more than any machine burnish runs on has, so that only values that could
//! never fit are refused there.

use std::path::{Path, PathBuf};

/// What [`available`] assumes when it cannot read the system's figures: 1 TiB.
pub const FALLBACK_BYTES: u64 = 1 << 40;

/// Memory this process can still allocate, and where the figure came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    /// Bytes.
    pub bytes: u64,
    /// Where the figure came from, e.g. `MemAvailable + SwapFree in /proc/meminfo`.
    pub source: String,
}

impl Available {
    /// A fixed figure, e.g. for tests.
    pub fn fixed(bytes: u64, source: impl Into<String>) -> Self {
        Available { bytes, source: source.into() }
    }
}

/// The memory this process can still allocate now (see the module documentation for how it is found).
pub fn available() -> Available {
    let system = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| parse_meminfo(&text));
    let cgroup = cgroup_room();
    match (system, cgroup) {
        (Some((bytes, _)), Some((room, path))) if room < bytes => {
            Available { bytes: room, source: format!("the cgroup limit {} less its usage", path.display()) }
        }
        (Some((bytes, source)), _) => Available { bytes, source: source.to_string() },
        (None, Some((room, path))) => {
            Available { bytes: room, source: format!("the cgroup limit {} less its usage", path.display()) }
        }
        (None, None) => Available {
            bytes: FALLBACK_BYTES,
            source: "assumed: /proc/meminfo is not readable on this system".to_string(),
        },
    }
}

/// `MemAvailable + SwapFree` (or `MemFree + SwapFree`) from the text of `/proc/meminfo`, with its source.
fn parse_meminfo(text: &str) -> Option<(u64, &'static str)> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let mut words = rest.split_whitespace();
            let value: u64 = words.next()?.parse().ok()?;
            // Every size in /proc/meminfo is in kB (KiB); a line without the unit is a count, not a size.
            (words.next() == Some("kB")).then(|| value.saturating_mul(1024))
        })
    };
    let swap = field("SwapFree").unwrap_or(0);
    match field("MemAvailable") {
        Some(mem) => Some((mem.saturating_add(swap), "MemAvailable + SwapFree in /proc/meminfo")),
        None => field("MemFree").map(|mem| (mem.saturating_add(swap), "MemFree + SwapFree in /proc/meminfo")),
    }
}

/// Bytes left under this process's cgroup memory limit, and the limit file, when there is a limit.
fn cgroup_room() -> Option<(u64, PathBuf)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok();
    let root = Path::new("/sys/fs/cgroup");
    // cgroup v2: the line `0::/path`; inside a cgroup namespace the path is `/` and the files sit at the root.
    let v2_dir = own
        .as_deref()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("0::")))
        .map(|p| root.join(p.trim().trim_start_matches('/')));
    let mut candidates: Vec<(PathBuf, PathBuf)> = Vec::new();
    if let Some(dir) = v2_dir {
        candidates.push((dir.join("memory.max"), dir.join("memory.current")));
    }
    candidates.push((root.join("memory.max"), root.join("memory.current")));
    candidates.push((root.join("memory/memory.limit_in_bytes"), root.join("memory/memory.usage_in_bytes")));
    candidates.into_iter().find_map(|(limit_file, usage_file)| {
        let limit = read_number(&limit_file)?;
        let usage = read_number(&usage_file).unwrap_or(0);
        Some((limit.saturating_sub(usage), limit_file))
    })
}

/// A file holding one number; `None` when absent, unreadable or `max` (no limit).
fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `bytes` for people: `512 B`, `1.5 KiB`, `20.4 GiB`, `2.7 EiB`; beyond that in scientific notation.
pub fn format_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    for unit in UNITS {
        value /= 1024.0;
        if value < 1024.0 {
            return format!("{value:.1} {unit}");
        }
    }
    format!("{:.1e} B", bytes as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_adds_free_swap_to_available_memory() {
        let text = "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   2000 kB\n\
                    SwapTotal:      0 kB\nSwapFree:       500 kB\nHugePages_Total:       0\n";
        assert_eq!(parse_meminfo(text), Some((2500 * 1024, "MemAvailable + SwapFree in /proc/meminfo")));
        // Kernels before 3.14 have no MemAvailable.
        let old = "MemTotal: 4000 kB\nMemFree: 1000 kB\n";
        assert_eq!(parse_meminfo(old), Some((1000 * 1024, "MemFree + SwapFree in /proc/meminfo")));
        assert_eq!(parse_meminfo("garbage"), None);
        assert_eq!(parse_meminfo("MemAvailable: 12\n"), None, "a size without its unit is not trusted");
    }

    #[cfg(target_os = "linux")]
    /// A size field of `/proc/meminfo` in bytes, read without [`parse_meminfo`].
    fn meminfo_field(text: &str, key: &str) -> Option<u64> {
        let line = text.lines().find(|l| l.split(':').next() == Some(key))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    #[cfg(target_os = "linux")]
    /// `MemAvailable + SwapFree` as read now, independently of [`parse_meminfo`].
    fn system_now() -> u64 {
        let text = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo on Linux");
        meminfo_field(&text, "MemAvailable").expect("MemAvailable") + meminfo_field(&text, "SwapFree").unwrap_or(0)
    }

    #[cfg(target_os = "linux")]
    /// The room under the first cgroup limit found (v2 own, v2 root, v1), read independently of [`cgroup_room`].
    fn cgroup_now() -> Option<u64> {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let v2 = own.lines().find_map(|l| l.strip_prefix("0::")).map(|p| format!("/sys/fs/cgroup/{}", p.trim()));
        let number = |p: String| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok();
        let pairs = v2.map(|d| (format!("{d}/memory.max"), format!("{d}/memory.current"))).into_iter().chain([
            ("/sys/fs/cgroup/memory.max".into(), "/sys/fs/cgroup/memory.current".into()),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes".into(),
                "/sys/fs/cgroup/memory/memory.usage_in_bytes".into(),
            ),
        ]);
        pairs.into_iter().find_map(|(limit, usage)| Some(number(limit)?.saturating_sub(number(usage).unwrap_or(0))))
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn available_memory_is_what_the_system_reports() {
        // Other processes allocate and free between the reads: the figure must lie between the independent reads
        // taken just before and just after it, give or take 256 MiB.
        let slack = 256u64 << 20;
        let (system_before, cgroup_before) = (system_now(), cgroup_now());
        let a = available();
        let (system_after, cgroup_after) = (system_now(), cgroup_now());
        let expect = |system: u64, cgroup: Option<u64>| cgroup.map_or(system, |c| c.min(system));
        let (e1, e2) = (expect(system_before, cgroup_before), expect(system_after, cgroup_after));
        let (low, high) = (e1.min(e2).saturating_sub(slack), e1.max(e2) + slack);
        assert!((low..=high).contains(&a.bytes), "{a:?}: the system reports {e1} then {e2} bytes");
        let by_cgroup =
            cgroup_before.is_some_and(|c| c < system_before) && cgroup_after.is_some_and(|c| c < system_after);
        if by_cgroup {
            assert!(a.source.contains("cgroup"), "{a:?}");
        } else if cgroup_before.is_none_or(|c| c > system_before + slack) {
            assert_eq!(a.source, "MemAvailable + SwapFree in /proc/meminfo");
        }
    }

    #[cfg(not(target_os = "linux"))]
    #[test]
    fn available_memory_is_the_fallback_without_proc() {
        assert_eq!(available().bytes, FALLBACK_BYTES);
    }

    #[test]
    fn bytes_are_formatted_in_binary_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 << 30), "3.0 GiB");
        assert_eq!(format_bytes(u128::from(u64::MAX)), "16.0 EiB");
        assert_eq!(format_bytes(u128::MAX), "3.4e38 B");
    }
}
