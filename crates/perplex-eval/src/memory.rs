//! The memory a run may use, and the batch size that fits in it.
//!
//! Before the first forward pass the engine asks each model what one batch
//! needs ([`perplex_core::CausalLm::working_memory`]: the model is already loaded, so only
//! the working set counts) and compares it with what the machine has left:
//! the smallest of `MemAvailable` (`/proc/meminfo`), the process's cgroup
//! limit less its usage (containers, Slurm jobs), and [`LIMIT_VAR`] when
//! set. A default batch size is lowered until a batch fits (results never
//! depend on it); one that was asked for, or a window that does not fit even
//! alone, is an [`EvalError::OutOfMemory`] naming the figures, before
//! anything is allocated for it.

use std::path::Path;

use perplex_core::plan::Window;

use crate::engine::EvalSettings;
use crate::error::EvalError;

/// Environment variable capping the memory a run plans for, in bytes or
/// with a `K`, `M`, `G` or `T` suffix (powers of 1024), e.g. `8G`.
pub const LIMIT_VAR: &str = "PERPLEX_MAX_MEMORY";

/// Memory a run may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    /// Bytes.
    pub bytes: u64,
    /// What set the figure, e.g. `MemAvailable in /proc/meminfo`.
    pub source: String,
}

/// What this process may still allocate: the tightest of the system's
/// available memory, its cgroup's room and [`LIMIT_VAR`]; `None` when none
/// can be read (not Linux).
pub fn available() -> Result<Option<Available>, EvalError> {
    let mut found: Vec<Available> = Vec::new();
    if let Some(value) = std::env::var_os(LIMIT_VAR).filter(|v| !v.is_empty()) {
        let text = value.to_string_lossy();
        let bytes = parse_bytes(&text).ok_or_else(|| EvalError::MemoryLimit {
            value: text.to_string(),
        })?;
        found.push(Available {
            bytes,
            source: format!("{LIMIT_VAR}={text}"),
        });
    }
    if let Some(bytes) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| mem_available(&t))
    {
        found.push(Available {
            bytes,
            source: "MemAvailable in /proc/meminfo".into(),
        });
    }
    if let Some(bytes) = cgroup_room() {
        found.push(Available {
            bytes,
            source: "the cgroup's memory.max less its memory.current".into(),
        });
    }
    Ok(found.into_iter().min_by_key(|a| a.bytes))
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Room left under the cgroup v2 memory limit of this process, if it has one.
fn cgroup_room() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?; // "max": no limit
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// `8G`, `512M`, `1.5G`, `1048576`: bytes (powers of 1024).
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let scale: u64 = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    let value: f64 = number.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some((value * scale as f64) as u64)
}

/// `bytes` for people: `512 MiB`, `3.2 GiB`.
pub fn human(bytes: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    const GIB: f64 = (1u64 << 30) as f64;
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else {
        format!("{:.0} MiB", (b / MIB).ceil())
    }
}

/// The batch size to run `windows` with: `settings`' when its batches fit
/// in memory, else (for a default batch size) the largest that does.
/// `need(windows, len)` is the models' working set for a batch (the largest
/// of them: models run one after the other on a batch); `None`: not known,
/// and not checked.
pub(crate) fn fit_batch(
    need: impl Fn(usize, usize) -> Option<u64>,
    windows: &[Window],
    settings: &EvalSettings,
) -> Result<usize, EvalError> {
    let wanted = settings.batch_size().min(windows.len()).max(1);
    let len = windows.iter().map(|w| w.tokens.len()).max().unwrap_or(0);
    fit_windows(need, wanted, len, settings)
}

/// The windows of `len` tokens per batch to run with: `wanted` when they
/// fit in memory, else (for a default batch size) the most that do.
pub(crate) fn fit_windows(
    need: impl Fn(usize, usize) -> Option<u64>,
    wanted: usize,
    len: usize,
    settings: &EvalSettings,
) -> Result<usize, EvalError> {
    let Some(needed) = need(wanted, len) else {
        return Ok(settings.batch_size());
    };
    let Some(available) = available()? else {
        return Ok(settings.batch_size());
    };
    if needed <= available.bytes {
        return Ok(settings.batch_size());
    }
    let fits = |w: usize| need(w, len).is_some_and(|n| n <= available.bytes);
    // the need grows with the windows: the last that fits, by bisection
    // (0 "fits", `wanted` does not)
    let (mut lo, mut hi) = (0usize, wanted);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if lo >= 1 && !settings.batch_size_asked() {
        return Ok(lo);
    }
    Err(EvalError::OutOfMemory {
        windows: wanted,
        len,
        needed,
        available: available.bytes,
        limited_by: available.source,
        fits: lo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(parse_bytes("8G"), Some(8 << 30));
        assert_eq!(parse_bytes("8GiB"), Some(8 << 30));
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("1.5K"), Some(1536));
        for bad in ["", "G", "8X", "-1G", "lots", "nanG", "1e400"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn mem_available_is_read_in_kib() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2000 kB\n";
        assert_eq!(mem_available(meminfo), Some(2000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn sizes_print_for_people() {
        assert_eq!(human(3 << 30), "3.0 GiB");
        assert_eq!(human(1), "1 MiB");
        assert_eq!(human(700 << 20), "700 MiB");
    }
}
