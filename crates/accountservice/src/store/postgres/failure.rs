//! What went wrong talking to PostgreSQL, in the few words a health reason or an exit line can
//! carry. The words come from the error's kind (SQLSTATE, the socket's error), never from its
//! text, so no credential or query can end up in a reason.

use std::{error::Error as _, io};

use tokio_postgres::error::SqlState;

/// The short cause of a tokio-postgres error: "connection refused", "authentication failed",
/// "unknown database", "too many clients", "statement timeout", "connection lost", ...
pub fn cause(error: &tokio_postgres::Error) -> &'static str {
    if let Some(code) = error.code() {
        return sql_state_cause(code, error);
    }
    if let Some(tls) = tls_error(error) {
        return match tls {
            rustls::Error::InvalidCertificate(_) => "certificate rejected",
            _ => "TLS handshake failed",
        };
    }
    // tokio-postgres's own words when the server answered "no TLS here" to `sslmode=require`.
    if chain_contains(error, "server does not support TLS") {
        return "server does not offer TLS";
    }
    if let Some(kind) = io_kind(error) {
        return match kind {
            io::ErrorKind::ConnectionRefused => "connection refused",
            io::ErrorKind::TimedOut => "timed out",
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                "host unreachable"
            }
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => "connection lost",
            _ if is_name_lookup(error) => "host not found",
            _ => "connection failed",
        };
    }
    if error.is_closed() {
        return "connection lost";
    }
    // The server asked for a password that was not given ("password missing"): the same fix as
    // a wrong one.
    if error.to_string().contains("password") {
        return "authentication failed";
    }
    "query failed"
}

fn sql_state_cause(code: &SqlState, error: &tokio_postgres::Error) -> &'static str {
    match *code {
        SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            "authentication failed"
        }
        SqlState::TOO_MANY_CONNECTIONS => "too many clients",
        SqlState::INVALID_CATALOG_NAME => "unknown database",
        SqlState::QUERY_CANCELED => "statement timeout",
        // A shutdown and `pg_terminate_backend` send the same code.
        SqlState::ADMIN_SHUTDOWN => "terminated by the server",
        SqlState::CRASH_SHUTDOWN => "server crashed",
        SqlState::CANNOT_CONNECT_NOW => not_accepting(error),
        SqlState::UNDEFINED_TABLE => "schema missing",
        SqlState::INSUFFICIENT_PRIVILEGE => "permission denied",
        SqlState::READ_ONLY_SQL_TRANSACTION => "server is read-only",
        _ => "query failed",
    }
}

/// Why a server refuses connections for now (`57P03`): one code for starting up, shutting down
/// and recovery. The server's message tells them apart; it is a fixed sentence, never a
/// credential, and only chooses among these words (a translated one gets the neutral words).
fn not_accepting(error: &tokio_postgres::Error) -> &'static str {
    let message = error.as_db_error().map(|db| db.message()).unwrap_or("");
    if message.contains("shutting down") {
        "server shutting down"
    } else if message.contains("starting up") {
        "server starting up"
    } else {
        "server not accepting connections"
    }
}

/// The rustls error in the chain, if the TLS handshake failed (tokio-rustls wraps it in an I/O
/// error).
fn tls_error(error: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = cause
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        source = cause.source();
    }
    None
}

/// Whether the error or one of its sources says `words`.
fn chain_contains(error: &tokio_postgres::Error, words: &str) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.to_string().contains(words) {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The kind of the first I/O error in the chain.
fn io_kind(error: &tokio_postgres::Error) -> Option<io::ErrorKind> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// Whether the failure is a failed host name lookup (tokio-postgres reports it as an I/O error
/// of no particular kind).
fn is_name_lookup(error: &tokio_postgres::Error) -> bool {
    let text = error.to_string();
    text.contains("lookup address") || text.contains("Name or service not known")
}
