//! What the bench reads from `/proc` (through the `procfs` crate): a server's memory and CPU
//! time, a core's busy time, the CPUs this process may use, and the machine the run is on.

use anyhow::{Context, Result};
use procfs::process::Process;
use procfs::{Current as _, CurrentSI as _};
use serde::Serialize;
use xshell::{Shell, cmd};

use crate::project::Project;
use crate::server::Server;

/// Memory of one process, in bytes: resident now (`VmRSS`), peak resident since start (`VmHWM`),
/// and the two parts of `rss`: anonymous (heap, stacks) and file-backed (mostly the binary).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
    pub anon: u64,
    pub file: u64,
}

impl Server {
    fn process(&self) -> Result<Process> {
        let pid = i32::try_from(self.pid())?;
        Process::new(pid).with_context(|| format!("reading /proc of {}", self.name))
    }

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

/// Clock ticks one CPU has spent busy (user, nice, system, irq, softirq, or stolen by the
/// hypervisor), and in total (idle and I/O wait included).
#[derive(Debug, Clone, Copy)]
pub struct CpuTicks(u64, u64);

impl CpuTicks {
    /// CPU `cpu`'s line of `/proc/stat` (which lists the online CPUs, numbered densely here).
    pub fn read(cpu: u32) -> Result<Self> {
        let stats = procfs::KernelStats::current()?;
        let time = stats.cpu_time.get(cpu as usize).context("no such CPU")?;
        let [iowait, irq, softirq, steal] =
            [time.iowait, time.irq, time.softirq, time.steal].map(Option::unwrap_or_default);
        let busy = time.user + time.nice + time.system + irq + softirq + steal;
        Ok(Self(busy, busy + time.idle + iowait))
    }

    /// The busy share of the time between `earlier` and `self` (0 when no tick passed).
    pub fn busy_since(self, earlier: CpuTicks) -> f64 {
        let total = self.1.saturating_sub(earlier.1).max(1);
        self.0.saturating_sub(earlier.0) as f64 / total as f64
    }
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Result<Vec<u32>> {
    let status = Process::myself()?.status()?;
    let ranges = status.cpus_allowed_list.context("no Cpus_allowed_list")?;
    Ok(ranges.into_iter().flat_map(|(a, b)| a..=b).collect())
}

/// Where the run happened (`memory` in bytes, `revision` `-dirty` if the tree had changes), and
/// `opt-level` of `[profile.release]`, which builds the service and the yardstick.
#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub processors: usize,
    pub kernel: String,
    pub memory: u64,
    pub load_average: String,
    pub rustc: String,
    pub wrk: String,
    pub date: String,
    pub revision: String,
    pub filesystem: String,
    pub opt_level: String,
}

impl Machine {
    /// Reads it all (before xtask pins itself, so nothing is hidden by the affinity mask).
    pub fn read(sh: &Shell, project: &Project, wrk: String) -> Result<Self> {
        let (cpus, load) = (procfs::CpuInfo::current()?, procfs::LoadAverage::current()?);
        let temp = std::env::temp_dir();
        let fstype = cmd!(sh, "df --output=fstype {temp}").quiet().read()?;
        let fstype = fstype.lines().last().unwrap_or_default().trim();
        let manifest = sh.read_file(project.root.join("Cargo.toml"))?;
        let kernel = sh.read_file("/proc/sys/kernel/osrelease")?;
        Ok(Self {
            cpu_model: cpus.model_name(0).unwrap_or("unknown").to_owned(),
            processors: cpus.num_cores(),
            kernel: kernel.trim().to_owned(),
            memory: procfs::Meminfo::current()?.mem_total,
            load_average: format!("{} {} {}", load.one, load.five, load.fifteen),
            rustc: cmd!(sh, "rustc -V").quiet().read()?,
            wrk,
            date: cmd!(sh, "date -u '+%Y-%m-%d %H:%M UTC'").quiet().read()?,
            revision: project.revision(sh)?,
            filesystem: format!("{fstype} (`{}`)", temp.display()),
            opt_level: release_opt_level(&manifest).context("no release opt-level")?,
        })
    }
}

/// The value of `opt-level` in the `[profile.release]` table of a `Cargo.toml`.
fn release_opt_level(manifest: &str) -> Option<String> {
    let (_, table) = manifest.split_once("\n[profile.release]\n")?;
    let mut lines = table.lines().take_while(|line| !line.starts_with('['));
    let value = lines.find_map(|line| line.strip_prefix("opt-level")?.trim().strip_prefix('='));
    Some(value?.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_share_is_taken_between_two_readings() {
        let (before, after) = (CpuTicks(100, 200), CpuTicks(175, 300));
        assert!((after.busy_since(before) - 0.75).abs() < 1e-9);
        assert!(before.busy_since(before).abs() < 1e-9);
    }

    #[test]
    fn the_release_opt_level_is_read_from_its_table_only() {
        let manifest = "[workspace]\n\n[profile.release]\nlto = true\nopt-level = \"s\"\n\n\
                        [profile.probe]\nopt-level = \"z\"\n";
        assert_eq!(release_opt_level(manifest).as_deref(), Some("\"s\""));
        assert_eq!(
            release_opt_level(&manifest.replace("opt-level = \"s\"", "")),
            None
        );
        let real = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"));
        assert!(release_opt_level(&real.unwrap()).is_some());
    }

    #[test]
    fn this_process_may_use_some_cpu_and_the_machine_is_read() {
        assert!(!allowed_cpus().unwrap().is_empty());
        let cpus = procfs::CpuInfo::current().unwrap();
        assert!(cpus.num_cores() > 0 && procfs::Meminfo::current().unwrap().mem_total > 0);
    }
}
