//! `spawn_app()` and the typed handle the API tests drive the service through, and the helpers
//! of the tests that run several replicas (free addresses, a `--peers` list, the fleet view) or
//! hold a drain open (a `/slow` route).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use accountservice::{
    config::Settings,
    router,
    startup::{Application, StartupError, Stopped},
};
use axum::routing::get;
use serde_json::Value;
use tokio::{
    sync::{Notify, oneshot},
    task::JoinHandle,
};

/// Upper bound for anything a test waits on.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running service and the means to talk to it and stop it.
pub struct TestApp {
    pub address: SocketAddr,
    /// The management listener's address, with `--management-port`.
    pub management: Option<SocketAddr>,
    pub db_path: PathBuf,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<Stopped, StartupError>>,
    _dir: Option<tempfile::TempDir>,
}

/// Settings for a test: the built-in defaults, except loopback, port 0, the given database file,
/// quick health rounds, short waits for locks, drains and closing connections.
pub fn settings(db_path: &Path) -> Settings {
    Settings {
        port: 0,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        db_path: db_path.to_path_buf(),
        // Room for a pre-stop delay besides the drain.
        stop_grace: Duration::from_secs(30),
        shutdown_timeout: Some(Duration::from_secs(5)),
        db_lock_timeout: Duration::from_millis(200),
        health_interval: Duration::from_millis(100),
        close_grace: Duration::from_millis(100),
        ..Settings::default()
    }
}

/// Loopback addresses with ports free right now: replicas that must know each other before
/// either starts cannot use port 0.
pub fn free_addresses(count: usize) -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound address"))
        .collect()
}

/// `addresses` as a `--peers` list.
pub fn peer_list(addresses: &[SocketAddr]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The replica at `address` in a fleet view; panics if the view does not list it.
pub fn listed<'a>(view: &'a Value, address: &SocketAddr) -> &'a Value {
    view["replicas"]
        .as_array()
        .expect("a replicas array")
        .iter()
        .find(|r| r["address"] == address.to_string())
        .unwrap_or_else(|| panic!("{address} is not listed: {view}"))
}

/// Polls `app`'s fleet view (on its management port when it has one, where the view is then
/// served) until `holds`, for at most [`TIMEOUT`]; returns that view.
pub async fn view_until(app: &TestApp, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let response = match app.management {
            Some(_) => app.get_management("/health/fleet").await,
            None => app.get("/health/fleet").await,
        };
        let status = response.status();
        let view: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, 200, "{view}");
        if holds(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "the view never showed {what}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the service on a fresh temporary database.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let mut app = spawn_app_with(settings(&dir.path().join("accounts.db"))).await;
    app._dir = Some(dir);
    app
}

/// Starts the service on a fresh temporary database, with settings changed by `configure`.
pub async fn spawn_app_configured(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let mut settings = settings(&dir.path().join("accounts.db"));
    configure(&mut settings);
    let mut app = spawn_app_with(settings).await;
    app._dir = Some(dir);
    app
}

/// Starts the service with the given settings (the database is the caller's to clean up).
pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let application = tokio::time::timeout(TIMEOUT, Application::build(&settings))
        .await
        .expect("start-up timed out")
        .expect("start-up failed");
    let address = application.local_addr();
    let management = application.management_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        management,
        db_path: settings.db_path,
        client: http_client(),
        stop: Some(stop),
        server,
        _dir: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
    }

    /// `GET path` on the management port (which the test must have configured).
    pub async fn get_management(&self, path: &str) -> reqwest::Response {
        let address = self.management.expect("no management port configured");
        self.client
            .get(format!("http://{address}{path}"))
            .send()
            .await
            .expect("request failed")
    }

    pub async fn get_account(&self, id: &str) -> reqwest::Response {
        self.get(&format!("/accounts/{id}")).await
    }

    pub async fn request(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request failed")
    }

    /// `GET path` with an `Accept` header.
    pub async fn get_accepting(&self, path: &str, accept: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .expect("request failed")
    }

    /// `GET path`: the status and the body as JSON.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        let body = response.json().await.expect("a JSON body");
        (status, body)
    }

    /// Sends the shutdown signal without waiting for the server to stop.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Triggers the shutdown future and waits (bounded) for `run_until` to return.
    pub async fn stop(mut self) -> Result<Stopped, StartupError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(TIMEOUT, &mut self.server)
            .await
            .expect("shutdown timed out")
            .expect("server task panicked")
    }
}

/// The service with an extra `/slow` route whose handler reports when it starts and answers
/// only when released (never, if `release` is never notified).
pub struct SlowApp {
    pub address: SocketAddr,
    /// The management listener's address, with `--management-port`.
    pub management: Option<SocketAddr>,
    /// Sends the stop; the drain then waits for `/slow` to answer (up to the shutdown timeout).
    pub stop: oneshot::Sender<()>,
    pub server: JoinHandle<Result<Stopped, StartupError>>,
    /// Notified when the `/slow` handler starts.
    pub started: Arc<Notify>,
    /// Notify once to let the `/slow` handler answer.
    pub release: Arc<Notify>,
}

/// The tests' HTTP client: no proxy, every request bounded by [`TIMEOUT`].
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(TIMEOUT)
        .build()
        .expect("cannot build the HTTP client")
}

impl SlowApp {
    /// Sends `GET /slow` with `client` and returns once its handler has started: the request is
    /// in flight, and answers `done` after [`SlowApp::release`] is notified.
    pub async fn slow_request(
        &self,
        client: &reqwest::Client,
    ) -> JoinHandle<reqwest::Result<reqwest::Response>> {
        let request = tokio::spawn(client.get(format!("http://{}/slow", self.address)).send());
        tokio::time::timeout(TIMEOUT, self.started.notified())
            .await
            .expect("the /slow handler never started");
        request
    }
}

/// Starts `Application::serve` with the account routes plus `/slow` (and the management
/// listener, if `settings` ask for one, with its usual routes).
pub async fn serve_with_slow_route(settings: &Settings) -> SlowApp {
    let application = Application::build(settings).await.expect("start-up failed");
    let address = application.local_addr();
    let management = application.management_addr();
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (handler_started, handler_release) = (started.clone(), release.clone());
    let slow = get(move || async move {
        handler_started.notify_one();
        handler_release.notified().await;
        "done"
    });
    let app = router::finish(router::api_routes(application.state().clone()).route("/slow", slow));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.serve(app, async move {
        let _ = stopped.await;
    }));
    SlowApp {
        address,
        management,
        stop,
        server,
        started,
        release,
    }
}
