//! The PostgreSQL part of the bench: `/accounts/{id}` over PostgreSQL at the main rounds' client
//! count, against `pgbench -S -M prepared` (a prepared primary-key `SELECT` per transaction, with
//! as many clients) on the same server in the same rounds, and the pool's waits under that load.
//!
//! The server is started from Debian's binaries the way the service's own tests start one
//! (`crates/accountservice/tests/support/postgres.rs`, shared as a file:
//! [`crate::postgres::test_server`]), and pinned with the service to the server core; wrk and
//! pgbench run on the load core. So the ratio says how much of what the database can answer the
//! service delivers through HTTP.

use std::process::Command;

use anyhow::{Context, Result, anyhow, ensure};
use serde::Serialize;

use super::results::{Outcome, Row, Sample};
use super::{ACCOUNTS, BASE_ACCOUNTS, Lab, STOP_GRACE};
use crate::postgres::test_server as server;

/// What the PostgreSQL rounds measured.
#[derive(Debug, Default, Serialize)]
pub struct Postgres {
    /// `/accounts/{id}` over PostgreSQL; its ratios are to pgbench in the same rounds.
    pub accounts: Row,
    /// pgbench's transactions per second (median of the rounds).
    pub pgbench: f64,
    /// Requests in the measured rounds, and how many of them found no idle connection.
    pub requests: u64,
    pub pool_waits: u64,
}

impl Lab {
    /// Runs the PostgreSQL rounds.
    pub(super) fn postgres(&mut self) -> Result<Postgres> {
        server::installed().map_err(|missing| anyhow!(missing))?;
        println!("bench: PostgreSQL (a private server, pgbench in the same rounds)");
        let pg = server::PgServer::start_with(&[("max_connections", "200")]);
        pin_server(pg.postmaster_pid(), self.cpus.0)?;
        let db = pg.create_database("bench");
        let url = format!("postgres://postgres@127.0.0.1:{}/{db}", pg.port());
        let pgbench = pg.bin().join("pgbench");
        let (port, password) = (pg.port().to_string(), server::PASSWORD);
        let load_cpu = self.cpus.1.to_string();
        let pgbench_command = |extra: &[String]| {
            let mut command = Command::new("taskset");
            command
                .args(["-c", &load_cpu])
                .arg(&pgbench)
                .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
                .args(extra)
                .arg(&db)
                .env("PGPASSWORD", password);
            command
        };
        let init =
            pgbench_command(&["-i".into(), "-q".into(), "-s".into(), "1".into()]).output()?;
        ensure!(
            init.status.success(),
            "pgbench -i: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // The password from a file, so that no command line the report shows carries it.
        let password_file = self.work.path().join("pg-password");
        std::fs::write(&password_file, password)?;
        let password_file = password_file.display().to_string();
        let flags = [
            "--database-url",
            url.as_str(),
            "--database-password-file",
            password_file.as_str(),
        ];
        let mut service = self.start_service("service (PostgreSQL)", BASE_ACCOUNTS, &flags)?;
        pin_server(pg.postmaster_pid(), self.cpus.0)?;

        let (connections, seconds, rounds) = (
            self.r.plan.connections,
            self.r.plan.seconds,
            self.r.plan.rounds,
        );
        let select = [
            "-S",
            "-M",
            "prepared",
            "-n",
            "-j",
            "1",
            "-c",
            &connections.to_string(),
            "-T",
            &seconds.to_string(),
        ]
        .map(str::to_owned);
        let line = format!(
            "taskset -c {} pgbench -h 127.0.0.1 -p PORT -U postgres {} bench",
            self.cpus.1,
            select.join(" ")
        );
        self.record(line);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut waits_before = 0;
        for round in 0..=rounds {
            if round == 1 {
                waits_before = pool_waits(service.addr)?;
            }
            println!(
                "bench: PostgreSQL, {connections} connections, round {round}/{rounds} (0: warm-up)"
            );
            let sample = self.sample(&mut service, ACCOUNTS, connections)?;
            let output = pgbench_command(&select).output()?;
            let text = String::from_utf8_lossy(&output.stdout);
            ensure!(
                output.status.success(),
                "pgbench -S: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let tps =
                parse_tps(&text).with_context(|| format!("no tps in pgbench's output: {text}"))?;
            println!("  {:<64} {tps:>7.0} tps", "pgbench -S -M prepared");
            if round > 0 {
                ours.push(sample);
                theirs.push(Sample {
                    outcome: Outcome {
                        rate: tps,
                        ..Outcome::default()
                    },
                    cpu: 1.0,
                    others: 0.0,
                });
            }
        }
        let pool_waits = pool_waits(service.addr)?.saturating_sub(waits_before);
        let status = service.stop(STOP_GRACE, false)?;
        self.note(
            !status.success(),
            format!("service (PostgreSQL) exited with {status}"),
        );
        Ok(Postgres {
            requests: ours.iter().map(|s| s.outcome.requests).sum(),
            accounts: Row::of(&ours, Some(&theirs)),
            pgbench: Row::of(&theirs, None).rate,
            pool_waits,
        })
    }
}

/// Pins the postmaster and every process it started to `cpu` (what it starts later inherits).
fn pin_server(postmaster: u32, cpu: u32) -> Result<()> {
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`: the fields after the last `)`.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if parent == Some(postmaster) {
            pids.push(pid);
        }
    }
    for pid in pids {
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .status()?;
        ensure!(
            status.success(),
            "cannot pin PostgreSQL process {pid} to CPU {cpu}"
        );
    }
    Ok(())
}

/// `accountservice_db_pool_waits_total` from the service's `/metrics`.
fn pool_waits(addr: std::net::SocketAddr) -> Result<u64> {
    let text = reqwest::blocking::get(format!("http://{addr}/metrics"))?.text()?;
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix("accountservice_db_pool_waits_total "))
        .context("no accountservice_db_pool_waits_total in /metrics")?;
    Ok(value.trim().parse::<f64>()? as u64)
}

/// The rate of pgbench's `tps = 20123.4 (without initial connection time)` line.
fn parse_tps(output: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_s_tps_line_gives_the_rate() {
        let output = "number of transactions actually processed: 160000\n\
                      latency average = 2.5 ms\n\
                      initial connection time = 40.1 ms\n\
                      tps = 20123.456 (without initial connection time)\n";
        assert_eq!(parse_tps(output), Some(20123.456));
        assert_eq!(parse_tps("nothing"), None);
    }
}
