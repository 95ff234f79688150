//! What the bench reads from `/proc` (through the `procfs` crate): a server's memory and CPU
//! time, a core's busy time, the CPUs this process may use, and the machine the run is on.

use anyhow::{Context, Result};
use procfs::process::Process;
use procfs::{Current as _, CurrentSI as _};
use serde::Serialize;
use xshell::{Shell, cmd};

use crate::project::Project;
use crate::server::Server;

/// Memory of one process, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss: u64,
    /// Peak resident since start (`VmHWM`).
    pub hwm: u64,
    /// The anonymous part of `rss`: heap, stacks (`RssAnon`).
    pub anon: u64,
    /// The file-backed part of `rss`, mostly the binary's own pages (`RssFile`).
    pub file: u64,
}

impl Server {
    fn process(&self) -> Result<Process> {
        let pid = i32::try_from(self.pid())?;
        Process::new(pid).with_context(|| format!("reading /proc of {}", self.name))
    }

    /// Current and peak resident memory.
    pub fn memory(&self) -> Result<Memory> {
        let status = self.process()?.status()?;
        let kib = |value: Option<u64>| value.map(|kib| kib * 1024).context("no memory figures");
        Ok(Memory {
            rss: kib(status.vmrss)?,
            hwm: kib(status.vmhwm)?,
            anon: kib(status.rssanon)?,
            file: kib(status.rssfile)?,
        })
    }

    /// CPU time used so far (user and system, all threads), in seconds.
    pub fn cpu_time(&self) -> Result<f64> {
        let stat = self.process()?.stat()?;
        Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
    }
}

/// Time one CPU has spent, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTicks {
    /// Running anything (user, nice, system, irq, softirq) or stolen by the hypervisor.
    pub busy: u64,
    /// Everything, idle and I/O wait included.
    pub total: u64,
}

impl CpuTicks {
    /// CPU `cpu`'s line of `/proc/stat` (which lists the online CPUs, numbered densely here).
    pub fn read(cpu: u32) -> Result<Self> {
        let stats = procfs::KernelStats::current()?;
        let time = stats
            .cpu_time
            .get(cpu as usize)
            .context("no such CPU in /proc/stat")?;
        let [iowait, irq, softirq, steal] =
            [time.iowait, time.irq, time.softirq, time.steal].map(Option::unwrap_or_default);
        let busy = time.user + time.nice + time.system + irq + softirq + steal;
        Ok(Self {
            busy,
            total: busy + time.idle + iowait,
        })
    }

    /// The busy share of the time between `earlier` and `self` (0 when no tick passed).
    pub fn busy_since(self, earlier: CpuTicks) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        let busy = self.busy.saturating_sub(earlier.busy);
        if total == 0 {
            0.0
        } else {
            busy as f64 / total as f64
        }
    }
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Result<Vec<u32>> {
    let status = Process::myself()?.status()?;
    let ranges = status.cpus_allowed_list.context("no Cpus_allowed_list")?;
    Ok(ranges
        .into_iter()
        .flat_map(|(first, last)| first..=last)
        .collect())
}

const DATE_FORMAT: &str = "+%Y-%m-%d %H:%M UTC";

/// Where the run happened.
#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub processors: usize,
    pub kernel: String,
    /// Bytes.
    pub memory: u64,
    /// `/proc/loadavg`'s first three fields at the start.
    pub load_average: String,
    pub rustc: String,
    pub wrk: String,
    /// UTC, to the minute.
    pub date: String,
    /// The commit, `-dirty` if the tree had changes.
    pub revision: String,
    /// File system of the temporary directory, and the directory.
    pub filesystem: String,
}

impl Machine {
    /// Reads it all (before xtask pins itself, so nothing is hidden by the affinity mask).
    pub fn read(sh: &Shell, project: &Project, wrk: String) -> Result<Self> {
        let cpus = procfs::CpuInfo::current()?;
        let load = procfs::LoadAverage::current()?;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
        let temp = std::env::temp_dir();
        let fstype = cmd!(sh, "df --output=fstype {temp}").quiet().read()?;
        let fstype = fstype.lines().last().unwrap_or_default().trim();
        Ok(Self {
            cpu_model: cpus.model_name(0).unwrap_or("unknown").to_owned(),
            processors: cpus.num_cores(),
            kernel: kernel.trim().to_owned(),
            memory: procfs::Meminfo::current()?.mem_total,
            load_average: format!("{} {} {}", load.one, load.five, load.fifteen),
            rustc: cmd!(sh, "rustc -V").quiet().read()?,
            wrk,
            date: cmd!(sh, "date -u {DATE_FORMAT}").quiet().read()?,
            revision: project.revision(sh)?,
            filesystem: format!("{fstype} (`{}`)", temp.display()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn this_process_may_use_some_cpu_and_the_machine_is_read() {
        assert!(!allowed_cpus().unwrap().is_empty());
        let cpus = procfs::CpuInfo::current().unwrap();
        assert!(cpus.num_cores() > 0 && procfs::Meminfo::current().unwrap().mem_total > 0);
    }
}
