//! [`StopBudget`]: how the orchestrator's grace (`--stop-grace`) is divided between the phases
//! of a stop, so that the process exits, with its exit code, before the orchestrator's SIGKILL.
//!
//! The phases run one after another, each under its own bound, and the bounds add up to at
//! most the grace less a margin, by construction:
//!
//! ```text
//! pre-stop delay + drain + management + store release + runtime + margin <= grace
//! ```
//!
//! The pre-stop delay is `--pre-stop-delay`; the drain is `--shutdown-timeout`, or, unset, what
//! the other phases leave of the grace, and it holds the close grace (`--close-grace`). The
//! management listener's last requests, the store's release (the refresher's stop included)
//! and the runtimes' shutdown, and the margin left for the process to exit, each get a tenth of
//! the grace, at most [`TAIL_PHASE`]. Settings whose phases cannot fit are refused at start.

use std::time::Duration;

use crate::config::Settings;

/// The most each of the last phases (management listener, store release, runtime shutdown)
/// and the margin get of the grace.
pub const TAIL_PHASE: Duration = Duration::from_secs(1);

/// The grace of a stop, divided between its phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopBudget {
    /// The orchestrator's grace: from SIGTERM to SIGKILL.
    pub grace: Duration,
    /// Serving on with readiness failing (`--pre-stop-delay`).
    pub pre_stop: Duration,
    /// The requests in flight finishing, and connections closing (`--shutdown-timeout`).
    pub drain: Duration,
    /// The management listener's requests in progress once it is told to stop, and its runtime
    /// shutting down.
    pub management: Duration,
    /// The health refresher stopping and the database being let go of and closed.
    pub store_release: Duration,
    /// The main runtime's shutdown: blocking calls that never return are left behind.
    pub runtime: Duration,
    /// Left over, for the process to exit.
    pub margin: Duration,
}

/// Why the phases of a stop do not fit the grace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The fixed phases and an explicit `--shutdown-timeout` exceed the grace.
    #[error(
        "the phases of a stop take {total:?} (--pre-stop-delay {pre_stop:?} + --shutdown-timeout \
         {drain:?} + {tail:?} to close down), more than --stop-grace {grace:?}: lower them or \
         raise --stop-grace to the orchestrator's grace"
    )]
    TooLong {
        /// The grace.
        grace: Duration,
        /// The pre-stop delay.
        pre_stop: Duration,
        /// The drain asked for.
        drain: Duration,
        /// Management, store release, runtime shutdown and the margin together.
        tail: Duration,
        /// All of them.
        total: Duration,
    },
    /// The pre-stop delay leaves no time to drain.
    #[error(
        "--pre-stop-delay {pre_stop:?} leaves no time to drain within --stop-grace {grace:?} \
         ({tail:?} go to closing down): lower it or raise --stop-grace"
    )]
    NoDrain {
        /// The grace.
        grace: Duration,
        /// The pre-stop delay.
        pre_stop: Duration,
        /// Management, store release, runtime shutdown and the margin together.
        tail: Duration,
    },
    /// The close grace is longer than the drain that holds it.
    #[error(
        "--close-grace {close_grace:?} is longer than the drain ({drain:?}, --shutdown-timeout or \
         what --stop-grace leaves): lower it"
    )]
    CloseGrace {
        /// The close grace.
        close_grace: Duration,
        /// The drain.
        drain: Duration,
    },
}

impl StopBudget {
    /// The budget of `settings`, or why their phases cannot fit their grace.
    pub fn of(settings: &Settings) -> Result<Self, BudgetError> {
        let grace = settings.stop_grace;
        let pre_stop = settings.pre_stop_delay;
        let phase = (grace / 10).min(TAIL_PHASE);
        let tail = phase * 4;
        let drain = match settings.shutdown_timeout {
            Some(drain) => {
                let total = pre_stop.saturating_add(drain).saturating_add(tail);
                if total > grace {
                    return Err(BudgetError::TooLong {
                        grace,
                        pre_stop,
                        drain,
                        tail,
                        total,
                    });
                }
                drain
            }
            None => grace
                .checked_sub(pre_stop.saturating_add(tail))
                .filter(|left| !left.is_zero())
                .ok_or(BudgetError::NoDrain {
                    grace,
                    pre_stop,
                    tail,
                })?,
        };
        if settings.close_grace > drain {
            return Err(BudgetError::CloseGrace {
                close_grace: settings.close_grace,
                drain,
            });
        }
        Ok(Self {
            grace,
            pre_stop,
            drain,
            management: phase,
            store_release: phase,
            runtime: phase,
            margin: grace - pre_stop - drain - phase * 3,
        })
    }

    /// Every phase's bound, the margin included: at most the grace.
    pub fn total(&self) -> Duration {
        self.pre_stop
            + self.drain
            + self.management
            + self.store_release
            + self.runtime
            + self.margin
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn settings(args: &[&str]) -> Settings {
        Settings::from_args_ignoring_env(args.iter().copied()).unwrap()
    }

    #[test]
    fn the_defaults_fit_docker_s_ten_seconds_with_a_second_to_spare() {
        let budget = StopBudget::of(&Settings::default()).unwrap();
        assert_eq!(budget.grace, Duration::from_secs(10));
        assert_eq!(budget.drain, Duration::from_secs(6));
        assert_eq!(budget.management, Duration::from_secs(1));
        assert_eq!(budget.store_release, Duration::from_secs(1));
        assert_eq!(budget.runtime, Duration::from_secs(1));
        assert_eq!(budget.margin, Duration::from_secs(1));
        assert_eq!(budget.total(), budget.grace);
    }

    #[test]
    fn an_unset_drain_is_what_the_pre_stop_delay_leaves() {
        let budget = StopBudget::of(&settings(&["--pre-stop-delay", "5", "--stop-grace", "20"]));
        assert_eq!(budget.unwrap().drain, Duration::from_secs(11));
        let budget = StopBudget::of(&settings(&["--stop-grace", "2"])).unwrap();
        assert_eq!(budget.drain, Duration::from_millis(1200));
        assert_eq!(budget.margin, Duration::from_millis(200));
    }

    #[test]
    fn phases_that_cannot_fit_are_refused_in_one_line() {
        for (args, says) in [
            (
                &["--shutdown-timeout", "8"][..],
                "more than --stop-grace 10s",
            ),
            (&["--pre-stop-delay", "6"], "leaves no time to drain"),
            (
                &["--pre-stop-delay", "3", "--shutdown-timeout", "5"],
                "take 12s",
            ),
            (
                &["--close-grace", "7"],
                "--close-grace 7s is longer than the drain",
            ),
        ] {
            let error = StopBudget::of(&settings(args)).unwrap_err().to_string();
            assert!(error.contains(says), "{args:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    proptest! {
        #[test]
        fn whatever_the_settings_the_phases_fit_the_grace_or_are_refused(
            grace in 1.0f64..3600.0,
            pre_stop in prop_oneof![Just(0.0), 0.0f64..3600.0],
            drain in prop::option::of(0.0f64..3600.0),
            close_grace in 0.0f64..60.0,
        ) {
            let mut args = vec![
                format!("--stop-grace={grace}"),
                format!("--pre-stop-delay={pre_stop}"),
                format!("--close-grace={close_grace}"),
            ];
            if let Some(drain) = drain {
                args.push(format!("--shutdown-timeout={drain}"));
            }
            let settings = Settings::from_args_ignoring_env(args).unwrap();
            if let Ok(budget) = StopBudget::of(&settings) {
                prop_assert!(budget.total() <= settings.stop_grace);
                prop_assert!(!budget.margin.is_zero());
                prop_assert!(settings.close_grace <= budget.drain);
                prop_assert_eq!(budget.pre_stop, settings.pre_stop_delay);
            }
        }
    }
}
