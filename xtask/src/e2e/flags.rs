//! What the scenarios' containers and services share: the label that finds them, and the
//! health-check overrides that keep the run quick.

/// The label put on every container and service the scenarios create, to find leftovers.
pub const LABEL: &str = "accountservice.e2e=1";

/// Health-check overrides for the scenarios: a probe every second, unhealthy after two failures,
/// five seconds of start-up grace. The probe's own timeout is 2 s, Docker's is above it.
pub const HEALTH_FLAGS: [&str; 8] = [
    "--health-interval",
    "1s",
    "--health-timeout",
    "3s",
    "--health-retries",
    "2",
    "--health-start-period",
    "5s",
];
