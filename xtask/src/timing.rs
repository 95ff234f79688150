//! The timings the container and lab scenarios print as they go and sum up at the end.

use std::time::Duration;

use crate::docker::secs;

/// One timing line of a scenario.
pub struct Timing {
    /// What was measured.
    pub what: String,
    /// How long it took.
    pub took: Duration,
}

impl Timing {
    /// Records and prints a timing at once, so it is visible even if the scenario fails later.
    pub fn print(what: impl Into<String>, took: Duration) -> Self {
        let what = what.into();
        println!("    {what}: {}", secs(took));
        Self { what, took }
    }
}
