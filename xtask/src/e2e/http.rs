//! HTTP requests to our own containers through their ports published on 127.0.0.1.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde::Deserialize;

/// The host ports a container or task publishes its two ports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Where 6767 is published: the accounts, `/openapi.json` and `GET /health`.
    pub public: u16,
    /// Where the management port 6768 is published: every health route, `/metrics`, the fleet
    /// view and the testability switches.
    pub management: u16,
}

/// A blocking client with a bounded timeout for every request.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::blocking::Client,
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// The `Retry-After` header, if sent.
    pub retry_after: Option<String>,
}

/// An account as the service returns it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The account id.
    pub id: String,
    /// The account holder's name.
    pub name: String,
    /// Which instance answered.
    pub served_by: String,
}

impl Client {
    /// A client whose requests fail after `timeout` (connect, send and receive together).
    pub fn new(timeout: Duration) -> Result<Self> {
        let inner = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Self { inner })
    }

    /// `GET http://127.0.0.1:<port><path>`.
    pub fn get(&self, port: u16, path: &str) -> Result<Answer> {
        let url = format!("http://127.0.0.1:{port}{path}");
        let response = self
            .inner
            .get(&url)
            .send()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .with_context(|| format!("reading the body of GET {url}"))?;
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }

    /// `GET /accounts/<id>`, which must answer 200 with that account.
    pub fn account(&self, port: u16, id: u32) -> Result<Account> {
        let answer = self.get(port, &format!("/accounts/{id}"))?;
        ensure!(
            answer.status == 200,
            "GET /accounts/{id} on port {port} answered {}: {}",
            answer.status,
            answer.body
        );
        let account: Account = serde_json::from_str(&answer.body)
            .with_context(|| format!("account JSON {:?}", answer.body))?;
        let expected = format!("Person_{}", id.saturating_sub(10_000));
        ensure!(
            account.id == id.to_string() && account.name == expected,
            "GET /accounts/{id} answered {account:?}, expected {expected}"
        );
        Ok(account)
    }

    /// `GET <path>` on both ports of `ports`: each `(path, public, management)` must answer
    /// the status `public` on the public port and `management` on the management port.
    pub fn expect_split(&self, ports: Ports, routes: &[(&str, u16, u16)]) -> Result<()> {
        for &(path, public, management) in routes {
            for (port, which, wanted) in [
                (ports.public, "public", public),
                (ports.management, "management", management),
            ] {
                let answer = self.get(port, path)?;
                ensure!(
                    answer.status == wanted,
                    "GET {path} on the {which} port ({port}) answered {}, expected {wanted}: {}",
                    answer.status,
                    answer.body
                );
            }
        }
        Ok(())
    }

    /// `GET <path>`, which must answer 200 (the testability switches).
    pub fn switch(&self, port: u16, path: &str) -> Result<()> {
        let answer = self.get(port, path)?;
        ensure!(
            answer.status == 200,
            "GET {path} on port {port} answered {}: {} (is ACCOUNTSERVICE_TESTABILITY=true honoured?)",
            answer.status,
            answer.body
        );
        Ok(())
    }
}
