//! The service's one typed configuration: command-line flags with `ACCOUNTSERVICE_*` fallbacks.
//!
//! Nothing else in the crate reads the environment.

use std::{
    ffi::OsString,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::{
    CommandFactory as _, FromArgMatches as _, Parser, ValueEnum,
    builder::{BoolishValueParser, TypedValueParser as _},
};
use health::http::Details;

use crate::{
    fleet::Peers,
    store::{
        StoreError,
        postgres::{
            DatabaseUrl, PgSettings,
            settings::{InvalidUrl, seconds as shown_seconds},
        },
    },
};

/// Everything the service can be told at start. `--help` documents each field.
#[derive(Debug, Clone, Parser)]
#[command(name = "accountservice", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Settings {
    /// TCP port to listen on; 0 picks a free port (the log says which).
    #[arg(long, env = "ACCOUNTSERVICE_PORT", default_value_t = 6767)]
    pub port: u16,

    /// Address to bind the listener to.
    #[arg(long, env = "ACCOUNTSERVICE_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Path of the redb database file; created if missing, refused if it is not a database.
    #[arg(long, env = "ACCOUNTSERVICE_DB_PATH", default_value = "accounts.db")]
    pub db_path: PathBuf,

    /// PostgreSQL to keep the accounts in instead of the redb file, shared by every replica: a
    /// `postgres://user:password@host:port/dbname?sslmode=...` URL or a libpq key=value string
    /// (several hosts as libpq allows). Unset: the embedded redb file (--db-path). The password is
    /// never shown: logs, errors and health details print the URL with `***` in its place.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_DATABASE_URL",
        hide_env_values = true,
        value_parser = DatabaseUrlParser,
        conflicts_with = "database_url_file"
    )]
    pub database_url: Option<DatabaseUrl>,

    /// A file holding the --database-url (a Docker or Kubernetes secret), read at start.
    #[arg(long, env = "ACCOUNTSERVICE_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,

    /// A file holding the database password (a Docker or Kubernetes secret, as the official
    /// postgres image takes POSTGRES_PASSWORD_FILE); it replaces any password in the URL. One
    /// trailing newline is ignored.
    #[arg(long, env = "ACCOUNTSERVICE_DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<PathBuf>,

    /// PostgreSQL connections kept at most by this replica.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_DATABASE_POOL_SIZE",
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..=1000).map(|n| n as usize)
    )]
    pub database_pool_size: usize,

    /// Seconds a lookup or health check waits for a PostgreSQL connection (opening one
    /// included) before failing with 503; must be below --health-timeout.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_DATABASE_ACQUIRE_TIMEOUT",
        default_value = "0.5",
        value_parser = seconds(MIN_POSITIVE_SECONDS, MAX_SECONDS)
    )]
    pub database_acquire_timeout: Duration,

    /// Seconds one PostgreSQL statement may run (the server's statement_timeout; the client
    /// gives up 0.1 s later, for a server that stopped answering).
    #[arg(
        long,
        env = "ACCOUNTSERVICE_DATABASE_STATEMENT_TIMEOUT",
        default_value = "0.4",
        value_parser = seconds(MIN_POSITIVE_SECONDS, MAX_SECONDS)
    )]
    pub database_statement_timeout: Duration,

    /// Seconds opening a PostgreSQL connection may take at start, when the URL gives no
    /// connect_timeout.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_DATABASE_CONNECT_TIMEOUT",
        default_value = "5",
        value_parser = seconds(MIN_POSITIVE_SECONDS, MAX_SECONDS)
    )]
    pub database_connect_timeout: Duration,

    /// Number of fake accounts to make sure exist at start (ids 10000.., names Person_0..);
    /// existing accounts are never overwritten. 0 disables seeding.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_SEED_ACCOUNTS",
        default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(0..=MAX_SEED_ACCOUNTS)
    )]
    pub seed_accounts: u64,

    /// Log output format.
    #[arg(long, env = "ACCOUNTSERVICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter: a level, or comma-separated `target=level` directives, e.g. `info` or
    /// `warn,accountservice=debug` (levels: off, error, warn, info, debug, trace).
    #[arg(long, env = "ACCOUNTSERVICE_LOG", default_value = "info")]
    pub log_filter: String,

    /// Seconds the orchestrator waits after SIGTERM before it sends SIGKILL (Docker's and
    /// Swarm's `stop_grace_period`, Kubernetes' `terminationGracePeriodSeconds`; Docker's
    /// default is 10). Every phase of a stop fits inside it with a margin; settings whose
    /// phases cannot fit are refused at start.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_STOP_GRACE",
        default_value = "10",
        value_parser = seconds(MIN_STOP_GRACE, MAX_SECONDS)
    )]
    pub stop_grace: Duration,

    /// Seconds to let in-flight requests finish after SIGTERM/Ctrl-C before closing connections.
    /// Unset, what is left of --stop-grace after the pre-stop delay and the stop's other phases
    /// (6 s of the default 10 s grace).
    #[arg(
        long,
        env = "ACCOUNTSERVICE_SHUTDOWN_TIMEOUT",
        value_parser = seconds(0.0, MAX_SECONDS)
    )]
    pub shutdown_timeout: Option<Duration>,

    /// Seconds to keep retrying while another process holds the database file before giving up;
    /// 0 tries once.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_DB_LOCK_TIMEOUT",
        default_value = "2",
        value_parser = seconds(0.0, MAX_SECONDS)
    )]
    pub db_lock_timeout: Duration,

    /// How much the health endpoints show: `never` (status, plus a short reason when unhealthy;
    /// a healthy answer is exactly {"status":"UP"}), `components` (also each component's status
    /// and reason) or `always` (also file paths, error texts, timings: keep such endpoints away
    /// from untrusted clients).
    #[arg(long, env = "ACCOUNTSERVICE_HEALTH_DETAILS", default_value_t = Details::Components)]
    pub health_details: Details,

    /// Seconds between background health-check rounds; probes are answered from the latest
    /// round, so any number of probes costs the database one check per interval.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_HEALTH_INTERVAL",
        default_value = "1",
        value_parser = seconds(MIN_POSITIVE_SECONDS, MAX_SECONDS)
    )]
    pub health_interval: Duration,

    /// Seconds one health check may take before it counts as DOWN ("timed out").
    #[arg(
        long,
        env = "ACCOUNTSERVICE_HEALTH_TIMEOUT",
        default_value = "1",
        value_parser = seconds(MIN_POSITIVE_SECONDS, MAX_SECONDS)
    )]
    pub health_timeout: Duration,

    /// Seconds to keep serving after SIGTERM with readiness already failing ("draining"), so
    /// load balancers stop sending traffic before the listener closes. 0 (the default) starts the
    /// drain at once, which suits Swarm: it stops routing to a task before signalling it.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_PRE_STOP_DELAY",
        default_value = "0",
        value_parser = seconds(0.0, MAX_SECONDS)
    )]
    pub pre_stop_delay: Duration,

    /// Mount the /testability routes that make this instance report unhealthy or fail its
    /// database on purpose (for demos and tests; never in production). Off by default.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_TESTABILITY",
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub testability: bool,

    /// Seconds a client has to send a complete request head; also how long an idle keep-alive
    /// connection stays open. Closes slowloris connections.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_HEADER_READ_TIMEOUT",
        default_value = "10",
        value_parser = seconds(MIN_POSITIVE_SECONDS, MAX_SECONDS)
    )]
    pub header_read_timeout: Duration,

    /// Largest request head (request line and headers) in bytes; larger is answered 431. At least
    /// 8192 (the HTTP library's minimum).
    #[arg(
        long,
        env = "ACCOUNTSERVICE_MAX_HEADER_BYTES",
        default_value_t = 16 * 1024,
        value_parser = clap::value_parser!(u32).range(8192..=1_048_576).map(|n| n as usize)
    )]
    pub max_header_bytes: usize,

    /// Connections served at once; further clients wait in the listen backlog until one ends.
    /// Bounds memory under a connection flood. Default: as many as fit the memory limit at
    /// their worst, at most 10000; a number that does not fit is refused at start.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_MAX_CONNECTIONS",
        value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize)
    )]
    pub max_connections: Option<usize>,

    /// The memory the process may use, which the connection caps are sized to fit: `auto` reads
    /// the container's limit (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`; none outside
    /// a container), `none` ignores it, or bytes such as `64m`.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_MEMORY_LIMIT",
        default_value = "auto",
        value_parser = crate::memory_limit::parse_memory_limit
    )]
    pub memory_limit: crate::memory_limit::MemoryLimitSetting,

    /// Seconds a response may make no write progress (the client reads nothing) before its
    /// connection is closed, on both ports.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_WRITE_TIMEOUT",
        default_value = "30",
        value_parser = seconds(MIN_POSITIVE_SECONDS, MAX_SECONDS)
    )]
    pub write_timeout: Duration,

    /// Account and testability requests in progress at once; past it, requests are answered
    /// 503 with Retry-After at once instead of queueing. Health and metrics are exempt, so a busy
    /// instance still passes its probes.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_MAX_CONCURRENT_REQUESTS",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONCURRENT_REQUESTS)).map(|n| n as usize)
    )]
    pub max_concurrent_requests: usize,

    /// Seconds connections get, once a drain has closed the listener, to finish what they were
    /// sent and close on their own; then idle keep-alive connections are closed. A request a
    /// client wrote just before the listener closed is still read and answered within it.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_CLOSE_GRACE",
        default_value = "1",
        value_parser = seconds(0.0, MAX_SECONDS)
    )]
    pub close_grace: Duration,

    /// The replicas of this service, for `GET /health/fleet` and `GET /status` (both mounted
    /// only when set): one `name:port` whose every A/AAAA record is a replica, looked up again
    /// each health interval (in Swarm `tasks.<service>:6768`), or a comma-separated list of
    /// `host:port`. The port is the one peers serve /health/history on: their management port
    /// when they have one (as the image does), else their only port. Peers are asked only while
    /// someone looks at the view, and while a check of a dependency every replica shares (a
    /// database server) fails: then a few of them, at most once per health interval (and once
    /// more, those whose answer predates the failure), whether they reach it.
    #[arg(long, env = "ACCOUNTSERVICE_PEERS")]
    pub peers: Option<Peers>,

    /// Seconds a fault of this replica's own with a dependency every replica shares (its peers
    /// reach the database, it cannot) may last with readiness failing before liveness fails
    /// too, so that the orchestrator replaces the replica. Long enough for a brief cut to heal
    /// without a restart.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_LOCAL_FAULT_GRACE",
        default_value = "30",
        value_parser = seconds(0.0, MAX_SECONDS)
    )]
    pub local_fault_grace: Duration,

    /// A second port for the operator endpoints (every health route, /metrics, the testability
    /// and fleet routes), served on a thread of its own so probes never wait behind public
    /// requests; the public port then keeps only /accounts/..., /openapi.json and GET /health.
    /// `off` (the default) or empty: no management port, everything is served on --port (how an
    /// image that sets the variable is switched back to one port). 0 picks a free port.
    // Spelled out in full so that clap takes the parser's `Option` as the value, not as "the
    // flag may be left out": `off` must be a value it can parse.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_MANAGEMENT_PORT",
        default_value = MANAGEMENT_PORT_OFF,
        value_parser = parse_management_port
    )]
    pub management_port: std::option::Option<u16>,

    /// Address to bind the management listener to; defaults to --bind.
    #[arg(long, env = "ACCOUNTSERVICE_MANAGEMENT_BIND")]
    pub management_bind: Option<IpAddr>,

    /// A label for the rollout this replica belongs to (an image tag or a git revision), shown
    /// wherever the service reports its version, as semver build metadata: `0.1.0+v2`. ASCII
    /// letters, digits, `-` and `.` (no empty part between dots), at most 64 characters. Unset,
    /// the version is the crate's alone.
    #[arg(long, env = "ACCOUNTSERVICE_RELEASE")]
    pub release: Option<Release>,

    /// This replica's slot among the service's replicas, reported in /health/history so a
    /// fleet view can tell which of two replicas claiming one slot holds it (the later
    /// started; the other was replaced). In a Swarm stack `{{.Task.Slot}}` (replicated services
    /// only: global tasks all have slot 0). Unset, the replica claims no slot.
    #[arg(long, env = "ACCOUNTSERVICE_SLOT")]
    pub slot: Option<u32>,
}

impl Settings {
    /// The version this replica reports (health answers, history, fleet view, metrics): the
    /// crate's version, with `+<release>` when `--release` is set.
    pub fn version(&self) -> String {
        match &self.release {
            Some(release) => format!("{}+{release}", env!("CARGO_PKG_VERSION")),
            None => env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// The PostgreSQL settings, when --database-url or --database-url-file is given: files read,
    /// the password file applied, every bound filled in. Errors name the file or the setting,
    /// never the URL's contents.
    pub fn database(&self) -> Result<Option<PgSettings>, StoreError> {
        let url = match (&self.database_url, &self.database_url_file) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => read_secret(path, "database URL")?
                .parse()
                .map_err(|error| StoreError::Config(format!("{}: {error}", path.display())))?,
            (None, None) => return Ok(None),
        };
        let mut url = url;
        if let Some(path) = &self.database_password_file {
            url.set_password(read_secret(path, "database password")?.as_bytes());
        }
        if self.database_acquire_timeout >= self.health_timeout {
            return Err(StoreError::Config(format!(
                "--database-acquire-timeout ({}) must be below --health-timeout ({}), so a \
                 database that cannot give a connection is reported, not timed out",
                shown_seconds(self.database_acquire_timeout),
                shown_seconds(self.health_timeout)
            )));
        }
        Ok(Some(PgSettings::new(
            url,
            self.database_pool_size,
            self.database_acquire_timeout,
            self.database_statement_timeout,
            self.database_connect_timeout,
        )))
    }

    /// The management listener's address, if one is configured.
    pub fn management_address(&self) -> Option<SocketAddr> {
        self.management_port
            .map(|port| SocketAddr::new(self.management_bind.unwrap_or(self.bind), port))
    }
}

impl Settings {
    /// Parses command-line `args` (without the program name), taking the built-in default for
    /// every setting not given and ignoring `ACCOUNTSERVICE_*` variables: for tests and tools
    /// whose settings must not change with the environment they run in.
    pub fn from_args_ignoring_env<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Self::command()
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(
                std::iter::once(OsString::from("accountservice"))
                    .chain(args.into_iter().map(Into::into)),
            )?;
        Self::from_arg_matches(&matches)
    }
}

/// The built-in defaults: what the binary runs with given no flags and no `ACCOUNTSERVICE_*`
/// variables. Tests and tools start from it and change what they need.
impl Default for Settings {
    fn default() -> Self {
        // Every default is a constant above, and the unit tests parse them all.
        Self::from_args_ignoring_env::<_, OsString>([]).expect("the built-in defaults parse")
    }
}

/// Reads a secret file, without one trailing newline (`echo secret > file` writes one).
fn read_secret(path: &std::path::Path, what: &str) -> Result<String, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        StoreError::Config(format!(
            "cannot read the {what} file {}: {error}",
            path.display()
        ))
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
}

/// Parses `--database-url` with an error that never repeats the value (clap's own "invalid
/// value '…'" would print the password).
#[derive(Debug, Clone, Copy)]
struct DatabaseUrlParser;

impl clap::builder::TypedValueParser for DatabaseUrlParser {
    type Value = DatabaseUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<DatabaseUrl, clap::Error> {
        let refuse = |reason: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("--database-url: {reason}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("the URL is not UTF-8".into()))?;
        text.parse()
            .map_err(|error: InvalidUrl| refuse(error.to_string()))
    }
}

/// The exit statuses, as `--help` lists them.
const EXIT_CODES: &str = "Exit status:
  0  stopped by SIGTERM or Ctrl-C while healthy, after draining
  1  start-up or serving failed (one line on stderr says why)
  2  invalid arguments, settings whose stop cannot fit --stop-grace, or a --max-connections
     that cannot fit the memory limit (one line on stderr)
  3  stopped by SIGTERM or Ctrl-C while the instance's own health was DOWN, after draining
     (one line on stderr and in the log names the reason); orchestrators record a failure";

/// Upper bound of `--seed-accounts`: keeps a typo from seeding for hours.
pub const MAX_SEED_ACCOUNTS: u64 = 100_000_000;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A deployment's release label (`--release`): only what can follow `+` in a semver version,
/// so `<version>+<release>` is still one. Parsed once here; no other code checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release(String);

/// The longest release label: a git revision (40 hex digits) or an image tag fits; a paragraph
/// does not.
pub const MAX_RELEASE_LEN: usize = 64;

impl std::str::FromStr for Release {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err("the release label is empty (leave it unset for none)".to_owned());
        }
        if text.len() > MAX_RELEASE_LEN {
            return Err(format!(
                "the release label is {} bytes long; at most {MAX_RELEASE_LEN}",
                text.len()
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
        {
            // `{:?}` escapes control characters, so the message stays one line.
            return Err(format!(
                "{text:?} contains {bad:?}: a release label takes ASCII letters, digits, `-` \
                 and `.` (semver build metadata)"
            ));
        }
        if text.split('.').any(str::is_empty) {
            return Err(format!(
                "{text:?} has an empty part between dots (semver build metadata)"
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `--management-port` value that means "no management port" (an empty value means the
/// same, for an image's variable set to nothing).
pub const MANAGEMENT_PORT_OFF: &str = "off";

/// Parses `--management-port`: a port number, or `off` (or nothing) for none.
fn parse_management_port(text: &str) -> Result<Option<u16>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case(MANAGEMENT_PORT_OFF) {
        return Ok(None);
    }
    // clap's message names the value before this.
    trimmed.parse().map(Some).map_err(|_| {
        format!(
            "expected a port number (0 to 65535), or `{MANAGEMENT_PORT_OFF}` (or nothing) for no \
             management port"
        )
    })
}

/// The longest any duration setting may be: an hour. Longer is a typo (`3600000` for `3600`),
/// and a bound keeps every deadline computed from a setting far from overflowing a clock.
pub const MAX_SECONDS: f64 = 3600.0;

/// The shortest interval or timeout that must be more than zero: a millisecond. Shorter would
/// spin, or fail every check.
pub const MIN_POSITIVE_SECONDS: f64 = 0.001;

/// The shortest `--stop-grace`: a second, room for every phase of a stop at its smallest.
pub const MIN_STOP_GRACE: f64 = 1.0;

/// Upper bound of `--max-concurrent-requests`: far above what one process serves at once.
pub const MAX_CONCURRENT_REQUESTS: u32 = 1_000_000;

/// A parser of a number of seconds from `min` to `max` inclusive, fractions allowed (`10`,
/// `0.5`, `1e-3`); anything else (negative, not finite, out of range, not a number) is an
/// error of one line naming the range.
fn seconds(
    min: f64,
    max: f64,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let range = || {
            if min == 0.0 {
                format!("from 0 to {max} seconds")
            } else {
                format!("from {min} to {max} seconds")
            }
        };
        let seconds: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("not a number of seconds; expected {}", range()))?;
        // NaN is in no range.
        if !(min..=max).contains(&seconds) {
            return Err(format!("out of range; expected {}", range()));
        }
        // In range, so finite and non-negative: this cannot fail.
        Duration::try_from_secs_f64(seconds).map_err(|_| format!("expected {}", range()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses like the command line, but never from `ACCOUNTSERVICE_*` variables that happen to
    /// be set where the tests run (the process tests cover reading them).
    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        Settings::from_args_ignoring_env(args.iter().copied())
    }

    #[test]
    fn defaults_match_the_original_service() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.port, 6767);
        assert_eq!(settings.bind, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(settings.db_path, PathBuf::from("accounts.db"));
        assert_eq!(settings.seed_accounts, 100);
        assert_eq!(settings.log_format, LogFormat::Text);
        assert_eq!(settings.stop_grace, Duration::from_secs(10));
        assert_eq!(
            settings.shutdown_timeout, None,
            "what is left of the stop grace"
        );
        assert_eq!(settings.db_lock_timeout, Duration::from_secs(2));
        assert_eq!(settings.health_details, Details::Components);
        assert_eq!(settings.health_interval, Duration::from_secs(1));
        assert_eq!(settings.health_timeout, Duration::from_secs(1));
        assert_eq!(settings.pre_stop_delay, Duration::ZERO);
        assert!(!settings.testability, "testability must be off by default");
        assert_eq!(settings.header_read_timeout, Duration::from_secs(10));
        assert_eq!(settings.max_header_bytes, 16 * 1024);
        assert_eq!(settings.max_connections, None);
        assert_eq!(settings.write_timeout, Duration::from_secs(30));
        assert_eq!(settings.max_concurrent_requests, 1024);
        assert_eq!(settings.peers, None, "no fleet view unless asked for");
        assert_eq!(settings.local_fault_grace, Duration::from_secs(30));
        assert_eq!(
            settings.management_address(),
            None,
            "one port unless asked for"
        );
        assert_eq!(settings.close_grace, Duration::from_secs(1));
        assert_eq!(settings.release, None);
        assert_eq!(settings.slot, None, "no slot unless told");
        assert_eq!(settings.version(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn a_release_label_becomes_the_build_metadata_of_the_version() {
        for label in [
            "v2",
            "1.4.0-rc.1",
            "3f2a9c1",
            "2026-12-02.1",
            &"a".repeat(64),
        ] {
            let settings = parse(&["--release", label]).unwrap();
            assert_eq!(
                settings.version(),
                format!("{}+{label}", env!("CARGO_PKG_VERSION"))
            );
        }
    }

    #[test]
    fn a_bad_release_label_is_refused_with_a_one_line_reason() {
        for (label, says) in [
            ("", "is empty"),
            ("v 2", "contains ' '"),
            ("v2\nx", "contains '\\n'"),
            ("tag_1", "contains '_'"),
            ("a+b", "contains '+'"),
            ("caf\u{e9}", "contains '\u{e9}'"),
            ("v2.", "empty part between dots"),
            (".v2", "empty part between dots"),
            ("a..b", "empty part between dots"),
            (&"a".repeat(65), "at most 64"),
        ] {
            let error = label.parse::<Release>().unwrap_err();
            assert!(error.contains(says), "{label:?}: {error}");
            assert!(!error.contains('\n'), "{label:?}: {error}");
            assert!(
                parse(&["--release", label]).is_err(),
                "{label:?} was accepted"
            );
        }
    }

    #[test]
    fn the_default_settings_are_the_parsed_defaults() {
        let default = Settings::default();
        assert_eq!(format!("{default:?}"), format!("{:?}", parse(&[]).unwrap()));
        assert_eq!(default.port, 6767);
    }

    #[test]
    fn testability_is_a_flag_that_also_takes_a_boolean() {
        assert!(parse(&["--testability"]).unwrap().testability);
        assert!(parse(&["--testability=true"]).unwrap().testability);
        assert!(!parse(&["--testability=false"]).unwrap().testability);
        assert!(parse(&["--testability=maybe"]).is_err());
    }

    #[test]
    fn health_settings_are_parsed() {
        let settings = parse(&[
            "--health-details",
            "never",
            "--health-interval",
            "0.25",
            "--health-timeout",
            "2",
            "--pre-stop-delay",
            "3",
        ])
        .unwrap();
        assert_eq!(settings.health_details, Details::Never);
        assert_eq!(settings.health_interval, Duration::from_millis(250));
        assert_eq!(settings.health_timeout, Duration::from_secs(2));
        assert_eq!(settings.pre_stop_delay, Duration::from_secs(3));
    }

    #[test]
    fn flags_are_parsed_into_typed_values() {
        let settings = parse(&[
            "--port",
            "0",
            "--bind",
            "::1",
            "--db-path",
            "/tmp/x.db",
            "--seed-accounts",
            "0",
            "--log-format",
            "json",
            "--shutdown-timeout",
            "0.5",
        ])
        .unwrap();
        assert_eq!(settings.port, 0);
        assert_eq!(settings.bind, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(settings.seed_accounts, 0);
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.shutdown_timeout, Some(Duration::from_millis(500)));
    }

    #[test]
    fn the_management_listener_binds_like_the_public_one_unless_told_otherwise() {
        let settings = parse(&["--bind", "127.0.0.1", "--management-port", "9090"]).unwrap();
        assert_eq!(
            settings.management_address(),
            Some("127.0.0.1:9090".parse().unwrap())
        );
        let settings = parse(&["--management-port", "0", "--management-bind", "::1"]).unwrap();
        assert_eq!(
            settings.management_address(),
            Some("[::1]:0".parse().unwrap())
        );
    }

    #[test]
    fn off_or_an_empty_value_means_no_management_port() {
        for value in ["off", "OFF", "", " "] {
            let settings = parse(&["--management-port", value]).unwrap();
            assert_eq!(settings.management_address(), None, "{value:?}");
        }
        let settings = parse(&["--management-port", "6768"]).unwrap();
        assert_eq!(settings.management_port, Some(6768));
    }

    #[test]
    fn a_bad_management_port_is_refused_with_a_one_line_reason() {
        for value in ["65536", "-1", "none", "6768x", "67\n68"] {
            let error = parse_management_port(value).unwrap_err();
            assert!(
                error.contains("expected a port number"),
                "{value:?}: {error}"
            );
            assert!(error.contains("`off`"), "{value:?}: {error}");
            assert!(!error.contains('\n'), "{value:?}: {error}");
            assert!(
                parse(&["--management-port", value]).is_err(),
                "{value:?} was accepted"
            );
        }
    }

    #[test]
    fn invalid_values_are_rejected_with_a_reason() {
        for args in [
            &["--port", "70000"][..],
            &["--bind", "localhost"],
            &["--log-format", "xml"],
            &["--shutdown-timeout", "-1"],
            &["--db-lock-timeout", "soon"],
            &["--seed-accounts", "100000000000"],
            &["--health-details", "sometimes"],
            &["--health-interval", "0"],
            &["--health-timeout", "0"],
            &["--max-header-bytes", "100"],
            &["--max-connections", "0"],
            &["--write-timeout", "0"],
            &["--write-timeout", "7e18"],
            &["--memory-limit", "0"],
            &["--memory-limit", "lots"],
            &["--max-concurrent-requests", "0"],
            &["--header-read-timeout", "0"],
            &["--peers", "tasks.accountservice"],
            &["--peers", "a:1,,b:2"],
            &["--management-port", "65536"],
            &["--management-bind", "localhost"],
            &["--health-interval", "7e18"],
            &["--close-grace", "1e19"],
            &["--stop-grace", "0.5"],
            &["--shutdown-timeout", "NaN"],
            &["--pre-stop-delay", "inf"],
            &["--max-concurrent-requests", "1000001"],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }

    #[test]
    fn without_a_database_url_the_store_is_redb() {
        assert!(parse(&[]).unwrap().database().unwrap().is_none());
    }

    #[test]
    fn an_acquire_timeout_not_below_the_health_timeout_is_refused() {
        let settings = parse(&[
            "--database-url",
            "postgres://app:pw@db/accounts",
            "--database-acquire-timeout",
            "1",
            "--health-timeout",
            "1",
        ])
        .unwrap();
        let error = settings.database().unwrap_err().to_string();
        assert!(
            error.contains("--database-acquire-timeout (1 s)"),
            "{error}"
        );
    }

    #[test]
    fn the_url_and_password_files_are_read_and_the_password_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let (url, password) = (dir.path().join("url"), dir.path().join("password"));
        std::fs::write(&url, "postgres://app@db:6432/accounts\n").unwrap();
        std::fs::write(&password, "s3cret\n").unwrap();
        let settings = parse(&[
            "--database-url-file",
            url.to_str().unwrap(),
            "--database-password-file",
            password.to_str().unwrap(),
        ])
        .unwrap();
        let database = settings.database().unwrap().unwrap();
        assert_eq!(database.url.config().get_password(), Some(&b"s3cret"[..]));
        assert_eq!(
            database.url.to_string(),
            "postgres://app:***@db:6432/accounts"
        );
        assert!(!format!("{settings:?} {database:?}").contains("s3cret"));

        std::fs::write(&url, "postgres://app:s3cret@db/x?sslmode=bogus").unwrap();
        let error = settings.database().unwrap_err().to_string();
        assert!(
            error.contains("sslmode") && !error.contains("s3cret"),
            "{error}"
        );
    }

    /// Every duration setting and the range it takes, in seconds.
    const DURATIONS: [(&str, f64, f64); 13] = [
        ("--local-fault-grace", 0.0, MAX_SECONDS),
        (
            "--database-acquire-timeout",
            MIN_POSITIVE_SECONDS,
            MAX_SECONDS,
        ),
        (
            "--database-statement-timeout",
            MIN_POSITIVE_SECONDS,
            MAX_SECONDS,
        ),
        (
            "--database-connect-timeout",
            MIN_POSITIVE_SECONDS,
            MAX_SECONDS,
        ),
        ("--stop-grace", MIN_STOP_GRACE, MAX_SECONDS),
        ("--shutdown-timeout", 0.0, MAX_SECONDS),
        ("--db-lock-timeout", 0.0, MAX_SECONDS),
        ("--health-interval", MIN_POSITIVE_SECONDS, MAX_SECONDS),
        ("--health-timeout", MIN_POSITIVE_SECONDS, MAX_SECONDS),
        ("--pre-stop-delay", 0.0, MAX_SECONDS),
        ("--header-read-timeout", MIN_POSITIVE_SECONDS, MAX_SECONDS),
        ("--close-grace", 0.0, MAX_SECONDS),
        ("--write-timeout", MIN_POSITIVE_SECONDS, MAX_SECONDS),
    ];

    /// Every size or count setting and the range it takes.
    const COUNTS: [(&str, u64, u64); 8] = [
        ("--database-pool-size", 1, 1000),
        ("--port", 0, 65_535),
        ("--seed-accounts", 0, MAX_SEED_ACCOUNTS),
        ("--max-header-bytes", 8192, 1_048_576),
        ("--max-connections", 1, u32::MAX as u64),
        (
            "--max-concurrent-requests",
            1,
            MAX_CONCURRENT_REQUESTS as u64,
        ),
        ("--slot", 0, u32::MAX as u64),
        ("--memory-limit", 1, u64::MAX),
    ];

    /// The settings that are neither: words, addresses, paths, switches.
    const OTHERS: [&str; 15] = [
        "--bind",
        "--db-path",
        "--database-url",
        "--database-url-file",
        "--database-password-file",
        "--log-format",
        "--log-filter",
        "--health-details",
        "--testability",
        "--peers",
        "--management-port",
        "--management-bind",
        "--release",
        "--help",
        "--version",
    ];

    #[test]
    fn every_setting_is_known_to_the_range_tests() {
        for argument in Settings::command().get_arguments() {
            let flag = format!("--{}", argument.get_long().unwrap_or_default());
            let known = DURATIONS.iter().any(|(f, ..)| *f == flag)
                || COUNTS.iter().any(|(f, ..)| *f == flag)
                || OTHERS.contains(&flag.as_str());
            assert!(
                known,
                "{flag} is new: give it a range and add it to DURATIONS or COUNTS (or OTHERS)"
            );
        }
    }

    /// The duration `flag` was given, when the settings took it.
    fn duration_of(settings: &Settings, flag: &str) -> Duration {
        match flag {
            "--stop-grace" => settings.stop_grace,
            "--shutdown-timeout" => settings.shutdown_timeout.unwrap_or_default(),
            "--db-lock-timeout" => settings.db_lock_timeout,
            "--health-interval" => settings.health_interval,
            "--health-timeout" => settings.health_timeout,
            "--pre-stop-delay" => settings.pre_stop_delay,
            "--header-read-timeout" => settings.header_read_timeout,
            "--close-grace" => settings.close_grace,
            "--write-timeout" => settings.write_timeout,
            "--local-fault-grace" => settings.local_fault_grace,
            "--database-acquire-timeout" => settings.database_acquire_timeout,
            "--database-statement-timeout" => settings.database_statement_timeout,
            "--database-connect-timeout" => settings.database_connect_timeout,
            _ => unreachable!("{flag} is not a duration"),
        }
    }

    /// The count `flag` was given, when the settings took it.
    fn count_of(settings: &Settings, flag: &str) -> u64 {
        match flag {
            "--port" => settings.port.into(),
            "--seed-accounts" => settings.seed_accounts,
            "--max-header-bytes" => settings.max_header_bytes as u64,
            "--max-connections" => settings.max_connections.map_or(0, |n| n as u64),
            "--max-concurrent-requests" => settings.max_concurrent_requests as u64,
            "--slot" => settings.slot.map_or(0, u64::from),
            "--database-pool-size" => settings.database_pool_size as u64,
            "--memory-limit" => match settings.memory_limit {
                crate::memory_limit::MemoryLimitSetting::Bytes(bytes) => bytes,
                _ => 0,
            },
            _ => unreachable!("{flag} is not a count"),
        }
    }

    /// A refusal is clap's one line naming the flag (what `main` prints), never a panic.
    fn assert_refused_in_one_line(flag: &str, value: &str, error: &clap::Error) {
        let rendered = error.render().to_string();
        let first = rendered.lines().next().unwrap_or_default();
        assert!(first.contains(flag), "{flag} {value:?}: {rendered}");
        assert!(
            matches!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue
            ),
            "{flag} {value:?}: {rendered}"
        );
    }

    /// Extreme and odd numbers of seconds as an operator might type them.
    fn seconds_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            any::<f64>().prop_map(|x| x.to_string()),
            any::<f64>().prop_map(|x| format!("{x:e}")),
            (0u32..400, any::<bool>())
                .prop_map(|(e, neg)| format!("{}1e{e}", if neg { "-" } else { "" })),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i128>().prop_map(|n| n.to_string()),
            (0.0f64..7200.0).prop_map(|x| x.to_string()),
            prop::sample::select(vec![
                "",
                " ",
                "inf",
                "-inf",
                "NaN",
                "-0",
                "0x10",
                "1_000",
                "1s",
                "10ms",
                "+5",
                "1e-400",
                "4e-324",
                "3600.0000001",
                "0.0009999",
            ])
            .prop_map(str::to_owned),
            "\\PC{0,12}",
        ]
    }

    /// Extreme and odd counts.
    fn count_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            any::<i128>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (0u64..2_000_000).prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|x| x.to_string()),
            prop::sample::select(vec!["", "-0", "0x10", "1e6", "1_000", "+5", " 7"])
                .prop_map(str::to_owned),
            "\\PC{0,12}",
        ]
    }

    proptest::proptest! {
        #[test]
        fn every_duration_setting_takes_only_its_range_and_refuses_the_rest_in_one_line(
            which in 0..DURATIONS.len(),
            value in seconds_text(),
        ) {
            let (flag, min, max) = DURATIONS[which];
            let arg = format!("{flag}={value}");
            match parse(&[&arg]) {
                Ok(settings) => {
                    let took = duration_of(&settings, flag).as_secs_f64();
                    proptest::prop_assert!(
                        (min..=max).contains(&took),
                        "{} {:?} gave {}", flag, value, took
                    );
                    // Every deadline computed from it stays far from the clocks' limits.
                    let later = std::time::Instant::now()
                        .checked_add(duration_of(&settings, flag) * 1000);
                    proptest::prop_assert!(later.is_some());
                }
                Err(error) => assert_refused_in_one_line(flag, &value, &error),
            }
        }

        #[test]
        fn every_count_setting_takes_only_its_range_and_refuses_the_rest_in_one_line(
            which in 0..COUNTS.len(),
            value in count_text(),
        ) {
            let (flag, min, max) = COUNTS[which];
            let arg = format!("{flag}={value}");
            match parse(&[&arg]) {
                Ok(settings) => {
                    let took = count_of(&settings, flag);
                    proptest::prop_assert!(
                        (min..=max).contains(&took),
                        "{} {:?} gave {}", flag, value, took
                    );
                }
                Err(error) => assert_refused_in_one_line(flag, &value, &error),
            }
        }
    }

    #[test]
    fn the_ends_of_every_duration_range_are_taken_and_just_past_them_refused() {
        for (flag, min, max) in DURATIONS {
            for inside in [min, max] {
                let settings = parse(&[&format!("{flag}={inside}")]).unwrap();
                assert_eq!(duration_of(&settings, flag).as_secs_f64(), inside, "{flag}");
            }
            for outside in [max * 1.000_001, min - 0.000_1, 7e18, 1e19, f64::MAX] {
                let error = parse(&[&format!("{flag}={outside}")]).unwrap_err();
                assert_refused_in_one_line(flag, &outside.to_string(), &error);
                assert!(error.to_string().contains("out of range"), "{error}");
            }
        }
    }
}
