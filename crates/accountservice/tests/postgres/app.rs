//! The service in-process over a PostgreSQL database, and the shared test server.

use std::{
    net::SocketAddr,
    sync::OnceLock,
    time::{Duration, Instant},
};

use accountservice::{
    config::Settings,
    startup::{Application, StartupError, Stopped},
};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::pg::PgServer;

/// Upper bound of one wait in these tests (a start-up, a request).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The acquire timeout of the instances these tests start: above the default, because opening a
/// connection (a process forked on the server, SCRAM on both sides) can take a second on a
/// loaded 2-core CI machine, and the tests are about the bounds holding, not about their values.
pub const ACQUIRE_TIMEOUT: &str = "2";

/// Slack over a configured bound before a test fails: the machine is shared and noisy.
pub const SLACK: Duration = Duration::from_secs(5);

/// The server shared by the tests that need only a database of their own.
pub fn shared() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(PgServer::start)
}

/// Settings for an instance on a free loopback port over `url` (redb in `dir` without one),
/// details always shown, checks every 0.2 s under a 4 s timeout, [`ACQUIRE_TIMEOUT`]; a flag in
/// `extra` replaces the default given here.
pub fn settings(dir: &std::path::Path, url: Option<&str>, extra: &[&str]) -> Settings {
    let db = dir.join("accounts.db");
    let defaults = [
        ("--bind", "127.0.0.1"),
        ("--port", "0"),
        ("--db-path", db.to_str().expect("a UTF-8 path")),
        ("--health-details", "always"),
        ("--health-interval", "0.2"),
        ("--health-timeout", "4"),
        ("--database-acquire-timeout", ACQUIRE_TIMEOUT),
    ];
    let mut args: Vec<&str> = defaults
        .iter()
        .filter(|(flag, _)| !extra.contains(flag))
        .flat_map(|(flag, value)| [*flag, *value])
        .collect();
    if let Some(url) = url {
        args.extend(["--database-url", url]);
    }
    args.extend_from_slice(extra);
    Settings::from_args_ignoring_env(args).expect("valid settings")
}

/// A running instance.
pub struct App {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<Stopped, StartupError>>,
    _dir: tempfile::TempDir,
}

/// Starts an instance with `settings` (from [`settings`] over `dir`).
pub async fn spawn(settings: Settings, dir: tempfile::TempDir) -> App {
    let application = tokio::time::timeout(TIMEOUT, Application::build(&settings))
        .await
        .expect("start-up timed out")
        .expect("start-up failed");
    let address = application.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async move {
        let _ = stopped.await;
    }));
    App {
        address,
        client: reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .build()
            .expect("a client"),
        stop: Some(stop),
        server,
        _dir: dir,
    }
}

/// An instance over `url`, seeding the default 100 accounts.
pub async fn spawn_over(url: &str, extra: &[&str]) -> App {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = settings(dir.path(), Some(url), extra);
    spawn(settings, dir).await
}

impl App {
    /// `GET path`: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("http://{}{path}", self.address))
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// `GET /health` as JSON.
    pub async fn health(&self) -> (u16, serde_json::Value) {
        let (status, body) = self.get("/health").await;
        (status, serde_json::from_str(&body).expect("JSON"))
    }

    /// Polls `/health` until `holds`, at most `limit`; the answer and how long it took.
    pub async fn health_until(
        &self,
        limit: Duration,
        holds: impl Fn(u16, &serde_json::Value) -> bool,
    ) -> (u16, serde_json::Value, Duration) {
        let started = Instant::now();
        loop {
            let (status, body) = self.health().await;
            if holds(status, &body) {
                return (status, body, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "health never got there within {limit:?}; last: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the instance (bounded).
    pub async fn stop(mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(TIMEOUT, &mut self.server)
            .await
            .expect("shutdown timed out")
            .expect("server task panicked")
            .expect("serving failed")
    }
}

/// The `database` component of a `/health` body.
pub fn database(body: &serde_json::Value) -> &serde_json::Value {
    &body["components"]["database"]
}
