//! What HAProxy itself says about its servers, read from its stats socket (`show stat`, the CSV
//! that the stats page and `hatop` read): each server's check status and the backend's retry
//! and redispatch counters.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

/// How long one exchange with the socket may take.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(2);

/// One row of `show stat`: a frontend, a backend or one of its servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `pxname`: the proxy (frontend or backend) name.
    pub proxy: String,
    /// `svname`: the server name, or `FRONTEND` / `BACKEND`.
    pub server: String,
    /// `status`: `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (going up), `MAINT`, ...
    pub status: String,
    /// `wretr`: requests retried.
    pub retries: u64,
    /// `wredis`: requests redispatched to another server.
    pub redispatches: u64,
    /// `stot`: sessions (requests, in HTTP mode) sent to it.
    pub sessions: u64,
}

impl Row {
    /// Fully UP (not in transition).
    pub fn is_up(&self) -> bool {
        self.status == "UP"
    }

    /// DOWN, including on its way back up (`DOWN 1/2`): HAProxy sends it nothing.
    pub fn is_down(&self) -> bool {
        self.status.starts_with("DOWN")
    }
}

/// HAProxy's admin socket.
#[derive(Debug, Clone)]
pub struct StatsSocket {
    path: PathBuf,
}

impl StatsSocket {
    /// The socket at `path` (the `stats socket` line of the configuration).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    /// Sends one command and returns HAProxy's whole answer (it closes the connection after a
    /// command when not in interactive mode).
    pub fn command(&self, command: &str) -> Result<String> {
        let mut stream = UnixStream::connect(&self.path)
            .with_context(|| format!("connecting to HAProxy's socket {}", self.path.display()))?;
        stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
        stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
        stream.write_all(format!("{command}\n").as_bytes())?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .with_context(|| format!("reading HAProxy's answer to `{command}`"))?;
        Ok(answer)
    }

    /// Every row of `show stat`.
    pub fn rows(&self) -> Result<Vec<Row>> {
        parse_show_stat(&self.command("show stat")?)
    }

    /// The row of `server` in `backend`.
    pub fn server(&self, backend: &str, server: &str) -> Result<Row> {
        self.rows()?
            .into_iter()
            .find(|row| row.proxy == backend && row.server == server)
            .with_context(|| format!("HAProxy's `show stat` has no server {backend}/{server}"))
    }
}

/// Parses the CSV of `show stat`: a `# pxname,svname,...` header, then one row per line.
pub fn parse_show_stat(csv: &str) -> Result<Vec<Row>> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|line| line.strip_prefix("# "))
        .with_context(|| format!("not the CSV of `show stat`: {csv:.200}"))?;
    let names: Vec<&str> = header.split(',').collect();
    let column = |name: &str| {
        names
            .iter()
            .position(|column| *column == name)
            .with_context(|| format!("`show stat` has no `{name}` column"))
    };
    let (proxy, server, status) = (column("pxname")?, column("svname")?, column("status")?);
    let (retries, redispatches, sessions) = (column("wretr")?, column("wredis")?, column("stot")?);
    let mut rows = Vec::new();
    for line in lines.filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let text = |index: usize| fields.get(index).copied().unwrap_or_default().to_owned();
        // Empty counters (a frontend has no retries) read as zero.
        let count = |index: usize| text(index).parse().unwrap_or(0);
        rows.push(Row {
            proxy: text(proxy),
            server: text(server),
            status: text(status),
            retries: count(retries),
            redispatches: count(redispatches),
            sessions: count(sessions),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first columns of HAProxy 2.6's `show stat`, as it prints them.
    const SAMPLE: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
accounts,FRONTEND,,,1,2,262119,520,0,0,0,0,0,,,,,OPEN,\n\
accountservice,app1,0,0,0,1,512,180,0,0,,0,,0,0,0,0,UP,1\n\
accountservice,app2,0,0,0,1,512,170,0,0,,0,,0,0,2,1,DOWN 1/2,1\n\
accountservice,app3,0,0,0,1,512,170,0,0,,0,,0,0,0,0,UP 1/2,1\n\
accountservice,BACKEND,0,0,0,2,26212,520,0,0,0,0,,0,0,2,1,UP,3\n\
\n";

    #[test]
    fn show_stat_rows_are_read_by_column_name() {
        let rows = parse_show_stat(SAMPLE).unwrap();
        assert_eq!(rows.len(), 5);
        let app2 = &rows[2];
        assert_eq!(
            (app2.proxy.as_str(), app2.server.as_str()),
            ("accountservice", "app2")
        );
        assert_eq!(app2.status, "DOWN 1/2");
        assert_eq!(
            (app2.retries, app2.redispatches, app2.sessions),
            (2, 1, 170)
        );
        assert!(app2.is_down() && !app2.is_up());
        assert!(rows[1].is_up());
        assert!(
            !rows[3].is_up() && !rows[3].is_down(),
            "going down is neither"
        );
        assert_eq!(rows[0].retries, 0, "an empty counter is zero");
    }

    #[test]
    fn an_answer_that_is_not_show_stat_is_an_error() {
        assert!(parse_show_stat("Unknown command.\n").is_err());
        assert!(parse_show_stat("# pxname,svname\nx,y\n").is_err());
    }
}
