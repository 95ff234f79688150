//! `/metrics`: Prometheus text with request counts by route and the health components, or
//! OpenMetrics when the scraper asks for it.

use reqwest::header;

use crate::helpers::{spawn_app, spawn_app_configured};

#[tokio::test]
async fn requests_and_health_checks_are_counted_by_route_template() {
    let app = spawn_app().await;
    app.get_account("10000").await;
    app.get_account("10001").await;
    app.get("/nope").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    for expected in [
        "# TYPE http_requests_total counter\n",
        r#"http_requests_total{method="GET",route="/accounts/{account_id}",status="200"} 2"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"health_check_status{component="database",status="UP"} 1"#,
        r#"health_check_status{component="database",status="DOWN"} 0"#,
        r#"health_status{scope="readiness",status="UP"} 1"#,
        "health_check_duration_seconds{component=\"database\"}",
        "health_check_timeout_seconds{component=\"database\"} 1",
        // The embedded file is the replica's own: a restart can cure its failure.
        r#"health_check_curable_by_restart{component="database"} 1"#,
        "\nprocess_start_time_seconds ",
        "\nprocess_open_fds ",
        "accountservice_build_info{version=",
        // The first round: from OUT_OF_SERVICE ("not checked yet") to UP.
        r#"health_transitions_total{component="database",status="UP"} 1"#,
        r#"health_transitions_total{component="database",status="DOWN"} 0"#,
        r#"health_transitions_total{component="readiness",status="UP"} 1"#,
    ] {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    assert!(!text.contains("# EOF"), "{text}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_scraper_that_prefers_openmetrics_gets_openmetrics() {
    let app = spawn_app().await;
    app.get_account("10000").await;
    // What Prometheus 2 sends.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                  version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let response = app
        .client
        .get(format!("http://{}/metrics", app.address))
        .header(header::ACCEPT, accept)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert_eq!(response.headers()[header::VARY], "accept");
    let text = response.text().await.unwrap();
    assert!(text.contains("# TYPE http_requests counter\n"), "{text}");
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/accounts/{account_id}",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn health_transitions_are_counted_by_component_and_new_status() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    app.get("/testability/healthy/false").await;
    app.get("/testability/healthy/true").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for expected in [
        r#"health_transitions_total{component="overall",status="DOWN"} 1"#,
        // The first round, then the recovery.
        r#"health_transitions_total{component="overall",status="UP"} 2"#,
        r#"health_transitions_total{component="testability",status="DOWN"} 1"#,
        r#"health_transitions_total{component="database",status="DOWN"} 0"#,
    ] {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    app.stop().await.unwrap();
}

/// The series `/metrics` shows now: each sample line's name and labels, without its value.
async fn series(app: &crate::helpers::TestApp) -> std::collections::BTreeSet<String> {
    let text = app.get("/metrics").await.text().await.expect("a text body");
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.rsplit_once(' ')
                .map_or(line, |(series, _)| series)
                .to_owned()
        })
        .collect()
}

/// The value of `name` in a series' labels, if it has that label.
fn label<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    let start = [format!("{{{name}=\""), format!(",{name}=\"")]
        .iter()
        .find_map(|needle| series.find(needle.as_str()).map(|at| at + needle.len()))?;
    let len = series[start..].find('"')?;
    Some(&series[start..start + len])
}

/// The series with its `status` label's value blanked out.
fn without_status(series: &str) -> String {
    match label(series, "status") {
        Some(status) => series.replacen(&format!("status=\"{status}\""), "status=\"\"", 1),
        None => series.to_owned(),
    }
}

/// A deterministic stream of hostile values (xorshift): the test is the same on every run.
struct Hostile(u64);

impl Hostile {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `bound`, at least 1.
    fn len(&mut self, bound: u64) -> usize {
        1 + (self.next() % bound) as usize
    }

    /// `len` characters of a token (what HTTP allows in a method), never a method HTTP defines:
    /// the `Z` in front sees to that.
    fn token(&mut self, len: usize) -> String {
        const TOKEN: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~";
        std::iter::once('Z')
            .chain((1..len).map(|_| TOKEN[self.next() as usize % TOKEN.len()] as char))
            .collect()
    }

    /// A path segment of `len` characters, some of them percent-encoded bytes.
    fn segment(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| match self.next() % 4 {
                0 => format!("%{:02X}", self.next() % 256),
                _ => ((b'a' + (self.next() % 26) as u8) as char).to_string(),
            })
            .collect()
    }
}

/// One request of each kind a hostile client might vary, each answered the same way whatever
/// the value varied: a made-up method on a route and on no route, a random path, a random
/// account id, and random `Host` and `Accept` values on the health and metrics routes.
fn hostile_requests(values: &mut Hostile) -> Vec<String> {
    let len = values.len(40);
    let method = values.token(len);
    let len = values.len(40);
    let other_method = values.token(len);
    let path = (0..values.len(5))
        .map(|_| {
            let len = values.len(30);
            values.segment(len)
        })
        .collect::<Vec<_>>()
        .join("/");
    let host = format!(
        "{}.{}:{}",
        values.segment(12),
        values.token(6),
        values.next() % 65536
    );
    let accept = format!(
        "{}/{};q=0.{};{}={}",
        values.token(8).to_lowercase(),
        values.token(10).to_lowercase(),
        values.next() % 10,
        values.token(4).to_lowercase(),
        values.token(6)
    );
    let id = 900_000_000 + values.next() % 99_999_999;
    [
        format!("{method} /accounts/10000"),
        format!("{other_method} /{path}"),
        format!("GET /{path}"),
        format!("GET /accounts/{id}"),
        "GET /health".to_owned(),
        "GET /metrics".to_owned(),
    ]
    .into_iter()
    .map(|line| format!("{line} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\n\r\n"))
    .collect()
}

/// Sends `requests` pipelined on one connection, the last asking to close it, and returns how
/// many answers came back.
async fn send_all(address: std::net::SocketAddr, requests: &[String]) -> usize {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("cannot connect");
    let mut bytes = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let request = if i + 1 == requests.len() {
            request.replacen("\r\n", "\r\nConnection: close\r\n", 1)
        } else {
            request.clone()
        };
        bytes.extend_from_slice(request.as_bytes());
    }
    let (mut reader, mut writer) = stream.split();
    let mut answers = Vec::new();
    let (written, read) = tokio::join!(
        async {
            writer.write_all(&bytes).await?;
            writer.flush().await
        },
        tokio::time::timeout(crate::helpers::TIMEOUT, reader.read_to_end(&mut answers))
    );
    written.expect("cannot send the requests");
    read.expect("the answers did not arrive in time")
        .expect("cannot read the answers");
    // A status line is the only place a space follows `HTTP/1.1`: no path or body has one.
    String::from_utf8_lossy(&answers)
        .matches("HTTP/1.1 ")
        .count()
}

#[tokio::test]
async fn thousands_of_hostile_methods_paths_hosts_and_accept_values_add_no_series() {
    let app = spawn_app().await;
    let mut values = Hostile(0x9e37_79b9_7f4a_7c15);
    // One request of each kind first: the series a kind adds, it adds once.
    let first = hostile_requests(&mut values);
    assert_eq!(send_all(app.address, &first).await, first.len());
    let before = series(&app).await;

    let mut sent = 0;
    for _ in 0..10 {
        let batch: Vec<String> = (0..100)
            .flat_map(|_| hostile_requests(&mut values))
            .collect();
        assert_eq!(send_all(app.address, &batch).await, batch.len());
        sent += batch.len();
    }
    let after = series(&app).await;
    println!(
        "{sent} hostile requests: {} series before, {} after",
        before.len(),
        after.len()
    );
    // On a loaded machine a health check may time out while the flood runs, so `/health` can
    // answer 503 once and add its status series: a status the service emits, not one a client
    // chose. Everything a client could choose must add nothing.
    let shaped = |set: &std::collections::BTreeSet<String>| {
        set.iter()
            .map(|series| without_status(series))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        shaped(&after),
        shaped(&before),
        "new series: {:?}",
        after.difference(&before)
    );
    for series in after.difference(&before) {
        let status = label(series, "status").unwrap_or_default();
        assert!(
            ["200", "404", "405", "503"].contains(&status),
            "a status the service does not emit for these requests: {series}"
        );
    }
    assert!(
        after.iter().any(|s| s.contains(r#"method="other""#)),
        "made-up methods are counted as other: {after:?}"
    );
    app.stop().await.unwrap();
}
