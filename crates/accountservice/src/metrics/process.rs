//! The standard `process_*` metrics every Prometheus client library exports, read from
//! `/proc/self` at scrape time: the same names, units and sources as Go's client (procfs).
//!
//! - `process_start_time_seconds`: Unix time the process started (read once).
//! - `process_cpu_seconds_total`: user plus system CPU time.
//! - `process_resident_memory_bytes`, `process_virtual_memory_bytes`.
//! - `process_open_fds`, `process_max_fds` (the soft limit),
//!   `process_virtual_memory_max_bytes` (the soft limit; unlimited as 2^64, as Go's client).
//!
//! A scrape costs four small reads of `/proc` and no allocation on any request's path. Where
//! `/proc` cannot be read (not Linux), a series is left out rather than failing the scrape.

use std::{fs, path::Path};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};

/// The kernel's unit for process times in `/proc`: `USER_HZ`, 100 on every architecture this
/// service is built for (Go's procfs assumes the same). Reading it (`sysconf`) needs `unsafe`.
const USER_HZ: f64 = 100.0;

/// Collects the process metrics of this process at each scrape.
#[derive(Debug)]
pub struct ProcessCollector {
    /// Fixed for the life of the process, so computed once.
    start_time_seconds: Option<f64>,
}

impl ProcessCollector {
    /// Reads the start time once; everything else is read at each scrape.
    pub fn new() -> Self {
        Self {
            start_time_seconds: start_time_seconds(Path::new("/proc")),
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let sample = Sample::read(Path::new("/proc/self"));
        let gauges = [
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                self.start_time_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                sample.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                sample.virtual_bytes,
            ),
            (
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes",
                sample.max_virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                sample.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                sample.max_fds,
            ),
        ];
        if let Some(seconds) = sample.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            counter.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?)?;
        }
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

/// One reading of the process, each figure `None` when it could not be read.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    max_virtual_bytes: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

impl Sample {
    /// Reads `stat`, `status`, `limits` and `fd/` under `process` (`/proc/self`).
    fn read(process: &Path) -> Sample {
        let stat = fs::read_to_string(process.join("stat")).ok();
        let status = fs::read_to_string(process.join("status")).ok();
        let limits = fs::read_to_string(process.join("limits")).ok();
        let stat_fields = stat.as_deref().and_then(stat_fields);
        Sample {
            cpu_seconds: stat_fields.as_ref().and_then(|fields| {
                let ticks = field(fields, UTIME)? + field(fields, STIME)?;
                Some(ticks as f64 / USER_HZ)
            }),
            resident_bytes: status.as_deref().and_then(|s| status_kib(s, "VmRSS:")),
            virtual_bytes: status.as_deref().and_then(|s| status_kib(s, "VmSize:")),
            max_virtual_bytes: limits
                .as_deref()
                .and_then(|l| soft_limit(l, "Max address space")),
            open_fds: fs::read_dir(process.join("fd"))
                .ok()
                .map(|entries| entries.count() as f64),
            max_fds: limits
                .as_deref()
                .and_then(|l| soft_limit(l, "Max open files")),
        }
    }
}

// Positions in `/proc/<pid>/stat` counted from the field after the command name (the state,
// field 3 in proc(5)), because the name itself may contain spaces and parentheses.
const UTIME: usize = 11;
const STIME: usize = 12;
const STARTTIME: usize = 19;

/// The fields of a `stat` line after the parenthesised command name.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_ascii_whitespace().collect())
}

fn field(fields: &[&str], index: usize) -> Option<u64> {
    fields.get(index)?.parse().ok()
}

/// A `Vm…:   1234 kB` line of `/proc/<pid>/status`, in bytes.
fn status_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib as f64 * 1024.0)
}

/// The soft limit of a line of `/proc/<pid>/limits`; `unlimited` as 2^64, as Go's client.
fn soft_limit(limits: &str, name: &str) -> Option<f64> {
    let line = limits.lines().find(|line| line.starts_with(name))?;
    match line[name.len()..].split_ascii_whitespace().next()? {
        "unlimited" => Some(u64::MAX as f64),
        value => value.parse::<u64>().ok().map(|value| value as f64),
    }
}

/// When this process started, in seconds since the Unix epoch: the boot time (`btime` of
/// `/proc/stat`) plus the process's start in ticks after boot.
fn start_time_seconds(proc: &Path) -> Option<f64> {
    let boot: u64 = fs::read_to_string(proc.join("stat"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let stat = fs::read_to_string(proc.join("self/stat")).ok()?;
    let ticks = field(&stat_fields(&stat)?, STARTTIME)?;
    Some(boot as f64 + ticks as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    const STAT: &str = "4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                        250 130 0 0 20 0 3 0 123456 10485760 1100 18446744073709551615";

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let fields = stat_fields(STAT).unwrap();
        assert_eq!(fields[0], "S");
        assert_eq!(field(&fields, UTIME), Some(250));
        assert_eq!(field(&fields, STIME), Some(130));
        assert_eq!(field(&fields, STARTTIME), Some(123_456));
    }

    #[test]
    fn status_and_limits_lines_are_read_in_bytes_and_soft_limits() {
        let status = "Name:\tx\nVmSize:\t   10240 kB\nVmRSS:\t    4400 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(4400.0 * 1024.0));
        assert_eq!(status_kib(status, "VmSize:"), Some(10240.0 * 1024.0));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n\
                      Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(soft_limit(limits, "Max open files"), Some(1024.0));
        assert_eq!(
            soft_limit(limits, "Max address space"),
            Some(u64::MAX as f64)
        );
    }

    #[test]
    fn this_process_reads_as_itself() {
        let sample = Sample::read(Path::new("/proc/self"));
        let resident = sample.resident_bytes.unwrap();
        assert!(resident > 1024.0 * 1024.0, "{sample:?}");
        assert!(sample.virtual_bytes.unwrap() >= resident, "{sample:?}");
        assert!(sample.cpu_seconds.unwrap() >= 0.0, "{sample:?}");
        // stdin, stdout and stderr at least; no more than the limit.
        let open = sample.open_fds.unwrap();
        assert!(open >= 3.0 && open <= sample.max_fds.unwrap(), "{sample:?}");

        let started = start_time_seconds(Path::new("/proc")).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // This test process started within the last hour, and not in the future (a tick of
        // rounding aside).
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
    }

    #[test]
    fn a_missing_proc_leaves_every_series_out() {
        assert_eq!(Sample::read(Path::new("/nonexistent")), Sample::default());
        assert_eq!(start_time_seconds(Path::new("/nonexistent")), None);
    }
}
