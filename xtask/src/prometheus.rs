//! `cargo xtask prometheus`: the shipped `deploy/prometheus/` files and the real service's
//! `/metrics`, checked by Prometheus' own tools (Debian's `prometheus` package, installed with apt
//! when `promtool` is missing).
//!
//! 1. `promtool check config` on `prometheus.yml`, `promtool check rules` on `alerts.yml`,
//!    `promtool test rules` on `alerts_test.yml`.
//! 2. The real service (debug build, 127.0.0.1, port 0, `--testability`) is scraped twice: with no
//!    `Accept` it must answer the text format 0.0.4, which `promtool check metrics` must pass
//!    without a single complaint; with Prometheus' own `Accept` it must answer OpenMetrics.
//! 3. A real Prometheus server on 127.0.0.1 scrapes the service every second with the shipped
//!    rules loaded (the Swarm discovery of `prometheus.yml` replaced by the one static target).
//!    Through its HTTP API: the target is `up == 1`, the scrape was parsed as OpenMetrics (the
//!    build-info family's metadata says `info`, a type the text format does not have), and the
//!    health, transition, process and request series are there with the right values. The
//!    replica is then forced unhealthy: Prometheus sees `health_status` turn, the transition
//!    counted, and the `AccountServiceReplicaNotUp` alert pending.
//!
//! 4. With `--swarm`, the Swarm discovery of `prometheus.yml` itself, on the local engine
//!    ([`swarm`]).
//!
//! Every wait has a deadline; both processes are stopped by their PIDs when the task ends, also
//! when it fails (dropping a [`Server`] kills it).

mod swarm;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Args;
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::project::Project;
use crate::server::Server;
use crate::wait::{self, Poll};

/// The shipped files, relative to the repository root.
const DIR: &str = "deploy/prometheus";

/// What Prometheus 2 sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// How long the service may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long Prometheus may take to become ready, and then to see each expected state.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the task asks Prometheus' API.
const POLL: Duration = Duration::from_millis(250);

/// How long each process may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Options of `cargo xtask prometheus`.
#[derive(Debug, Args)]
pub struct Options {
    /// Also run prometheus.yml's Swarm discovery against a real two-replica service on the local
    /// Docker Engine (wrap in `flock /tmp/host-docker.lock` on a shared engine).
    #[arg(long)]
    swarm: bool,
    /// With --swarm: use the existing accountservice:latest instead of building the image.
    #[arg(long)]
    no_build: bool,
}

/// Runs the whole task.
pub fn run(sh: &Shell, project: &Project, options: &Options) -> Result<()> {
    let started = Instant::now();
    let version = ensure_prometheus(sh)?;
    println!("prometheus: {version}");

    let dir = project.root.join(DIR);
    let config = dir.join("prometheus.yml");
    let rules = dir.join("alerts.yml");
    let rule_tests = dir.join("alerts_test.yml");
    cmd!(sh, "promtool check config {config}")
        .run()
        .context("promtool check config refuses deploy/prometheus/prometheus.yml")?;
    cmd!(sh, "promtool check rules {rules}")
        .run()
        .context("promtool check rules refuses deploy/prometheus/alerts.yml")?;
    cmd!(sh, "promtool test rules {rule_tests}")
        .run()
        .context("the alert rules fail their unit tests (deploy/prometheus/alerts_test.yml)")?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd!(
        sh,
        "{cargo} build --package accountservice --bin accountservice"
    )
    .run()
    .context("building accountservice")?;
    let binary = project.target_dir.join("debug").join("accountservice");
    let temp = tempfile::Builder::new()
        .prefix("accountservice-prometheus-")
        .tempdir()
        .context("creating a temporary directory")?;
    let mut command = Command::new(&binary);
    command
        .current_dir(temp.path())
        .args(["--bind", "127.0.0.1", "--port", "0", "--testability"])
        .args(["--log-filter", "warn,accountservice::startup=info"]);
    let mut service = Server::spawn("accountservice", command, START_TIMEOUT)?;
    let base = format!("http://{}", service.addr);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    for id in ["10000", "10001", "nope"] {
        client.get(format!("{base}/accounts/{id}")).send()?;
    }

    check_text_format(&client, &base, temp.path())?;
    check_openmetrics_answer(&client, &base)?;
    scrape_with_prometheus(&client, &base, service.addr, &rules, temp.path())?;

    service.ensure_alive()?;
    // Left forced unhealthy above: the service drains, then exits 3 to say it was unhealthy.
    let status = service.stop(STOP_GRACE, false)?;
    ensure!(
        status.code() == Some(3),
        "the service exited with {status} on SIGTERM, expected code 3 (stopped while unhealthy)"
    );
    if options.swarm {
        swarm::run(sh, project, &config, &rules, !options.no_build)?;
    }
    println!(
        "prometheus: every check passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The default answer is the text format 0.0.4, and `promtool check metrics` finds nothing
/// wrong with it: no parse error and no lint problem (missing help, bad names or units).
fn check_text_format(client: &reqwest::blocking::Client, base: &str, temp: &Path) -> Result<()> {
    let response = client.get(format!("{base}/metrics")).send()?;
    let content_type = header(&response, "content-type");
    ensure!(
        content_type == "text/plain; version=0.0.4; charset=utf-8",
        "/metrics without Accept answered Content-Type {content_type:?}, not the text format 0.0.4"
    );
    let text = response.text()?;
    let path = temp.join("metrics.txt");
    std::fs::write(&path, &text)?;
    let output = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path)?)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("running promtool check metrics")?;
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        output.status.success() && complaints.trim().is_empty(),
        "promtool check metrics refuses the service's text format ({}):\n{complaints}",
        output.status
    );
    println!(
        "prometheus: GET /metrics (no Accept): {content_type}, {} samples; promtool check \
         metrics: no problem",
        samples(&text)
    );
    Ok(())
}

/// With Prometheus' `Accept`, the answer is OpenMetrics, ended by `# EOF`.
fn check_openmetrics_answer(client: &reqwest::blocking::Client, base: &str) -> Result<()> {
    let response = client
        .get(format!("{base}/metrics"))
        .header("accept", PROMETHEUS_ACCEPT)
        .send()?;
    let content_type = header(&response, "content-type");
    ensure!(
        content_type == "application/openmetrics-text; version=1.0.0; charset=utf-8",
        "/metrics with Prometheus' Accept answered Content-Type {content_type:?}"
    );
    let text = response.text()?;
    ensure!(
        text.ends_with("# EOF\n"),
        "the OpenMetrics answer does not end with `# EOF`"
    );
    println!(
        "prometheus: GET /metrics (Prometheus' Accept): {content_type}, {} samples",
        samples(&text)
    );
    Ok(())
}

/// A real Prometheus server scrapes the service with the shipped rules; its API must show the
/// target up, the OpenMetrics parse, the series, then the forced fault and the pending alert.
fn scrape_with_prometheus(
    client: &reqwest::blocking::Client,
    base: &str,
    target: SocketAddr,
    rules: &Path,
    temp: &Path,
) -> Result<()> {
    let listen = free_port()?;
    let config = temp.join("prometheus.yml");
    std::fs::write(&config, test_config(target, rules))?;
    let mut command = Command::new("prometheus");
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            temp.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .arg("--log.level=warn");
    let started = Instant::now();
    let mut prometheus = Server::spawn_at("prometheus", command, listen)?;
    let api = Api {
        client,
        base: format!("http://{listen}"),
    };
    wait::until("Prometheus to be ready", PROMETHEUS_TIMEOUT, POLL, || {
        prometheus.ensure_alive()?;
        Ok(match client.get(format!("{}/-/ready", api.base)).send() {
            Ok(response) if response.status().is_success() => Poll::Ready(()),
            Ok(response) => Poll::Pending(format!("/-/ready answers {}", response.status())),
            Err(error) => Poll::Pending(error.to_string()),
        })
    })?;

    api.wait_for_value(r#"up{job="accountservice"}"#, 1.0)?;
    println!(
        "prometheus: a real Prometheus server on {listen} scrapes the service: up == 1 after \
         {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Only the OpenMetrics parser knows the `info` type; the text format would make it a gauge.
    // The metadata API answers once a scrape's metadata is stored: wait for it too. The OpenMetrics
    // parser files it under the family's name (`accountservice_build`), the text format's under
    // the sample's (`accountservice_build_info`, as a gauge).
    let kind = wait::until(
        "Prometheus' metadata of accountservice_build",
        PROMETHEUS_TIMEOUT,
        POLL,
        || {
            let metadata = api.get("/api/v1/metadata")?;
            let data = &metadata["data"];
            Ok(
                match ["accountservice_build", "accountservice_build_info"]
                    .iter()
                    .find_map(|name| data[name][0]["type"].as_str())
                {
                    Some(kind) => Poll::Ready(kind.to_owned()),
                    None => Poll::Pending(data.to_string()),
                },
            )
        },
    )?;
    ensure!(
        kind == "info",
        "Prometheus did not parse the scrape as OpenMetrics: the build info is {kind:?}, not \
         \"info\""
    );
    for (query, value) in [
        (
            r#"health_status{job="accountservice",scope="overall",status="UP"}"#,
            1.0,
        ),
        (
            r#"health_check_status{job="accountservice",component="database",status="UP"}"#,
            1.0,
        ),
        (
            r#"health_transitions_total{job="accountservice",component="overall",status="UP"}"#,
            1.0,
        ),
        (
            r#"http_requests_total{job="accountservice",route="/accounts/{account_id}",status="200"}"#,
            2.0,
        ),
        (
            r#"count(accountservice_build_info{job="accountservice",version!=""})"#,
            1.0,
        ),
        (
            r#"process_resident_memory_bytes{job="accountservice"} > 1e6"#,
            -1.0,
        ),
        (
            r#"time() - process_start_time_seconds{job="accountservice"} < 300"#,
            -1.0,
        ),
        (r#"process_open_fds{job="accountservice"} > 3"#, -1.0),
    ] {
        api.wait_for_value(query, value)?;
    }
    println!(
        "prometheus: parsed as OpenMetrics; health, transition, request, process and build \
         series as expected"
    );

    let fault = client
        .get(format!("{base}/testability/healthy/false"))
        .send()?;
    ensure!(
        fault.status().is_success(),
        "forcing the service unhealthy answered {}",
        fault.status()
    );
    let forced = Instant::now();
    api.wait_for_value(
        r#"health_status{job="accountservice",scope="overall",status="DOWN"}"#,
        1.0,
    )?;
    api.wait_for_value(
        r#"health_transitions_total{job="accountservice",component="testability",status="DOWN"}"#,
        1.0,
    )?;
    wait::until(
        "the AccountServiceReplicaNotUp alert to be pending",
        PROMETHEUS_TIMEOUT,
        POLL,
        || {
            let alerts = api.get("/api/v1/alerts")?;
            let found = alerts["data"]["alerts"].as_array().and_then(|alerts| {
                alerts
                    .iter()
                    .find(|alert| alert["labels"]["alertname"] == "AccountServiceReplicaNotUp")
            });
            Ok(match found {
                Some(alert) => Poll::Ready(alert["state"].as_str().unwrap_or("?").to_owned()),
                None => Poll::Pending(alerts["data"].to_string()),
            })
        },
    )?;
    println!(
        "prometheus: forced unhealthy: Prometheus saw health_status DOWN, the transition counted \
         and AccountServiceReplicaNotUp pending {:.1} s later",
        forced.elapsed().as_secs_f64()
    );
    prometheus.ensure_alive()?;
    prometheus.stop(STOP_GRACE, true)?;
    Ok(())
}

/// The test server's configuration: the shipped rules, one static target in place of the Swarm
/// discovery (same job name, so the rules apply), and one-second intervals so the task is short.
fn test_config(target: SocketAddr, rules: &Path) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: accountservice\n    static_configs:\n      \
         - targets: ['{target}']\n        labels: {{service: accountservice, slot: '1'}}\n",
        rules = rules.display()
    )
}

/// Prometheus' HTTP API.
struct Api<'a> {
    client: &'a reqwest::blocking::Client,
    base: String,
}

impl Api<'_> {
    /// GETs `path` and returns its JSON, failing unless `status` is `success`.
    fn get(&self, path: &str) -> Result<Value> {
        let body: Value = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .with_context(|| format!("asking Prometheus {path}"))?
            .json()
            .with_context(|| format!("Prometheus' answer to {path}"))?;
        ensure!(body["status"] == "success", "Prometheus {path}: {body}");
        Ok(body)
    }

    /// The values of an instant query's result.
    fn query(&self, query: &str) -> Result<Vec<f64>> {
        let body = self.get(&format!("/api/v1/query?query={}", percent_encode(query)))?;
        body["data"]["result"]
            .as_array()
            .context("a query result without a result array")?
            .iter()
            .map(|sample| {
                sample["value"][1]
                    .as_str()
                    .and_then(|value| value.parse().ok())
                    .with_context(|| format!("a sample without a value: {sample}"))
            })
            .collect()
    }

    /// Waits until `query` has exactly one result with `value` (any value when negative: the
    /// query itself is the condition).
    fn wait_for_value(&self, query: &str, value: f64) -> Result<()> {
        wait::until(
            &format!("Prometheus to answer {query} with {value}"),
            PROMETHEUS_TIMEOUT,
            POLL,
            || {
                let values = self.query(query)?;
                Ok(match values.as_slice() {
                    [seen] if value < 0.0 || *seen == value => Poll::Ready(()),
                    _ => Poll::Pending(format!("{values:?}")),
                })
            },
        )
    }
}

/// Installs Debian's `prometheus` package (promtool and the server) unless `promtool` answers.
fn ensure_prometheus(sh: &Shell) -> Result<String> {
    let version = || {
        cmd!(sh, "prometheus --version")
            .quiet()
            .ignore_stderr()
            .read()
            .map(|text| text.lines().next().unwrap_or_default().to_owned())
    };
    let promtool = || {
        cmd!(sh, "promtool --version")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
    };
    if promtool().is_err() || version().is_err() {
        println!("promtool not found: installing Debian's prometheus with apt");
        let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
        cmd!(sh, "apt-get update -qq")
            .run()
            .context("apt-get update")?;
        // The package's own service is not started in containers (no init); this task starts
        // its own server on a free port. The lock timeout waits for another apt run.
        cmd!(
            sh,
            "apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 prometheus"
        )
        .run()
        .context("installing prometheus with apt-get (as root)")?;
        promtool().context("prometheus was installed but `promtool --version` fails")?;
    }
    version().context("`prometheus --version` fails")
}

/// A port on 127.0.0.1 that was free a moment ago (Prometheus cannot report a port 0 choice).
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

fn header(response: &reqwest::blocking::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The sample lines of an exposition (neither comments nor blank).
fn samples(text: &str) -> usize {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .count()
}

/// `text` with every byte outside RFC 3986's unreserved set percent-encoded, for a query string.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_percent_encoded_whole() {
        assert_eq!(
            percent_encode(r#"up{job="a b"} > 1"#),
            "up%7Bjob%3D%22a%20b%22%7D%20%3E%201"
        );
    }

    #[test]
    fn the_test_config_keeps_the_job_name_the_rules_select() {
        let config = test_config(
            "127.0.0.1:4000".parse().unwrap(),
            Path::new("/x/alerts.yml"),
        );
        assert!(config.contains("job_name: accountservice\n"), "{config}");
        assert!(config.contains("- targets: ['127.0.0.1:4000']"), "{config}");
        assert!(config.contains("  - /x/alerts.yml\n"), "{config}");
    }

    #[test]
    fn samples_are_the_lines_that_are_not_comments() {
        assert_eq!(
            samples("# HELP a x\n# TYPE a gauge\na 1\nb{c=\"d\"} 2\n# EOF\n"),
            2
        );
    }
}
