//! The test's HAProxy configuration, made from the shipped `deploy/haproxy/haproxy.cfg` by
//! substituting only what differs on a test machine (listen address, the instances' addresses
//! and management ports, the stats socket path, and for a non-root run the privilege drop), so
//! the balancing, checks, timeouts and retries under test are the shipped ones. Also reads the
//! check timing and the check port from it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// The shipped configuration, relative to the workspace root.
pub const SHIPPED: &str = "deploy/haproxy/haproxy.cfg";

/// The global lines that drop privileges; HAProxy refuses them when not started as root.
const PRIVILEGE_KEYWORDS: [&str; 3] = ["chroot", "user", "group"];

/// The test configuration and what it says about the backend.
#[derive(Debug)]
pub struct TestConfig {
    /// The configuration text to run.
    pub text: String,
    /// The backend named in the `server` lines.
    pub backend: String,
    /// The server names, in the order of the instances they point to.
    pub servers: Vec<String>,
    /// The health-check timing of the `default-server` line.
    pub timing: CheckTiming,
    /// The port the shipped `default-server` line sends checks to (the management port); each
    /// test `server` line names its instance's own instead.
    pub check_port: u16,
}

/// One instance behind HAProxy: where requests go, and the port its checks go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// The public address.
    pub addr: SocketAddr,
    /// The management port on the same host.
    pub management_port: u16,
}

/// Health-check timing of the backend's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTiming {
    /// Interval between checks of a server that is fully UP.
    pub inter: Duration,
    /// Interval while a server is changing state (`inter` when not set).
    pub fastinter: Duration,
    /// Failed checks in a row that mark a server DOWN.
    pub fall: u32,
    /// Passed checks in a row that mark a server UP.
    pub rise: u32,
}

impl CheckTiming {
    /// The longest HAProxy can take to mark a server DOWN once its checks start failing, not
    /// counting the time a check itself takes: `inter + (fall - 1) x fastinter`.
    pub fn detection(&self) -> Duration {
        self.inter + self.fastinter * self.fall.saturating_sub(1)
    }
}

/// Makes the test configuration: HAProxy listens on `frontend`, the `server` lines point at
/// `instances` in order (there must be exactly as many), each checked on its own management port
/// (the shipped file checks one port for all, which instances on one test machine cannot share),
/// the stats socket is `socket`; without `root`, the `chroot`/`user`/`group` lines are commented
/// out.
pub fn for_test(
    shipped: &str,
    frontend: SocketAddr,
    instances: &[Backend],
    socket: &Path,
    root: bool,
) -> Result<TestConfig> {
    let mut text = String::with_capacity(shipped.len() + 256);
    let mut binds = 0;
    let mut sockets = 0;
    let mut servers = Vec::new();
    let mut backend = None;
    let mut section_backend = None;
    let mut timing = None;
    let mut check_port = None;
    for line in shipped.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let indent = &line[..line.len() - line.trim_start().len()];
        match words.as_slice() {
            ["backend", name, ..] => {
                section_backend = Some((*name).to_owned());
                text.push_str(line);
            }
            ["bind", _, rest @ ..] => {
                binds += 1;
                text.push_str(&format!("{indent}bind {frontend}"));
                push_words(&mut text, rest);
            }
            ["server", name, _, rest @ ..] => {
                let instance = instances.get(servers.len()).with_context(|| {
                    format!("{SHIPPED} has more `server` lines than the test's instances")
                })?;
                ensure!(
                    !rest.contains(&"port"),
                    "{SHIPPED}: `server {name}` sets its own check port; the test replaces it"
                );
                servers.push((*name).to_owned());
                backend.clone_from(&section_backend);
                text.push_str(&format!(
                    "{indent}server {name} {} port {}",
                    instance.addr, instance.management_port
                ));
                push_words(&mut text, rest);
            }
            ["stats", "socket", _, rest @ ..] => {
                sockets += 1;
                text.push_str(&format!("{indent}stats socket {}", socket.display()));
                push_words(&mut text, rest);
            }
            [keyword, ..] if !root && PRIVILEGE_KEYWORDS.contains(keyword) => {
                text.push_str(&format!("{indent}# not root, so left out: {}", line.trim()));
            }
            ["default-server", rest @ ..] => {
                timing = Some(parse_timing(rest)?);
                check_port = value_of(rest, "port")
                    .map(|port| {
                        port.parse::<u16>()
                            .with_context(|| format!("`port {port}` is not a port"))
                    })
                    .transpose()?;
                text.push_str(line);
            }
            _ => text.push_str(line),
        }
        text.push('\n');
    }
    ensure!(
        binds == 1,
        "{SHIPPED} has {binds} `bind` lines; the test expects one frontend"
    );
    ensure!(
        sockets == 1,
        "{SHIPPED} has {sockets} `stats socket` lines; the test reads server states from one"
    );
    ensure!(
        servers.len() == instances.len(),
        "{SHIPPED} has {} `server` lines; the test runs {} instances",
        servers.len(),
        instances.len()
    );
    Ok(TestConfig {
        text,
        backend: backend.with_context(|| format!("no `backend` section in {SHIPPED}"))?,
        servers,
        timing: timing.with_context(|| format!("no `default-server` line in {SHIPPED}"))?,
        check_port: check_port.with_context(|| {
            format!(
                "the `default-server` line of {SHIPPED} sets no check `port`: its checks would \
                 ask the public port, which answers 404 to the readiness route once the \
                 instances run with a management port"
            )
        })?,
    })
}

/// The word after `key` in a list of keyword arguments.
fn value_of<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words
        .windows(2)
        .find(|pair| pair[0] == key)
        .map(|pair| pair[1])
}

/// The retry lines of the shipped `defaults` and what replaces them to switch retries off.
const RETRY_LINES: [(&str, &str); 3] = [
    ("retries", "retries 0"),
    ("option redispatch", "no option redispatch"),
    ("retry-on", "retry-on none"),
];

/// Turns HAProxy's retries and redispatches off in a configuration made by [`for_test`], to
/// see what the instances' drain does on its own (an experiment, not what is shipped).
pub fn without_retries(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut replaced = [false; RETRY_LINES.len()];
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let found = RETRY_LINES.iter().position(|(prefix, _)| {
            trimmed
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(' '))
        });
        match found {
            Some(index) => {
                replaced[index] = true;
                out.push_str(&format!("{indent}{}", RETRY_LINES[index].1));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    for (index, done) in replaced.iter().enumerate() {
        ensure!(
            *done,
            "{SHIPPED} has no `{} ...` line to switch off",
            RETRY_LINES[index].0
        );
    }
    Ok(out)
}

fn push_words(text: &mut String, words: &[&str]) {
    for word in words {
        text.push(' ');
        text.push_str(word);
    }
}

/// Reads `inter`, `fastinter`, `fall` and `rise` from a `default-server` line's arguments,
/// with HAProxy's defaults for those not given (2 s, `inter`, 3, 2).
fn parse_timing(words: &[&str]) -> Result<CheckTiming> {
    let value = |key: &str| value_of(words, key);
    let inter = value("inter")
        .map(parse_duration)
        .transpose()?
        .unwrap_or(Duration::from_secs(2));
    let fastinter = value("fastinter")
        .map(parse_duration)
        .transpose()?
        .unwrap_or(inter);
    let count = |key: &str, default: u32| -> Result<u32> {
        value(key).map_or(Ok(default), |text| {
            text.parse()
                .with_context(|| format!("`{key} {text}` is not a count"))
        })
    };
    Ok(CheckTiming {
        inter,
        fastinter,
        fall: count("fall", 3)?,
        rise: count("rise", 2)?,
    })
}

/// Reads a HAProxy time: a number with an optional unit (`us`, `ms`, `s`, `m`, `h`, `d`);
/// milliseconds without one.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .with_context(|| format!("`{text}` is not a HAProxy time"))?;
    Ok(match unit {
        "us" => Duration::from_micros(number),
        "" | "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number * 60),
        "h" => Duration::from_secs(number * 3600),
        "d" => Duration::from_secs(number * 86_400),
        _ => bail!("unknown time unit in `{text}`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(SHIPPED);
        std::fs::read_to_string(path).unwrap()
    }

    /// Instances on 127.0.0.1 at `ports`, each with its management port 100 above.
    fn addrs(ports: &[u16]) -> Vec<Backend> {
        ports
            .iter()
            .map(|port| Backend {
                addr: SocketAddr::from(([127, 0, 0, 1], *port)),
                management_port: port + 100,
            })
            .collect()
    }

    #[test]
    fn the_shipped_file_becomes_a_test_config_with_only_addresses_and_socket_changed() {
        let shipped = shipped();
        let config = for_test(
            &shipped,
            "127.0.0.1:40000".parse().unwrap(),
            &addrs(&[40001, 40002, 40003]),
            Path::new("/tmp/x/admin.sock"),
            true,
        )
        .unwrap();
        assert_eq!(config.backend, "accountservice");
        assert_eq!(config.servers, ["app1", "app2", "app3"]);
        assert!(config.text.contains("    bind 127.0.0.1:40000\n"));
        assert!(
            config
                .text
                .contains("    server app2 127.0.0.1:40002 port 40102\n")
        );
        assert_eq!(config.check_port, 6768, "the shipped checks ask 6768");
        assert!(
            config
                .text
                .contains("stats socket /tmp/x/admin.sock mode 660 level admin\n")
        );
        assert!(config.text.contains("\n    user haproxy\n"));
        let changed = shipped
            .lines()
            .zip(config.text.lines())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, 5, "bind, stats socket and three servers");
        assert_eq!(shipped.lines().count(), config.text.lines().count());
    }

    #[test]
    fn the_shipped_check_timing_is_read() {
        let config = for_test(
            &shipped(),
            "127.0.0.1:1".parse().unwrap(),
            &addrs(&[2, 3, 4]),
            Path::new("s"),
            true,
        )
        .unwrap();
        assert_eq!(
            config.timing,
            CheckTiming {
                inter: Duration::from_secs(1),
                fastinter: Duration::from_millis(250),
                fall: 2,
                rise: 2,
            }
        );
        assert_eq!(config.timing.detection(), Duration::from_millis(1250));
    }

    #[test]
    fn without_root_the_privilege_drop_is_left_out() {
        let config = for_test(
            &shipped(),
            "127.0.0.1:1".parse().unwrap(),
            &addrs(&[2, 3, 4]),
            Path::new("s"),
            false,
        )
        .unwrap();
        for keyword in PRIVILEGE_KEYWORDS {
            assert!(
                !config
                    .text
                    .lines()
                    .any(|line| line.trim_start().starts_with(keyword)),
                "{keyword} still set"
            );
        }
    }

    #[test]
    fn a_shipped_file_whose_checks_ask_the_public_port_is_refused() {
        let shipped = shipped().replace(" port 6768", "");
        let error = for_test(
            &shipped,
            "127.0.0.1:1".parse().unwrap(),
            &addrs(&[2, 3, 4]),
            Path::new("s"),
            true,
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("no check `port`"),
            "{error:#}"
        );
    }

    #[test]
    fn a_different_number_of_instances_is_refused() {
        let error = for_test(
            &shipped(),
            "127.0.0.1:1".parse().unwrap(),
            &addrs(&[2, 3]),
            Path::new("s"),
            true,
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("more `server` lines"),
            "{error:#}"
        );
    }

    #[test]
    fn retries_can_be_switched_off_for_the_experiment() {
        let config = for_test(
            &shipped(),
            "127.0.0.1:1".parse().unwrap(),
            &addrs(&[2, 3, 4]),
            Path::new("s"),
            true,
        )
        .unwrap();
        let text = without_retries(&config.text).unwrap();
        for (_, replacement) in RETRY_LINES {
            assert!(
                text.contains(&format!("    {replacement}\n")),
                "{replacement}"
            );
        }
        assert!(
            !text
                .lines()
                .any(|line| line.trim() == "option redispatch 1")
        );
        assert!(without_retries("defaults\n    mode http\n").is_err());
    }

    #[test]
    fn haproxy_times_are_read_with_their_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1500").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn missing_timing_keywords_take_haproxys_defaults() {
        let timing = parse_timing(&["check", "inter", "500ms"]).unwrap();
        assert_eq!(timing.fastinter, Duration::from_millis(500));
        assert_eq!((timing.fall, timing.rise), (3, 2));
    }
}
