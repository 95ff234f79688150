//! TLS to a server with `ssl=on` and a certificate authority made by the test: each `sslmode`
//! connects or refuses as libpq's would, with one clear line when it refuses.

use std::{sync::OnceLock, time::Duration};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::{
    app::{shared, spawn_over},
    pg::{BlackHole, PASSWORD, PgServer},
    process::exit_line,
};

/// A CA's certificate (PEM) and a server certificate it signed for `localhost` with its key.
struct Pki {
    ca: String,
    server_certificate: String,
    server_key: String,
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key"))
        .expect("a CA certificate")
}

fn pki() -> Pki {
    let ca = authority("accountservice test CA");
    let key = KeyPair::generate().expect("a server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let certificate = params.signed_by(&key, &ca).expect("a server certificate");
    Pki {
        ca: ca.pem(),
        server_certificate: certificate.pem(),
        server_key: key.serialize_pem(),
    }
}

/// The TLS server these tests share, the CA file that trusts it, and a CA file that does not.
struct Setup {
    server: PgServer,
    _files: tempfile::TempDir,
    right_ca: String,
    other_ca: String,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let pki = pki();
        let files = tempfile::tempdir().expect("a temporary directory");
        let right_ca = files.path().join("ca.pem");
        let other_ca = files.path().join("other-ca.pem");
        std::fs::write(&right_ca, &pki.ca).expect("the CA file");
        std::fs::write(&other_ca, authority("someone else's CA").pem()).expect("a CA file");
        Setup {
            server: PgServer::start_tls(&pki.server_certificate, &pki.server_key),
            right_ca: right_ca.display().to_string(),
            other_ca: other_ca.display().to_string(),
            _files: files,
        }
    })
}

/// A URL for a new database on the TLS server, as `host`, with `query`.
fn url(setup: &Setup, host: &str, query: &str) -> (String, String) {
    let db = setup.server.create_database("tls");
    let url = format!(
        "postgres://postgres:{PASSWORD}@{host}:{}/{db}?{query}",
        setup.server.port()
    );
    (db, url)
}

/// How many of the service's connections to `db` are encrypted, and how many it has.
fn encrypted(server: &PgServer, db: &str) -> (String, String) {
    let counts = server.psql(
        "postgres",
        &format!(
            "SELECT count(*) FILTER (WHERE s.ssl) || ' ' || count(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'accountservice' AND a.datname = '{db}'"
        ),
    );
    let (tls, all) = counts.split_once(' ').expect("two counts");
    (tls.to_owned(), all.to_owned())
}

#[tokio::test]
async fn verify_full_connects_with_the_right_ca_and_host_name_encrypted() {
    let setup = setup();
    let (db, url) = url(
        setup,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", setup.right_ca),
    );
    let app = spawn_over(&url, &[]).await;
    assert_eq!(app.get("/accounts/10042").await.0, 200);
    let (tls, all) = encrypted(&setup.server, &db);
    assert_eq!(tls, all, "not every connection is encrypted");
    assert_ne!(all, "0");
    app.stop().await;
}

#[test]
fn verify_full_with_another_ca_is_refused_in_one_line() {
    let setup = setup();
    let (_, url) = url(
        setup,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", setup.other_ca),
    );
    let line = exit_line(&url, &[], Duration::from_secs(30));
    assert!(line.contains("certificate rejected"), "{line}");
    assert!(line.contains("sslmode=verify-full"), "{line}");
}

#[test]
fn verify_full_with_a_host_name_the_certificate_does_not_name_is_refused_in_one_line() {
    let setup = setup();
    let (_, url) = url(
        setup,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", setup.right_ca),
    );
    let line = exit_line(&url, &[], Duration::from_secs(30));
    assert!(line.contains("certificate rejected"), "{line}");
    assert!(line.contains("not valid for name"), "{line}");
}

#[tokio::test]
async fn verify_ca_accepts_the_right_ca_whatever_the_host_name() {
    let setup = setup();
    let (_, url) = url(
        setup,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", setup.right_ca),
    );
    let app = spawn_over(&url, &[]).await;
    assert_eq!(app.get("/accounts/10042").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn require_and_prefer_encrypt_without_checking_the_certificate() {
    let setup = setup();
    for mode in ["require", "prefer"] {
        let (db, url) = url(setup, "127.0.0.1", &format!("sslmode={mode}"));
        let app = spawn_over(&url, &[]).await;
        assert_eq!(app.get("/accounts/10042").await.0, 200, "{mode}");
        let (tls, all) = encrypted(&setup.server, &db);
        assert_eq!(tls, all, "{mode}: not every connection is encrypted");
        app.stop().await;
    }
}

#[tokio::test]
async fn disable_connects_in_plain_text() {
    let setup = setup();
    let (db, url) = url(setup, "127.0.0.1", "sslmode=disable");
    let app = spawn_over(&url, &[]).await;
    assert_eq!(app.get("/accounts/10042").await.0, 200);
    let (tls, all) = encrypted(&setup.server, &db);
    assert_eq!(tls, "0", "of {all}");
    app.stop().await;
}

#[test]
fn require_against_a_server_without_tls_is_refused_in_one_line() {
    let server = shared();
    let db = server.create_database("plain");
    let url = format!("{}?sslmode=require", server.url(&db));
    let line = exit_line(&url, &[], Duration::from_secs(30));
    assert!(line.contains("server does not offer TLS"), "{line}");
}

#[test]
fn an_unreadable_root_file_is_refused_naming_it() {
    let server = shared();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        server.url("postgres")
    );
    let line = exit_line(&url, &[], Duration::from_secs(30));
    assert!(line.contains("/nonexistent/ca.pem"), "{line}");
}

#[tokio::test]
async fn verify_full_checks_each_host_by_its_own_name_when_the_first_never_answers() {
    let setup = setup();
    let db = setup.server.create_database("tls_hosts");
    let hole = BlackHole::new();
    // The black hole is named 127.0.0.1, the server localhost: the certificate is checked
    // against the name of the host actually reached.
    let url = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{},localhost:{}/{db}?connect_timeout=1\
         &sslmode=verify-full&sslrootcert={}",
        hole.port(),
        setup.server.port(),
        setup.right_ca
    );
    let app = spawn_over(&url, &[]).await;
    assert_eq!(app.get("/accounts/10042").await.0, 200);
    let (tls, all) = encrypted(&setup.server, &db);
    assert_eq!(tls, all, "not every connection is encrypted");
    app.stop().await;
}
