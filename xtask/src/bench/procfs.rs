//! What the bench reads from `/proc`: a process's memory (`VmRSS`, `VmHWM`) and CPU time, the
//! open-file limit, and the CPU model. The parsers take text so they are tested without a process.

use std::time::Duration;

use crate::server::Server;

use anyhow::{Context, Result, bail, ensure};

/// Memory figures of one process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now, in bytes (`VmRSS`).
    pub rss: u64,
    /// Peak resident set size since the process started, in bytes (`VmHWM`).
    pub hwm: u64,
    /// The anonymous part of `rss` (heap, stacks), in bytes (`RssAnon`; 0 if the kernel does
    /// not say).
    pub anon: u64,
    /// The file-backed part of `rss` (mostly the binary's own pages), in bytes (`RssFile`).
    pub file: u64,
}

/// Reads `/proc/<pid>/status`.
pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&text).with_context(|| format!("parsing {path}"))
}

/// Extracts `VmRSS` and `VmHWM` (both given in kB) from the text of `/proc/PID/status`.
pub fn parse_status(text: &str) -> Result<Memory> {
    let field = |name: &str| -> Result<u64> {
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .with_context(|| format!("no {name} line"))?;
        let mut words = line.split_whitespace();
        let (Some(number), Some("kB"), None) = (words.next(), words.next(), words.next()) else {
            bail!("{name} is not `<number> kB`: {line:?}");
        };
        let kib: u64 = number
            .parse()
            .with_context(|| format!("{name} is not a number: {number:?}"))?;
        Ok(kib * 1024)
    };
    Ok(Memory {
        rss: field("VmRSS")?,
        hwm: field("VmHWM")?,
        // Linux 4.5 and later split RSS; older kernels only lack the detail.
        anon: field("RssAnon").unwrap_or(0),
        file: field("RssFile").unwrap_or(0),
    })
}

/// CPU time (user plus system, all threads) a process has used so far, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat_cpu(&text).with_context(|| format!("parsing {path}"))
}

/// Clock ticks per second in `/proc/PID/stat`: `USER_HZ`, fixed at 100 on Linux for every
/// architecture the kernel exports to user space (`getconf CLK_TCK`).
const TICKS_PER_SECOND: u64 = 100;

/// `utime + stime` from the text of `/proc/PID/stat`.
///
/// The second field is the command name in parentheses and may itself contain spaces and
/// parentheses, so fields are counted from the last `)`: after it come field 3 (state) onwards,
/// and utime and stime are fields 14 and 15.
pub fn parse_stat_cpu(text: &str) -> Result<Duration> {
    let (_, rest) = text
        .rsplit_once(')')
        .context("no `)` after the command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    ensure!(
        fields.len() > 12,
        "only {} fields after the name",
        fields.len()
    );
    let ticks = |index: usize| -> Result<u64> {
        fields[index]
            .parse()
            .with_context(|| format!("field {} is not a number: {:?}", index + 3, fields[index]))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / TICKS_PER_SECOND))
}

/// Time one CPU has spent so far, from `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTicks {
    /// Running anything (user, nice, system, irq, softirq) or stolen by the hypervisor.
    pub busy: u64,
    /// Everything, idle and I/O wait included.
    pub total: u64,
}

impl CpuTicks {
    /// The busy share of the time between `earlier` and `self` (0 when no tick passed).
    pub fn busy_since(self, earlier: CpuTicks) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        // Tick counts over a run are small: no precision is lost.
        #[allow(clippy::cast_precision_loss)]
        let share = self.busy.saturating_sub(earlier.busy) as f64 / total as f64;
        share
    }
}

/// Reads CPU `cpu`'s line of `/proc/stat`.
pub fn cpu_ticks(cpu: u32) -> Result<CpuTicks> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_cpu_ticks(&text, cpu).context("parsing /proc/stat")
}

/// Extracts the `cpuN` line of `/proc/stat`: user nice system idle iowait irq softirq steal
/// (guest time is already inside user and nice).
pub fn parse_cpu_ticks(text: &str, cpu: u32) -> Result<CpuTicks> {
    let label = format!("cpu{cpu}");
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some(label.as_str()))
        .with_context(|| format!("no {label} line"))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| {
            field
                .parse()
                .with_context(|| format!("not a tick count in {label}: {field:?}"))
        })
        .collect::<Result<_>>()?;
    ensure!(ticks.len() >= 5, "{label} has only {} fields", ticks.len());
    let total: u64 = ticks.iter().sum();
    let idle = ticks[3] + ticks[4];
    Ok(CpuTicks {
        busy: total - idle,
        total,
    })
}

/// Soft and hard limits on open files, from `/proc/self/limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// The limit in force (`ulimit -n`).
    pub soft: u64,
    /// How far an unprivileged process may raise it.
    pub hard: u64,
}

/// Extracts the `Max open files` line of `/proc/PID/limits`; `unlimited` reads as `u64::MAX`.
pub fn parse_file_limit(text: &str) -> Result<FileLimit> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .context("no `Max open files` line")?;
    let mut words = line.split_whitespace();
    let mut limit = || -> Result<u64> {
        match words.next() {
            Some("unlimited") => Ok(u64::MAX),
            Some(number) => number
                .parse()
                .with_context(|| format!("not a limit: {number:?}")),
            None => bail!("`Max open files` has too few columns: {line:?}"),
        }
    };
    Ok(FileLimit {
        soft: limit()?,
        hard: limit()?,
    })
}

/// Makes sure this process (and so every child it starts: servers and wrk) may open `needed`
/// files, raising the soft limit towards the hard one with util-linux's `prlimit` if needed.
///
/// `prlimit --pid` changes the limit of a running process, which saves xtask an `unsafe`
/// `setrlimit` call; raising a soft limit up to the hard one needs no privilege.
pub fn ensure_file_limit(needed: u64) -> Result<FileLimit> {
    let read = || -> Result<FileLimit> {
        let text =
            std::fs::read_to_string("/proc/self/limits").context("reading /proc/self/limits")?;
        parse_file_limit(&text)
    };
    let limit = read()?;
    if limit.soft >= needed {
        return Ok(limit);
    }
    ensure!(
        limit.hard >= needed,
        "the bench needs about {needed} open files per process, but the hard limit is \
         {}; raise it (ulimit -Hn) as root",
        limit.hard
    );
    let wanted = limit.hard.min(needed.max(65_536));
    let status = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={wanted}:{}", limit.hard))
        .status()
        .context("running prlimit (util-linux) to raise the open-file limit")?;
    ensure!(status.success(), "prlimit failed: {status}");
    let raised = read()?;
    ensure!(
        raised.soft >= needed,
        "the open-file limit is still {} after prlimit",
        raised.soft
    );
    Ok(raised)
}

/// The CPUs this process may run on, from the `Cpus_allowed_list` line of `/proc/self/status`.
pub fn allowed_cpus() -> Result<Vec<u32>> {
    let text = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let list = text
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .context("no Cpus_allowed_list line in /proc/self/status")?;
    parse_cpu_list(list)
}

/// Reads a kernel CPU list such as `0-1` or `0,2-3,7` into the CPU numbers, in order.
pub fn parse_cpu_list(list: &str) -> Result<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|part| !part.is_empty()) {
        let number = |text: &str| -> Result<u32> {
            text.trim()
                .parse()
                .with_context(|| format!("not a CPU number: {text:?}"))
        };
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (number(first)?, number(last)?);
                ensure!(first <= last, "backwards CPU range {part:?}");
                cpus.extend(first..=last);
            }
            None => cpus.push(number(part)?),
        }
    }
    ensure!(!cpus.is_empty(), "empty CPU list {list:?}");
    Ok(cpus)
}

/// The first `model name` of `/proc/cpuinfo`, and how many processors it lists.
pub fn parse_cpuinfo(text: &str) -> (Option<String>, usize) {
    let value = |line: &str, key: &str| -> Option<String> {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then(|| value.trim().to_owned())
    };
    let model = text.lines().find_map(|line| value(line, "model name"));
    let processors = text
        .lines()
        .filter(|line| value(line, "processor").is_some())
        .count();
    (model, processors)
}

impl Server {
    /// Current and peak resident memory.
    pub fn memory(&self) -> Result<Memory> {
        memory(self.pid()).with_context(|| format!("reading {}'s memory", self.name))
    }

    /// CPU time used so far.
    pub fn cpu_time(&self) -> Result<Duration> {
        cpu_time(self.pid()).with_context(|| format!("reading {}'s CPU time", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\taccountservice\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  612345 kB\nVmSize:\t  612340 kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\n\
        VmHWM:\t    9876 kB\nVmRSS:\t    3456 kB\nRssAnon:\t    1000 kB\nRssFile:\t    2456 kB\n\
        Threads:\t3\n";

    #[test]
    fn status_gives_rss_and_peak_rss_in_bytes() {
        let memory = parse_status(STATUS).unwrap();
        assert_eq!(memory.rss, 3456 * 1024);
        assert_eq!(memory.hwm, 9876 * 1024);
        assert_eq!(memory.anon, 1000 * 1024);
        assert_eq!(memory.file, 2456 * 1024);
    }

    #[test]
    fn status_without_vmrss_is_an_error_naming_the_field() {
        // A zombie's status has no Vm* lines at all.
        let error = parse_status("Name:\tx\nState:\tZ (zombie)\n").unwrap_err();
        assert!(format!("{error}").contains("VmHWM") || format!("{error}").contains("VmRSS"));
    }

    #[test]
    fn status_with_an_unexpected_unit_is_refused() {
        let text = STATUS.replace("3456 kB", "3456 MB");
        assert!(parse_status(&text).is_err());
    }

    #[test]
    fn stat_sums_user_and_system_ticks_of_a_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let text = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 130 0 0 20 0 \
                    3 0 123456 612345678 864 18446744073709551615\n";
        assert_eq!(parse_stat_cpu(text).unwrap(), Duration::from_millis(3800));
    }

    #[test]
    fn a_truncated_stat_is_an_error() {
        assert!(parse_stat_cpu("4242 (x) S 1 2 3").is_err());
        assert!(parse_stat_cpu("garbage").is_err());
    }

    #[test]
    fn stat_gives_busy_and_total_ticks_of_one_cpu() {
        let text = "cpu  146350 0 22102 132857 1189 0 3596 73 0 0\n\
                    cpu0 66159 0 10209 74279 371 0 2081 33 0 0\n\
                    cpu1 80191 5 11892 58578 817 0 1514 40 0 0\nintr 1 2 3\n";
        let cpu1 = parse_cpu_ticks(text, 1).unwrap();
        assert_eq!(cpu1.total, 80191 + 5 + 11892 + 58578 + 817 + 1514 + 40);
        assert_eq!(cpu1.busy, 80191 + 5 + 11892 + 1514 + 40);
        assert!(parse_cpu_ticks(text, 2).is_err());
    }

    #[test]
    fn the_busy_share_is_taken_between_two_readings() {
        let before = CpuTicks {
            busy: 100,
            total: 200,
        };
        let after = CpuTicks {
            busy: 175,
            total: 300,
        };
        assert!((after.busy_since(before) - 0.75).abs() < 1e-9);
        assert!(before.busy_since(before).abs() < 1e-9);
    }

    #[test]
    fn limits_give_soft_and_hard_open_files() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(
            parse_file_limit(text).unwrap(),
            FileLimit {
                soft: 1024,
                hard: 524_288
            }
        );
    }

    #[test]
    fn an_unlimited_open_file_limit_reads_as_the_largest_number() {
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_file_limit(text).unwrap().hard, u64::MAX);
    }

    #[test]
    fn cpu_lists_expand_ranges_and_singles() {
        assert_eq!(parse_cpu_list("0-1\n").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("\t0,2-4,7").unwrap(), vec![0, 2, 3, 4, 7]);
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    #[test]
    fn cpuinfo_gives_the_first_model_and_the_processor_count() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) \
                    Processor\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) \
                    Processor\n";
        let (model, processors) = parse_cpuinfo(text);
        assert_eq!(model.as_deref(), Some("Intel(R) Xeon(R) Processor"));
        assert_eq!(processors, 2);
    }
}
