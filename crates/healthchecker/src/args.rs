//! Command line and environment: turns argv and the `HEALTHCHECK_*` variables into a
//! [`Command`]. Nothing else in the crate looks at either.

use std::ffi::OsString;

use crate::target::{Host, Port, RequestPath, Target, TargetError};
use crate::timeout::{Timeout, TimeoutError};

/// Environment variable standing in for `--port`.
pub const ENV_PORT: &str = "HEALTHCHECK_PORT";
/// Environment variable standing in for `--path`.
pub const ENV_PATH: &str = "HEALTHCHECK_PATH";
/// Environment variable standing in for `--timeout`.
pub const ENV_TIMEOUT: &str = "HEALTHCHECK_TIMEOUT";

/// Long options that take a value, so that the argument after them is left alone.
const VALUE_OPTIONS: [&str; 5] = ["port", "host", "path", "url", "timeout"];

/// `--help` text. Kept in one literal so the lead can quote it in the README as is.
pub const HELP: &str = concat!(
    "healthchecker ",
    env!("CARGO_PKG_VERSION"),
    ": a tiny HTTP probe for Docker HEALTHCHECK.

Sends one GET and exits 0 if the status is 2xx, 1 otherwise, printing one line
that Docker keeps in `docker inspect` (.State.Health.Log).

Usage: healthchecker [OPTIONS]

Options:
      --port <PORT>         Port to probe [default: 6767]
                            [env: HEALTHCHECK_PORT] (the original defaulted
                            to 80, so forgetting -port silently probed the
                            wrong port)
      --host <HOST>         IPv4 or IPv6 address, or localhost (tries 127.0.0.1,
                            then ::1) [default: 127.0.0.1]; names are not
                            resolved
      --path <PATH>         Request path [default: /health]
                            [env: HEALTHCHECK_PATH]
      --url <URL>           Whole target instead of --host/--port/--path:
                            http://host[:port][/path] (http only; port 80 if
                            omitted, as in any URL)
      --timeout <DURATION>  Budget for connect, send and receive together:
                            2s, 500ms, 1.5s... [default: 2s]
                            [env: HEALTHCHECK_TIMEOUT]; keep Docker's
                            --timeout above it
  -q, --quiet               Print nothing when healthy (failures still say why)
  -h, --help                Print this help and exit 0
  -V, --version             Print the version and exit 0

Options also take one dash, as in the original: -port=6767 or -port 6767.
Flags win over environment variables; empty variables are ignored.

Healthy means a 2xx status. Redirects are not followed and count as unhealthy.
Only the status line and headers are waited for when healthy; the body of an
unhealthy answer is quoted, up to 512 bytes, with control characters escaped.

Exit status:
  0  healthy (or --help, --version)
  1  unhealthy, or a usage error (one line on stderr); never 2, which Docker
     reserves

Output, one line on stdout:
  healthy: 200 OK in 0.4 ms
  unhealthy: 503 Service Unavailable: {\"status\":\"DOWN\"}
  unhealthy: connection refused (127.0.0.1:6767)
  unhealthy: no response within 2s (127.0.0.1:6767)

In a Dockerfile:
  HEALTHCHECK --interval=5s --timeout=3s CMD [\"/healthchecker\", \"-port=6767\"]
"
);

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Probe the target.
    Probe(Config),
    /// Print [`HELP`].
    Help,
    /// Print the version.
    Version,
}

/// Everything a probe needs, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// What to probe.
    pub target: Target,
    /// Budget for the whole probe.
    pub timeout: Timeout,
    /// Stay silent when healthy.
    pub quiet: bool,
}

/// A command line or environment the probe cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// Unknown option, missing value, stray argument...
    #[error("{0}")]
    Syntax(#[from] lexopt::Error),
    /// An option or variable whose value does not parse.
    #[error("invalid {origin} {value:?}: {reason}")]
    Invalid {
        /// The option or variable, e.g. `--port` or `HEALTHCHECK_PORT`.
        origin: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: ValueError,
    },
    /// An option or variable whose value is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUnicode(&'static str),
    /// `--url` together with one of the options it replaces.
    #[error("--url cannot be combined with --host, --port or --path")]
    UrlWithParts,
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Bad host, port, path or URL.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Bad timeout.
    #[error(transparent)]
    Timeout(#[from] TimeoutError),
}

/// Options as given, before defaults and environment fallbacks are applied.
#[derive(Default)]
struct Given {
    host: Option<String>,
    port: Option<String>,
    path: Option<String>,
    url: Option<String>,
    timeout: Option<String>,
    quiet: bool,
}

/// Parses the arguments (without the program name), falling back on `env` for the
/// `HEALTHCHECK_*` variables.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Command, UsageError> {
    use lexopt::Arg::{Long, Short, Value};

    let mut given = Given::default();
    let mut parser = lexopt::Parser::from_args(normalise(args));
    while let Some(arg) = parser.next()? {
        match arg {
            Long("port") => given.port = Some(utf8(parser.value()?, "--port")?),
            Long("host") => given.host = Some(utf8(parser.value()?, "--host")?),
            Long("path") => given.path = Some(utf8(parser.value()?, "--path")?),
            Long("url") => given.url = Some(utf8(parser.value()?, "--url")?),
            Long("timeout") => given.timeout = Some(utf8(parser.value()?, "--timeout")?),
            Short('q') | Long("quiet") => given.quiet = true,
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Value(value) => return Err(lexopt::Error::UnexpectedArgument(value).into()),
            _ => return Err(arg.unexpected().into()),
        }
    }
    config(given, env).map(Command::Probe)
}

/// Applies environment fallbacks and defaults, and validates every value.
fn config(given: Given, env: impl Fn(&str) -> Option<OsString>) -> Result<Config, UsageError> {
    let target = match given.url {
        Some(url) => {
            if given.host.is_some() || given.port.is_some() || given.path.is_some() {
                return Err(UsageError::UrlWithParts);
            }
            value("--url", url, Target::from_url)?
        }
        None => Target {
            host: match given.host {
                Some(host) => value("--host", host, Host::parse)?,
                None => Host::default(),
            },
            port: match fallback(given.port, "--port", ENV_PORT, &env)? {
                Some((origin, port)) => value(origin, port, Port::parse)?,
                None => Port::DEFAULT,
            },
            path: match fallback(given.path, "--path", ENV_PATH, &env)? {
                Some((origin, path)) => value(origin, path, RequestPath::parse)?,
                None => RequestPath::default_path(),
            },
        },
    };
    let timeout = match fallback(given.timeout, "--timeout", ENV_TIMEOUT, &env)? {
        Some((origin, timeout)) => value(origin, timeout, Timeout::parse)?,
        None => Timeout::DEFAULT,
    };
    Ok(Config {
        target,
        timeout,
        quiet: given.quiet,
    })
}

/// The flag's value if given, else the variable's if set and not empty, with where it came from.
fn fallback(
    flag: Option<String>,
    flag_name: &'static str,
    variable: &'static str,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Option<(&'static str, String)>, UsageError> {
    if let Some(flag) = flag {
        return Ok(Some((flag_name, flag)));
    }
    match env(variable) {
        Some(value) if !value.is_empty() => Ok(Some((variable, utf8(value, variable)?))),
        _ => Ok(None),
    }
}

fn value<T, E: Into<ValueError>>(
    origin: &'static str,
    text: String,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, UsageError> {
    parse(&text).map_err(|reason| UsageError::Invalid {
        origin,
        value: text,
        reason: reason.into(),
    })
}

fn utf8(value: OsString, origin: &'static str) -> Result<String, UsageError> {
    value
        .into_string()
        .map_err(|_| UsageError::NotUnicode(origin))
}

/// Rewrites Go-style single-dash long options (`-port=6767`, `-port 6767`) into the
/// `--port` form, so that lexopt does not read them as a bundle of short flags. Values
/// that follow an option, and everything after `--`, are left untouched.
fn normalise(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut normalised = Vec::new();
    let mut verbatim = false;
    let mut value_next = false;
    for arg in args {
        if verbatim || std::mem::take(&mut value_next) {
            normalised.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            normalised.push(arg);
            continue;
        };
        if text == "--" {
            verbatim = true;
            normalised.push(arg);
        } else if let Some(long) = text.strip_prefix("--") {
            value_next = VALUE_OPTIONS.contains(&long);
            normalised.push(arg);
        } else if let Some(long) = text.strip_prefix('-').filter(|body| {
            body.split('=')
                .next()
                .is_some_and(|name| name.chars().nth(1).is_some())
        }) {
            value_next = VALUE_OPTIONS.contains(&long);
            normalised.push(format!("--{long}").into());
        } else {
            normalised.push(arg);
        }
    }
    normalised
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(args: &[&str], vars: &[(&str, &str)]) -> Result<Command, UsageError> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), OsString::from(value)))
            .collect();
        parse(args.iter().map(OsString::from), move |name| {
            vars.iter()
                .find(|(var, _)| var == name)
                .map(|(_, value)| value.clone())
        })
    }

    fn config(args: &[&str]) -> Config {
        config_env(args, &[])
    }

    fn config_env(args: &[&str], vars: &[(&str, &str)]) -> Config {
        match parse_with(args, vars) {
            Ok(Command::Probe(config)) => config,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse_with(args, &[]) {
            Err(error) => error.to_string(),
            Ok(command) => panic!("{args:?} was accepted: {command:?}"),
        }
    }

    fn url(config: &Config) -> String {
        let target = &config.target;
        format!(
            "{}:{}{}",
            target.host,
            target.port.get(),
            target.path.as_str()
        )
    }

    #[test]
    fn no_arguments_probe_127_0_0_1_6767_health_within_2s() {
        let config = config(&[]);
        assert_eq!(url(&config), "127.0.0.1:6767/health");
        assert_eq!(config.timeout, Timeout::DEFAULT);
        assert!(!config.quiet);
    }

    #[test]
    fn the_seeds_single_dash_form_works() {
        assert_eq!(url(&config(&["-port=7000"])), "127.0.0.1:7000/health");
        assert_eq!(url(&config(&["-port", "7000"])), "127.0.0.1:7000/health");
        let all = config(&[
            "-host",
            "::1",
            "-path=/ready",
            "-timeout",
            "500ms",
            "-quiet",
        ]);
        assert_eq!(url(&all), "[::1]:6767/ready");
        assert_eq!(all.timeout.get().as_millis(), 500);
        assert!(all.quiet);
    }

    #[test]
    fn double_dash_forms_work_with_space_or_equals() {
        assert_eq!(url(&config(&["--port", "7000"])), "127.0.0.1:7000/health");
        assert_eq!(
            url(&config(&["--port=7000", "--host=localhost"])),
            "localhost:7000/health"
        );
        assert!(config(&["-q"]).quiet);
    }

    #[test]
    fn the_last_of_repeated_options_wins() {
        assert_eq!(
            url(&config(&["-port=1", "--port", "2"])),
            "127.0.0.1:2/health"
        );
    }

    #[test]
    fn a_value_that_looks_like_an_option_is_not_rewritten() {
        assert_eq!(
            error(&["-path", "-x"]),
            r#"invalid --path "-x": expected a path starting with '/' made of visible ASCII characters (percent-encode the rest)"#
        );
    }

    #[test]
    fn a_url_sets_host_port_and_path_at_once() {
        assert_eq!(
            url(&config(&["--url", "http://[::1]:8080/ready"])),
            "[::1]:8080/ready"
        );
        assert_eq!(url(&config(&["-url=http://127.0.0.1"])), "127.0.0.1:80/");
    }

    #[test]
    fn a_url_cannot_be_mixed_with_its_parts() {
        assert_eq!(
            error(&["--url", "http://127.0.0.1/", "--port", "1"]),
            "--url cannot be combined with --host, --port or --path"
        );
    }

    #[test]
    fn environment_variables_fill_in_missing_flags() {
        let vars = [
            (ENV_PORT, "7000"),
            (ENV_PATH, "/ready"),
            (ENV_TIMEOUT, "250ms"),
        ];
        let config = config_env(&[], &vars);
        assert_eq!(url(&config), "127.0.0.1:7000/ready");
        assert_eq!(config.timeout.get().as_millis(), 250);
    }

    #[test]
    fn flags_win_over_environment_variables() {
        let vars = [
            (ENV_PORT, "7000"),
            (ENV_PATH, "/ready"),
            (ENV_TIMEOUT, "250ms"),
        ];
        let config = config_env(&["-port=8000", "--path=/x", "--timeout=3s"], &vars);
        assert_eq!(url(&config), "127.0.0.1:8000/x");
        assert_eq!(config.timeout.get().as_secs(), 3);
    }

    #[test]
    fn a_url_flag_ignores_port_and_path_variables() {
        let vars = [(ENV_PORT, "7000"), (ENV_PATH, "/ready")];
        assert_eq!(
            url(&config_env(&["--url=http://127.0.0.1:1/x"], &vars)),
            "127.0.0.1:1/x"
        );
    }

    #[test]
    fn empty_environment_variables_are_ignored() {
        let vars = [(ENV_PORT, ""), (ENV_PATH, ""), (ENV_TIMEOUT, "")];
        assert_eq!(config_env(&[], &vars), config(&[]));
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let Err(error) = parse_with(&[], &[(ENV_PORT, "http")]) else {
            panic!("accepted")
        };
        assert_eq!(
            error.to_string(),
            r#"invalid HEALTHCHECK_PORT "http": expected a port number from 1 to 65535"#
        );
    }

    #[test]
    fn bad_values_name_the_option_and_say_why() {
        assert!(error(&["-port=0"]).starts_with(r#"invalid --port "0": "#));
        assert!(error(&["--host", "db.internal"]).starts_with(r#"invalid --host "db.internal": "#));
        assert!(error(&["--timeout", "2"]).contains("missing unit"));
        assert!(error(&["--url", "https://127.0.0.1/"]).contains("https is not supported"));
    }

    #[test]
    fn unknown_options_and_stray_arguments_are_refused() {
        assert_eq!(error(&["--bogus"]), "invalid option '--bogus'");
        assert_eq!(error(&["-prot=1"]), "invalid option '--prot'");
        assert_eq!(error(&["-x"]), "invalid option '-x'");
        assert_eq!(error(&["6767"]), r#"unexpected argument "6767""#);
        assert_eq!(
            error(&["--", "-port=1"]),
            r#"unexpected argument "-port=1""#
        );
        assert_eq!(error(&["--port"]), "missing argument for option '--port'");
        assert!(error(&["--quiet=yes"]).contains("--quiet"));
    }

    #[test]
    fn help_and_version_are_commands() {
        assert_eq!(parse_with(&["--help"], &[]).unwrap(), Command::Help);
        assert_eq!(parse_with(&["-help"], &[]).unwrap(), Command::Help);
        assert_eq!(parse_with(&["-h"], &[]).unwrap(), Command::Help);
        assert_eq!(parse_with(&["-V"], &[]).unwrap(), Command::Version);
        assert_eq!(parse_with(&["-version"], &[]).unwrap(), Command::Version);
    }

    #[test]
    fn help_documents_exit_codes_defaults_and_the_original_trap() {
        for needle in [
            "6767",
            "80",
            "2s",
            "/health",
            "Exit status",
            "never 2",
            "HEALTHCHECK_TIMEOUT",
        ] {
            assert!(HELP.contains(needle), "{needle}");
        }
    }
}
