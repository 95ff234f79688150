//! `healthchecker`: the Docker HEALTHCHECK probe. Exit 0 healthy, 1 anything else; see `--help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    healthchecker::run(
        std::env::args_os().skip(1),
        |name| std::env::var_os(name),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
    .into()
}
