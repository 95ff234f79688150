//! The memory the service may use and the connection caps that fit in it.
//!
//! In a container the limit is the control group's (cgroup v2 `memory.max`, v1
//! `memory.limit_in_bytes`), the lowest along the process's group and its parents; outside one
//! there is none, unless `--memory-limit` gives one. Under a limit both listeners' connection
//! caps are sized so that every connection at its worst fits at once, with headroom
//! ([`baseline_bytes`]) for the rest of the process: the runtime, the binary itself
//! ([`PROCESS_BYTES`]) and the embedded database's page cache, which is bounded to a share of the
//! limit ([`database_cache_bytes`]) because redb's own default (1 GiB) would let clients asking
//! for many different accounts grow it past any container's limit. The worst case of a connection ([`http1_worst_case`], [`h2c_worst_case`])
//! counts what the server lets it hold in user space (hyper's read and write buffers at their
//! bound, its state and task) and in the kernel: its socket buffers, which the kernel charges to
//! the same control group and which [`SOCKET_RECEIVE_BUFFER`] and [`SOCKET_SEND_BUFFER`] pin
//! down (the kernel doubles what it is given, for its own bookkeeping). The listen backlog, whose
//! connections the kernel holds before they are accepted, is counted too.
//!
//! An explicit `--max-connections` that does not fit is refused at start, not clamped: the
//! service would otherwise run with a cap nobody asked for, and a deployment that asks for more
//! than its container allows has a mistake in it that one line on stderr points at.

use std::path::{Path, PathBuf};

/// What `--memory-limit` says: read the control group (`auto`), no limit (`none`), or a number
/// of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimitSetting {
    /// The control group's limit, if the process has one.
    Auto,
    /// No limit: the caps are the settings' own.
    Unlimited,
    /// This many bytes.
    Bytes(u64),
}

impl MemoryLimitSetting {
    /// The limit in bytes, reading the control group for [`MemoryLimitSetting::Auto`].
    pub fn resolve(self) -> Option<u64> {
        match self {
            Self::Auto => detect(),
            Self::Unlimited => None,
            Self::Bytes(bytes) => Some(bytes),
        }
    }
}

/// Parses `auto`, `none`, or bytes with an optional binary suffix as Docker writes them (`64m`,
/// `1g`, `512k`; `b` or none for bytes).
pub fn parse_memory_limit(text: &str) -> Result<MemoryLimitSetting, String> {
    let trimmed = text.trim().to_ascii_lowercase();
    match trimmed.as_str() {
        "auto" => return Ok(MemoryLimitSetting::Auto),
        "none" => return Ok(MemoryLimitSetting::Unlimited),
        _ => {}
    }
    let (digits, unit) = match trimmed.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => trimmed.split_at(at),
        None => (trimmed.as_str(), ""),
    };
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("`{text}` is not auto, none, or bytes such as 64m")),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not auto, none, or bytes such as 64m"))?;
    let bytes = number
        .checked_mul(1 << shift)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("`{text}` must be more than zero and less than 16 EiB"))?;
    Ok(MemoryLimitSetting::Bytes(bytes))
}

/// Where the control groups are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The control group's memory limit of this process, if it has one.
pub fn detect() -> Option<u64> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    limit_in(&groups, Path::new(CGROUP_ROOT))
}

/// A v1 "no limit": the largest page-aligned `i64`, or anything near it.
const V1_UNLIMITED: u64 = 1 << 62;

/// The lowest memory limit along the groups `groups` (the text of `/proc/<pid>/cgroup`) names,
/// under `root`. In a container with its own cgroup namespace the group is `/`, the root of
/// what it sees, which holds the container's limit; without one (cgroup v1, older engines) the
/// named path does not exist inside the container and the mount's root is the container's own
/// group: every directory from the named group up to the root is read, and the lowest limit
/// found wins.
fn limit_in(groups: &str, root: &Path) -> Option<u64> {
    let mut limits = Vec::new();
    for line in groups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (base, file) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        for directory in ancestors(&base, path) {
            limits.extend(read_limit(&directory.join(file)));
        }
    }
    limits.into_iter().min()
}

/// `base` joined with `path` and with each of its parents, down to `base` itself.
fn ancestors(base: &Path, path: &str) -> Vec<PathBuf> {
    let relative = Path::new(path.trim_start_matches('/'));
    relative.ancestors().map(|part| base.join(part)).collect()
}

/// One limit file: `max` (v2) or a value near `i64::MAX` (v1) is no limit.
fn read_limit(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < V1_UNLIMITED).then_some(bytes)
}

/// Memory left aside for the process at rest besides the database's cache: runtime, binary,
/// health registry, metrics, the fleet view's bounded state.
pub const PROCESS_BYTES: u64 = 12 << 20;

/// The least and the most the embedded database's page cache gets under a memory limit.
pub const DATABASE_CACHE_MIN: u64 = 1 << 20;
/// See [`DATABASE_CACHE_MIN`].
pub const DATABASE_CACHE_MAX: u64 = 256 << 20;

/// The embedded database's page cache under `limit`: a sixteenth of it, within
/// [`DATABASE_CACHE_MIN`] and [`DATABASE_CACHE_MAX`]. Without a limit, `None`: redb's default.
pub fn database_cache_bytes(limit: Option<u64>) -> Option<u64> {
    limit.map(|limit| (limit / 16).clamp(DATABASE_CACHE_MIN, DATABASE_CACHE_MAX))
}

/// Memory left aside under `limit` for everything but the connections: the process at rest and
/// the database's cache.
pub fn baseline_bytes(limit: u64) -> u64 {
    PROCESS_BYTES + database_cache_bytes(Some(limit)).unwrap_or(DATABASE_CACHE_MIN)
}

/// The kernel buffers the server pins on every connection, counted here at their worst.
pub use crate::server::{SOCKET_RECEIVE_BUFFER, SOCKET_SEND_BUFFER};

/// A connection's kernel memory at worst: the kernel allows twice each buffer asked for, plus
/// the socket itself.
const KERNEL_BYTES: u64 = 2 * (SOCKET_RECEIVE_BUFFER + SOCKET_SEND_BUFFER) as u64 + 4096;

/// hyper's connection state, our task around it and the service's future, at most.
const STATE_BYTES: u64 = 8 * 1024;

/// The worst case of one HTTP/1.1 connection: hyper's read and write buffers are each bounded by
/// `max_header_bytes` (its `max_buf_size`), and a buffer that grows may double its capacity once
/// past it; plus its state and its kernel buffers.
pub fn http1_worst_case(max_header_bytes: usize) -> u64 {
    let buffers = 4 * max_header_bytes as u64;
    buffers + STATE_BYTES + KERNEL_BYTES
}

/// The worst case of one connection on the management port, which may also speak HTTP/2: an
/// HTTP/1.1 connection's, plus what a client may make HTTP/2 hold: its connection window of
/// received data, and for every stream a header list and a send buffer.
pub fn h2c_worst_case(max_header_bytes: usize, http2: &crate::server::Http2Limits) -> u64 {
    let streams = u64::from(http2.max_concurrent_streams);
    let per_stream = max_header_bytes as u64 + http2.max_send_buffer as u64;
    http1_worst_case(max_header_bytes) + u64::from(http2.connection_window) + streams * per_stream
}

/// A connection in a listen backlog, at worst: the socket and what the client sent into its
/// receive buffer (nothing has been sent on it yet).
pub const BACKLOG_BYTES_PER_CONNECTION: u64 = 2 * SOCKET_RECEIVE_BUFFER as u64 + 4096;

/// The public listener's backlog under a memory limit; without one the caller's own.
pub const BACKLOG_UNDER_LIMIT: u32 = 256;
/// The management listener's backlog (the standard library's).
pub const MANAGEMENT_BACKLOG: u32 = 128;

/// The two listeners' connection caps, and what they were sized from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Connections the public port serves at once.
    pub public: usize,
    /// Connections the management port serves at once.
    pub management: usize,
    /// The public listener's backlog.
    pub backlog: u32,
    /// The memory limit they fit in, if any.
    pub limit: Option<u64>,
}

/// What a plan needs besides the limit.
#[derive(Debug, Clone, Copy)]
pub struct Demands {
    /// `--max-connections` if given; else the cap is the most that fits, at most `default`.
    pub requested: Option<usize>,
    /// The public port's cap when nothing limits it.
    pub default: usize,
    /// The management port's cap when nothing limits it (0: no management port).
    pub management: usize,
    /// The worst case of one public connection.
    pub public_worst: u64,
    /// The worst case of one management connection.
    pub management_worst: u64,
    /// The public listener's backlog without a limit.
    pub backlog: u32,
}

/// The management port's share of the memory left for connections under a limit: operators and
/// probes need a few connections, clients many.
const MANAGEMENT_SHARE: u64 = 8;
/// The fewest connections the management port gets under a limit: probes, a scrape, a peer.
const MANAGEMENT_FLOOR: usize = 16;

/// Why the connection caps cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `--max-connections` asks for more than the limit holds.
    #[error(
        "--max-connections {requested} does not fit the memory limit of {limit} bytes: at most \
         {fits} connections fit ({per_connection} bytes each at worst, kernel buffers included, \
         besides {reserved} bytes for the rest of the process); lower it or raise the limit"
    )]
    TooMany {
        /// What was asked for.
        requested: usize,
        /// The most that fits.
        fits: usize,
        /// The limit.
        limit: u64,
        /// One public connection's worst case.
        per_connection: u64,
        /// Everything else: baseline, backlogs, the management port.
        reserved: u64,
    },
    /// The limit is too small for the service at all.
    #[error(
        "the memory limit of {limit} bytes leaves no room for a connection: the service needs \
         {needed} bytes besides them"
    )]
    NoRoom {
        /// The limit.
        limit: u64,
        /// What the rest of the process needs.
        needed: u64,
    },
}

/// Sizes the caps: without a limit, the settings' own; under one, the management port gets its
/// share and the public port what is left, refusing a `--max-connections` that cannot fit.
pub fn plan(limit: Option<u64>, demands: Demands) -> Result<ConnectionCaps, PlanError> {
    let Some(limit) = limit else {
        return Ok(ConnectionCaps {
            public: demands.requested.unwrap_or(demands.default),
            management: demands.management,
            backlog: demands.backlog,
            limit: None,
        });
    };
    let backlog = BACKLOG_UNDER_LIMIT.min(demands.backlog);
    let management_backlog = if demands.management > 0 {
        MANAGEMENT_BACKLOG
    } else {
        0
    };
    let backlogs = u64::from(backlog) + u64::from(management_backlog);
    let fixed = baseline_bytes(limit) + backlogs * BACKLOG_BYTES_PER_CONNECTION;
    let room = limit.checked_sub(fixed).filter(|room| *room > 0);
    let room = room.ok_or(PlanError::NoRoom {
        limit,
        needed: fixed,
    })?;
    let management = if demands.management == 0 {
        0
    } else {
        let share = room / MANAGEMENT_SHARE / demands.management_worst.max(1);
        usize::try_from(share)
            .unwrap_or(usize::MAX)
            .clamp(MANAGEMENT_FLOOR, demands.management)
    };
    let reserved = fixed + management as u64 * demands.management_worst;
    let left = limit.saturating_sub(reserved);
    let fits = usize::try_from(left / demands.public_worst.max(1)).unwrap_or(usize::MAX);
    if fits == 0 {
        return Err(PlanError::NoRoom {
            limit,
            needed: reserved + demands.public_worst,
        });
    }
    let public = match demands.requested {
        Some(requested) if requested > fits => {
            return Err(PlanError::TooMany {
                requested,
                fits,
                limit,
                per_connection: demands.public_worst,
                reserved,
            });
        }
        Some(requested) => requested,
        None => fits.min(demands.default),
    };
    Ok(ConnectionCaps {
        public,
        management,
        backlog,
        limit: Some(limit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demands(requested: Option<usize>) -> Demands {
        Demands {
            requested,
            default: 10_000,
            management: 1024,
            public_worst: 100 << 10,
            management_worst: 400 << 10,
            backlog: 1024,
        }
    }

    #[test]
    fn memory_limits_parse_like_docker_writes_them() {
        let parse = |text| parse_memory_limit(text);
        assert_eq!(parse("64m"), Ok(MemoryLimitSetting::Bytes(64 << 20)));
        assert_eq!(parse("1G"), Ok(MemoryLimitSetting::Bytes(1 << 30)));
        assert_eq!(parse("512KiB"), Ok(MemoryLimitSetting::Bytes(512 << 10)));
        assert_eq!(parse("1000"), Ok(MemoryLimitSetting::Bytes(1000)));
        assert_eq!(parse(" auto "), Ok(MemoryLimitSetting::Auto));
        assert_eq!(parse("none"), Ok(MemoryLimitSetting::Unlimited));
        for bad in [
            "",
            "0",
            "-1m",
            "64x",
            "m",
            "99999999999999999999g",
            "17179869184g",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    fn group_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let file = root.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        root
    }

    #[test]
    fn a_cgroup_v2_limit_is_read_from_the_lowest_of_the_group_and_its_parents() {
        let root = group_with(&[
            ("memory.max", "max\n"),
            ("kubepods/memory.max", "1073741824\n"),
            ("kubepods/pod/memory.max", "67108864\n"),
        ]);
        assert_eq!(limit_in("0::/kubepods/pod\n", root.path()), Some(64 << 20));
        assert_eq!(limit_in("0::/\n", root.path()), None);
        assert_eq!(limit_in("0::/kubepods\n", root.path()), Some(1 << 30));
    }

    #[test]
    fn a_cgroup_v1_limit_is_read_and_its_huge_unlimited_value_is_no_limit() {
        let root = group_with(&[
            ("memory/memory.limit_in_bytes", "67108864\n"),
            (
                "memory/docker/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
        ]);
        // Without a cgroup namespace the named group is absent inside the container.
        let groups = "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n";
        assert_eq!(limit_in(groups, root.path()), Some(64 << 20));
        let unlimited = group_with(&[("memory/memory.limit_in_bytes", "9223372036854771712")]);
        assert_eq!(limit_in(groups, unlimited.path()), None);
        assert_eq!(limit_in("garbage", root.path()), None);
    }

    #[test]
    fn without_a_limit_the_caps_are_the_settings_own() {
        let caps = plan(None, demands(Some(50_000))).unwrap();
        assert_eq!(
            (caps.public, caps.management, caps.limit),
            (50_000, 1024, None)
        );
        assert_eq!(caps.backlog, 1024);
        assert_eq!(plan(None, demands(None)).unwrap().public, 10_000);
    }

    #[test]
    fn under_a_limit_every_connection_at_its_worst_fits_with_the_headroom() {
        let limit = 64 << 20;
        let d = demands(None);
        let caps = plan(Some(limit), d).unwrap();
        assert!(caps.public > 0 && caps.public < 10_000);
        assert!(caps.management >= MANAGEMENT_FLOOR && caps.management < 1024);
        assert_eq!(caps.backlog, BACKLOG_UNDER_LIMIT);
        let used = baseline_bytes(limit)
            + u64::from(BACKLOG_UNDER_LIMIT + MANAGEMENT_BACKLOG) * BACKLOG_BYTES_PER_CONNECTION
            + caps.management as u64 * d.management_worst
            + caps.public as u64 * d.public_worst;
        assert!(used <= limit, "{used} > {limit}");
        // And not needlessly small: one more public connection would not fit.
        assert!(used + d.public_worst > limit);
        // A big limit leaves the defaults alone.
        let big = plan(Some(64 << 30), d).unwrap();
        assert_eq!((big.public, big.management), (10_000, 1024));
    }

    #[test]
    fn an_explicit_cap_that_does_not_fit_is_refused_and_one_that_fits_is_kept() {
        let fits = plan(Some(64 << 20), demands(None)).unwrap().public;
        let kept = plan(Some(64 << 20), demands(Some(fits))).unwrap();
        assert_eq!(kept.public, fits);
        let refused = plan(Some(64 << 20), demands(Some(fits + 1))).unwrap_err();
        assert!(matches!(refused, PlanError::TooMany { requested, .. } if requested == fits + 1));
        let message = refused.to_string();
        assert!(message.contains("--max-connections") && !message.contains('\n'));
    }

    #[test]
    fn the_database_cache_is_a_bounded_share_of_the_limit_and_counted_in_the_baseline() {
        assert_eq!(database_cache_bytes(None), None);
        assert_eq!(database_cache_bytes(Some(64 << 20)), Some(4 << 20));
        assert_eq!(
            database_cache_bytes(Some(8 << 20)),
            Some(DATABASE_CACHE_MIN)
        );
        assert_eq!(
            database_cache_bytes(Some(64 << 30)),
            Some(DATABASE_CACHE_MAX)
        );
        // Under the stacks' 64 MiB the headroom stays what the documented caps were sized from.
        assert_eq!(baseline_bytes(64 << 20), 16 << 20);
        for limit in [1 << 20, 64 << 20, 1 << 30, 64 << 30] {
            let cache = database_cache_bytes(Some(limit)).unwrap();
            assert_eq!(baseline_bytes(limit), PROCESS_BYTES + cache);
        }
    }

    #[test]
    fn a_limit_too_small_for_the_process_is_refused() {
        assert!(matches!(
            plan(Some(8 << 20), demands(None)),
            Err(PlanError::NoRoom { .. })
        ));
    }

    #[test]
    fn the_worst_case_of_a_connection_counts_its_kernel_buffers() {
        assert!(http1_worst_case(16 * 1024) > KERNEL_BYTES + 4 * 16 * 1024);
        let http2 = crate::server::Http2Limits {
            max_concurrent_streams: 16,
            stream_window: 16 * 1024,
            connection_window: 64 * 1024,
            keep_alive_interval: std::time::Duration::from_secs(10),
            keep_alive_timeout: std::time::Duration::from_secs(10),
            max_send_buffer: 16 * 1024,
        };
        assert!(h2c_worst_case(16 * 1024, &http2) > http1_worst_case(16 * 1024) + 64 * 1024);
    }
}
