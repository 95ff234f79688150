//! Opening a connection when the URL names several hosts: each host's attempt is bounded as a
//! whole by `connect_timeout`, as libpq bounds it, so a host that accepts TCP and never answers
//! is left for the next one.
//!
//! tokio-postgres tries the hosts in order too, but its `connect_timeout` bounds only the TCP
//! connect: a host whose port is black-holed behind a proxy or a hung server (the handshake never
//! answers) holds the attempt for ever, and the hosts after it are never tried. Here every host
//! but the last is tried on a copy of the configuration naming it alone, within the timeout; the
//! last one keeps the caller's bound (the acquire or start-up timeout), and its error is the one
//! reported. Hosts to be tried in random order (`load_balance_hosts=random`) go straight to
//! tokio-postgres.
//!
//! A host that failed, or whose attempt was given up (its caller's bound ran out), is tried after
//! the others for [`RECHECK_AFTER`], as pgJDBC does (`hostRecheckSeconds`). Without that memory a
//! hung first host would take every new connection's whole acquire timeout at run time (shorter
//! than `connect_timeout`), and no new connection would ever reach the hosts after it.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use deadpool_postgres::Connect;
use tokio::task::JoinHandle;
use tokio_postgres::{
    Client, Config, Error, Socket,
    config::{Host, LoadBalanceHosts},
    tls::{MakeTlsConnect, TlsConnect},
};

/// How long a host that failed or was given up on is tried after the others.
pub const RECHECK_AFTER: Duration = Duration::from_secs(10);

/// When each host (by its place in the URL) last failed or was given up on; `None` once it
/// answered.
type Failures = Arc<Mutex<Vec<Option<Instant>>>>;

/// A deadpool [`Connect`] that tries the URL's hosts one by one, each within `connect_timeout`.
pub struct HostByHost<T> {
    tls: T,
    failures: Failures,
}

impl<T> HostByHost<T> {
    /// Connecting with `tls` (tokio-postgres's `NoTls` or the rustls connector).
    pub fn new(tls: T) -> Self {
        Self {
            tls,
            failures: Failures::default(),
        }
    }
}

impl<T> Connect for HostByHost<T>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    fn connect(
        &self,
        config: &Config,
    ) -> Pin<Box<dyn Future<Output = Result<(Client, JoinHandle<()>), Error>> + Send + '_>> {
        let tls = self.tls.clone();
        let attempts = one_config_per_host(config);
        let per_host = config.get_connect_timeout().copied();
        let failures = self.failures.clone();
        let mut order = {
            let mut failed = lock(&failures);
            failed.resize(attempts.len(), None);
            order(&failed, Instant::now())
        };
        // The last host keeps the caller's bound, so that its answer (or error) is reported.
        let last = order.pop().unwrap_or(0);
        Box::pin(async move {
            if let Some(limit) = per_host {
                for index in order {
                    let mut attempt = Attempt::new(&failures, index);
                    let connecting = attempts[index].connect(tls.clone());
                    if let Ok(Ok(connected)) = tokio::time::timeout(limit, connecting).await {
                        attempt.answered();
                        return Ok(drive(connected));
                    }
                }
            }
            let mut attempt = Attempt::new(&failures, last);
            let connected = attempts[last].connect(tls).await?;
            attempt.answered();
            Ok(drive(connected))
        })
    }
}

/// The places of the hosts in the order to try them: the URL's order, those that failed less
/// than [`RECHECK_AFTER`] before `now` last.
fn order(failed: &[Option<Instant>], now: Instant) -> Vec<usize> {
    let mut order: Vec<usize> = (0..failed.len()).collect();
    // Stable: the URL's order holds within each group.
    order.sort_by_key(|&index| {
        failed[index].is_some_and(|at| now.saturating_duration_since(at) < RECHECK_AFTER)
    });
    order
}

/// One host's attempt: recorded as failed when it ends without [`Attempt::answered`], whether
/// it failed, timed out or was dropped with its caller's future.
struct Attempt<'a> {
    failures: &'a Mutex<Vec<Option<Instant>>>,
    index: usize,
    answered: bool,
}

impl<'a> Attempt<'a> {
    fn new(failures: &'a Mutex<Vec<Option<Instant>>>, index: usize) -> Self {
        Self {
            failures,
            index,
            answered: false,
        }
    }

    fn answered(&mut self) {
        self.answered = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let outcome = (!self.answered).then(Instant::now);
        if let Some(slot) = lock(self.failures).get_mut(self.index) {
            *slot = outcome;
        }
    }
}

/// The failures, even if a thread panicked holding them: they are timestamps, always whole.
fn lock(failures: &Mutex<Vec<Option<Instant>>>) -> std::sync::MutexGuard<'_, Vec<Option<Instant>>> {
    failures.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the connection on its own task, as deadpool's own connector does, and logs how it
/// failed as that one does (a warning: the health check reports the cause, this says when).
fn drive<S, T>(
    (client, connection): (Client, tokio_postgres::Connection<S, T>),
) -> (Client, JoinHandle<()>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let task = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "a PostgreSQL connection failed");
        }
    });
    (client, task)
}

/// The hosts of `config` in the order tokio-postgres would try them, each as a copy of
/// `config` naming that host alone (with its `hostaddr` and port); just `config` when it names
/// one host, or asks for a random order.
fn one_config_per_host(config: &Config) -> Vec<Config> {
    let hosts = config.get_hosts();
    let addresses = config.get_hostaddrs();
    let count = host_count(config);
    if count <= 1 || config.get_load_balance_hosts() == LoadBalanceHosts::Random {
        return vec![config.clone()];
    }
    let ports = config.get_ports();
    (0..count as usize)
        .map(|i| {
            let mut one = without_hosts(config);
            match hosts.get(i) {
                Some(Host::Tcp(host)) => {
                    one.host(host);
                }
                Some(Host::Unix(path)) => {
                    one.host_path(path);
                }
                None => {}
            }
            if let Some(address) = addresses.get(i) {
                one.hostaddr(*address);
            }
            // One port for every host, or one per host (tokio-postgres checks the count).
            if let Some(port) = ports.get(i).or(ports.first()) {
                one.port(*port);
            }
            one
        })
        .collect()
}

/// A copy of `config` without its hosts, addresses and ports: every other setting carried over.
fn without_hosts(config: &Config) -> Config {
    let mut copy = Config::new();
    if let Some(user) = config.get_user() {
        copy.user(user);
    }
    if let Some(password) = config.get_password() {
        copy.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        copy.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        copy.options(options);
    }
    if let Some(name) = config.get_application_name() {
        copy.application_name(name);
    }
    copy.ssl_mode(config.get_ssl_mode())
        .ssl_negotiation(config.get_ssl_negotiation());
    if let Some(timeout) = config.get_connect_timeout() {
        copy.connect_timeout(*timeout);
    }
    if let Some(timeout) = config.get_tcp_user_timeout() {
        copy.tcp_user_timeout(*timeout);
    }
    copy.keepalives(config.get_keepalives())
        .keepalives_idle(config.get_keepalives_idle());
    if let Some(interval) = config.get_keepalives_interval() {
        copy.keepalives_interval(interval);
    }
    if let Some(retries) = config.get_keepalives_retries() {
        copy.keepalives_retries(retries);
    }
    copy.target_session_attrs(config.get_target_session_attrs())
        .channel_binding(config.get_channel_binding())
        .load_balance_hosts(config.get_load_balance_hosts());
    copy
}

/// How many hosts `config` names: a start-up connect may take `connect_timeout` for each.
pub fn host_count(config: &Config) -> u32 {
    let count = config.get_hosts().len().max(config.get_hostaddrs().len());
    u32::try_from(count).unwrap_or(u32::MAX).max(1)
}

/// The time a connect may take over all the hosts of `config`, `connect_timeout` each.
pub fn connect_bound(config: &Config, connect_timeout: Duration) -> Duration {
    connect_timeout.saturating_mul(host_count(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Config {
        url.parse().expect("a valid URL")
    }

    #[test]
    fn a_copy_keeps_every_setting_but_the_hosts() {
        // Every setting away from its default, so that one left behind shows.
        let config = parse(
            "postgres://app:secret@db:6543/accounts?options=-c%20x%3Dy&application_name=a\
             &sslmode=require&sslnegotiation=direct&connect_timeout=3&tcp_user_timeout=4000\
             &keepalives=0&keepalives_idle=7&keepalives_interval=8&keepalives_retries=9\
             &target_session_attrs=read-write&channel_binding=disable&hostaddr=10.0.0.1",
        );
        assert_eq!(one_config_per_host(&config), vec![config.clone()]);
        let mut rebuilt = without_hosts(&config);
        rebuilt.host("db").hostaddr([10, 0, 0, 1].into()).port(6543);
        assert_eq!(rebuilt, config);
    }

    #[test]
    fn several_hosts_become_one_config_each_in_order_with_their_ports() {
        let config =
            parse("host=db1,db2,/run/pg port=5001,5002,5003 user=app password=pw dbname=accounts");
        let hosts: Vec<(Vec<Host>, Vec<u16>)> = one_config_per_host(&config)
            .iter()
            .map(|one| {
                assert_eq!(one.get_dbname(), Some("accounts"));
                assert_eq!(one.get_password(), Some(&b"pw"[..]));
                (one.get_hosts().to_vec(), one.get_ports().to_vec())
            })
            .collect();
        assert_eq!(
            hosts,
            vec![
                (vec![Host::Tcp("db1".into())], vec![5001]),
                (vec![Host::Tcp("db2".into())], vec![5002]),
                (vec![Host::Unix("/run/pg".into())], vec![5003]),
            ]
        );
        let one_port = parse("host=db1,db2 port=5432 user=app");
        for one in one_config_per_host(&one_port) {
            assert_eq!(one.get_ports(), [5432]);
        }
        assert_eq!(
            connect_bound(&one_port, Duration::from_secs(2)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn hosts_that_failed_lately_are_tried_last_in_the_urls_order() {
        let now = Instant::now();
        let lately = now.checked_sub(Duration::from_secs(1));
        let long_ago = now.checked_sub(RECHECK_AFTER + Duration::from_secs(1));
        assert_eq!(order(&[None, None, None], now), vec![0, 1, 2]);
        assert_eq!(order(&[lately, None, lately, None], now), vec![1, 3, 0, 2]);
        assert_eq!(order(&[long_ago, None], now), vec![0, 1]);
    }

    #[test]
    fn a_random_order_is_left_to_tokio_postgres() {
        let config = parse("host=db1,db2 user=app load_balance_hosts=random");
        assert_eq!(one_config_per_host(&config), vec![config.clone()]);
    }
}
