//! What a process costs, from Linux's `/proc`: CPU time (user + system, all threads) and
//! resident memory.

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` times, from `getconf CLK_TCK`; 100 (the value on
/// every Linux platform Rust supports) if that cannot be run.
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// Parses the CPU time (utime + stime, fields 14 and 15) out of a `/proc/PID/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are counted after the
/// last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time used so far by process `pid` (`None`: this process), all threads, user + system.
/// Resolution is one clock tick (10 ms).
pub fn cpu_time(pid: Option<u32>) -> io::Result<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(&path)?;
    let ticks =
        stat_cpu_ticks(&stat).ok_or_else(|| io::Error::other(format!("{path}: unexpected format")))?;
    Ok(Duration::from_micros(ticks * 1_000_000 / clock_ticks()))
}

/// Resident set size of process `pid` in bytes (`VmRSS` in `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other(format!("{path}: no VmRSS")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_a_tricky_name() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0 5 0 0";
        assert_eq!(stat_cpu_ticks(line), Some(281));
    }

    #[test]
    fn this_process() {
        assert!(cpu_time(None).is_ok());
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
    }
}
