//! Bounded waiting: poll a condition until it holds or a deadline passes, and on timeout say what
//! was last seen, so a failure explains itself.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// What one look at the system found.
#[derive(Debug)]
pub enum Poll<T> {
    /// The condition holds; the wait returns this value.
    Ready(T),
    /// Not yet; the text describes what was seen, for the timeout message.
    Pending(String),
}

/// Polls `look` every `every` until it is ready, for at most `timeout`.
///
/// Errors from `look` end the wait at once: a failing `docker` call is not a condition that
/// might come true later.
pub fn until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut look: impl FnMut() -> Result<Poll<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        match look()? {
            Poll::Ready(value) => return Ok(value),
            Poll::Pending(seen) => {
                if start.elapsed() >= timeout {
                    bail!(
                        "timed out after {:.0?} waiting for {what}; last seen: {seen}",
                        timeout
                    );
                }
            }
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_comes_true_returns_its_value() {
        let mut calls = 0;
        let value = until(
            "three calls",
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                calls += 1;
                Ok(if calls == 3 {
                    Poll::Ready(calls)
                } else {
                    Poll::Pending(format!("{calls} calls"))
                })
            },
        )
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn a_condition_that_never_holds_times_out_naming_what_was_last_seen() {
        let err = until(
            "the impossible",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || Ok(Poll::<()>::Pending("still starting".to_owned())),
        )
        .unwrap_err();
        let message = format!("{err}");
        assert!(message.contains("the impossible"), "{message}");
        assert!(message.contains("still starting"), "{message}");
    }

    #[test]
    fn an_error_while_looking_ends_the_wait_at_once() {
        let start = Instant::now();
        let result: Result<()> = until("anything", Duration::from_secs(60), Duration::ZERO, || {
            bail!("docker is gone")
        });
        assert!(result.is_err());
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
