//! The generated reference pages: `docs/configuration.md` from the flags' definition, and the
//! endpoint table in `docs/endpoints.md` from the routes a running service really answers on each
//! port. Each test fails when the committed page differs from what the code generates;
//! `UPDATE_DOCS=1 cargo test -p accountservice --test api reference` rewrites both.

use std::{collections::BTreeMap, path::PathBuf};

use accountservice::config::Settings;
use clap::CommandFactory as _;
use serde_json::Value;

use crate::helpers::spawn_app_configured;

/// The command that rewrites the generated pages.
const REGENERATE: &str = "UPDATE_DOCS=1 cargo test -p accountservice --test api reference";

/// Where the generated part of `docs/endpoints.md` starts and ends; the prose around it is
/// written by hand.
const BEGIN: &str = "<!-- generated: the endpoint table; do not edit by hand -->";
const END: &str = "<!-- end of the generated endpoint table -->";

fn repository_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Writes `generated` to `path` under `UPDATE_DOCS`, else fails if the committed file differs.
fn keep_in_step(path: &str, generated: &str) {
    let file = repository_file(path);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&file, generated).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        return;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == generated,
        "{path} is not what the code generates: run `{REGENERATE}` and commit the page"
    );
}

/// A Markdown table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// `ENV` lines of `deploy/Dockerfile`: what the image sets.
fn image_environment() -> BTreeMap<String, String> {
    let dockerfile = std::fs::read_to_string(repository_file("deploy/Dockerfile"))
        .expect("deploy/Dockerfile is readable");
    dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("ENV "))
        .filter_map(|assignment| assignment.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// The configuration page, from `Settings`' clap definition and the image's `ENV` lines.
fn configuration_page() -> String {
    let command = Settings::command();
    let image = image_environment();
    let mut page = String::from(
        "# Configuration reference\n\n\
         For operators who start `accountservice` with settings of their own: every flag, the \
         environment variable it falls back to, its default, what the container image sets, and \
         what it does. A flag wins over its variable, a variable over the default; nothing else \
         is read from the environment. Times are in seconds (fractions allowed).\n\n",
    );
    page.push_str(&format!(
        "This page is generated from the flags' definition in \
         [`crates/accountservice/src/config.rs`](../crates/accountservice/src/config.rs) and the \
         `ENV` lines of [`deploy/Dockerfile`](../deploy/Dockerfile); a test fails when it differs. \
         Edit the doc comments there, then run `{REGENERATE}`.\n\n"
    ));
    page.push_str("| Flag | Variable | Default | In the image | Meaning |\n");
    page.push_str("|---|---|---|---|---|\n");
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let flag = arg
            .get_long()
            .map_or_else(|| id.to_owned(), |long| format!("--{long}"));
        let variable = arg
            .get_env()
            .map(|env| env.to_string_lossy().into_owned())
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|value| value.to_string_lossy().into_owned())
            .collect();
        let default = if defaults.is_empty() {
            "unset".to_owned()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let in_image = image
            .get(&variable)
            .map_or_else(String::new, |value| format!("`{value}`"));
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        let choices: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|value| !value.is_hide_set())
            .map(|value| format!("`{}`", value.get_name()))
            .collect();
        // clap drops the period that ends a one-line doc comment; the page keeps full sentences.
        let help = help.trim().trim_end_matches('.').to_owned() + ".";
        let meaning = if choices.is_empty() || arg.get_id() == "testability" {
            help
        } else {
            format!("{help} One of: {}.", choices.join(", "))
        };
        let variable = if variable.is_empty() {
            String::new()
        } else {
            format!("`{variable}`")
        };
        page.push_str(&format!(
            "| `{flag}` | {variable} | {default} | {in_image} | {} |\n",
            cell(&meaning)
        ));
    }
    if let Some(after) = command.get_after_help() {
        page.push_str("\n## What `--help` adds\n\n```text\n");
        page.push_str(after.to_string().trim());
        page.push_str("\n```\n");
    }
    page
}

#[test]
fn the_committed_configuration_page_is_what_the_flags_generate() {
    let page = configuration_page();
    // Every setting is on the page, with its variable.
    for arg in Settings::command().get_arguments() {
        if let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) {
            let row = format!("| `--{long}` | `{}` |", env.to_string_lossy());
            assert!(page.contains(&row), "no row {row}");
        }
    }
    keep_in_step("docs/configuration.md", &page);
}

/// A concrete path for a documented one, with harmless values for its parameters.
fn concrete(path: &str) -> String {
    path.replace("{accountId}", "10000")
        .replace("{component}", "database")
        .replace("/testability/healthy/{state}", "/testability/healthy/true")
        .replace("/testability/database/{state}", "/testability/database/up")
}

/// What a flag must be set for a documented operation to exist, from its tag.
fn needs(tags: &[&str]) -> &'static str {
    if tags.contains(&"testability") {
        "`--testability`"
    } else if tags.contains(&"fleet") {
        "`--peers`"
    } else {
        ""
    }
}

#[tokio::test]
async fn the_committed_endpoint_table_is_what_the_routes_answer() {
    let app = spawn_app_configured(|s| {
        s.management_port = Some(0);
        s.testability = true;
        s.peers = Some("127.0.0.1:9".parse().expect("a peer list"));
    })
    .await;
    let management = app.management.expect("a management port");
    let document: Value =
        serde_json::from_str(include_str!("../../openapi.json")).expect("the committed document");
    let mut table = String::from(
        "| Path | Methods | Public port 6767 | Management port 6768 | Needs | What it does |\n\
         |---|---|---|---|---|---|\n",
    );
    let paths = document["paths"].as_object().expect("paths");
    for (path, operations) in paths {
        let operations = operations.as_object().expect("operations");
        let methods: Vec<String> = operations.keys().map(|m| m.to_uppercase()).collect();
        let (_, first) = operations.iter().next().expect("an operation");
        let tags: Vec<&str> = first["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let summary = first["summary"].as_str().unwrap_or_default();
        let url_path = concrete(path);
        let mut served = Vec::new();
        for address in [app.address, management] {
            let status = app
                .client
                .get(format!("http://{address}{url_path}"))
                .send()
                .await
                .expect("an answer")
                .status();
            served.push(if status == 404 { "no" } else { "yes" });
        }
        assert!(
            served.contains(&"yes"),
            "{path} ({url_path}) is documented but answers 404 on both ports"
        );
        table.push_str(&format!(
            "| `{path}` | {} | {} | {} | {} | {} |\n",
            methods.join(", "),
            served[0],
            served[1],
            needs(&tags),
            cell(summary)
        ));
    }

    let page_path = "docs/endpoints.md";
    let committed =
        std::fs::read_to_string(repository_file(page_path)).expect("docs/endpoints.md is readable");
    let (before, rest) = committed
        .split_once(BEGIN)
        .unwrap_or_else(|| panic!("{page_path} has no line {BEGIN}"));
    let (_, after) = rest
        .split_once(END)
        .unwrap_or_else(|| panic!("{page_path} has no line {END}"));
    let generated = format!("{before}{BEGIN}\n{table}{END}{after}");
    keep_in_step(page_path, &generated);
}
