//! From the peers' answers to a verdict: is this replica alone in failing a dependency every
//! replica shares (a fault of its own), or are most failing it too (an outage of the
//! dependency)?

use std::fmt;

/// What one peer said when asked whether it reaches the dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Its own check of the dependency is working (`UP`, `DEGRADED` or `UNKNOWN`).
    Reaches,
    /// Its own check of the dependency fails too; the peer's short reason.
    CannotReach(String),
    /// No usable answer (unreachable, timed out, still starting, not showing components): why.
    NoAnswer(String),
}

/// One peer asked, and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAnswer {
    /// The peer as listed (`host:port`).
    pub peer: String,
    /// What it said.
    pub answer: Answer,
}

/// What the answers make of this replica's failing check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Most of the peers that answered reach the dependency: the fault is this replica's (a cut
    /// link, a broken pool, a bad secret). It leaves readiness, and after a grace its restart
    /// signal fails too, so it is replaced, possibly elsewhere.
    Local {
        /// Peers that reach it.
        reach: usize,
        /// Peers that cannot.
        cannot: usize,
    },
    /// Most of the peers that answered cannot reach it either, or as many can as cannot: an
    /// outage of the dependency. Nothing restarts, readiness stays in rotation (fail open), and
    /// lookups answer 503 at once.
    Shared {
        /// Peers that reach it.
        reach: usize,
        /// Peers that cannot.
        cannot: usize,
    },
    /// No peer answered, or there was none to ask: treated as shared, since a restart must never
    /// be for what cannot be proven to be this replica's own fault.
    Unproven {
        /// Peers asked (0: none to ask).
        asked: usize,
    },
}

impl Verdict {
    /// Judges the answers of the peers asked about `component`: local only when strictly more
    /// peers reach the dependency than cannot.
    pub fn judge(answers: &[PeerAnswer]) -> Verdict {
        let reach = answers
            .iter()
            .filter(|a| a.answer == Answer::Reaches)
            .count();
        let cannot = answers
            .iter()
            .filter(|a| matches!(a.answer, Answer::CannotReach(_)))
            .count();
        if reach + cannot == 0 {
            Verdict::Unproven {
                asked: answers.len(),
            }
        } else if reach > cannot {
            Verdict::Local { reach, cannot }
        } else {
            Verdict::Shared { reach, cannot }
        }
    }

    /// Whether this is a fault of this replica's own.
    pub fn is_local(self) -> bool {
        matches!(self, Verdict::Local { .. })
    }

    /// `local` or `shared` (an unproven verdict is treated as shared): the metric label.
    pub fn label(self) -> &'static str {
        if self.is_local() { "local" } else { "shared" }
    }

    /// The short, public reason: `shared outage: 3 of 3 replicas cannot reach the database`.
    /// Replicas counted are this one and the peers that answered.
    pub fn reason(self, component: &str) -> String {
        match self {
            Verdict::Shared { reach, cannot } => format!(
                "shared outage: {} of {} replicas cannot reach the {component}",
                cannot + 1,
                reach + cannot + 1
            ),
            Verdict::Local { reach, cannot } => format!(
                "local fault: {reach} of {} replicas reach the {component}, this one cannot",
                reach + cannot + 1
            ),
            Verdict::Unproven { asked: 0 } => {
                format!("shared outage assumed: no peer to ask whether it reaches the {component}")
            }
            Verdict::Unproven { asked } => format!(
                "shared outage assumed: none of the {asked} peers asked answered whether it \
                 reaches the {component}"
            ),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Reaches => f.write_str("reaches it"),
            Answer::CannotReach(reason) => write!(f, "cannot reach it ({reason})"),
            Answer::NoAnswer(why) => write!(f, "no answer ({why})"),
        }
    }
}

/// The answers on one line, for the component's detail: `10.0.1.6:6768 reaches it; 10.0.1.7:6768
/// cannot reach it (connection refused)`.
pub fn describe(answers: &[PeerAnswer]) -> String {
    if answers.is_empty() {
        return "no peer asked".to_owned();
    }
    answers
        .iter()
        .map(|a| format!("{} {}", a.peer, a.answer))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(list: &[Answer]) -> Vec<PeerAnswer> {
        list.iter()
            .enumerate()
            .map(|(i, answer)| PeerAnswer {
                peer: format!("10.0.1.{i}:6768"),
                answer: answer.clone(),
            })
            .collect()
    }

    fn cannot() -> Answer {
        Answer::CannotReach("connection refused".into())
    }

    fn silent() -> Answer {
        Answer::NoAnswer("no answer within 1s".into())
    }

    #[test]
    fn most_peers_reaching_it_make_the_fault_this_replica_s_own() {
        let verdict = Verdict::judge(&answers(&[Answer::Reaches, Answer::Reaches]));
        assert_eq!(
            verdict,
            Verdict::Local {
                reach: 2,
                cannot: 0
            }
        );
        assert_eq!(
            verdict.reason("database"),
            "local fault: 2 of 3 replicas reach the database, this one cannot"
        );
        let verdict = Verdict::judge(&answers(&[Answer::Reaches, Answer::Reaches, cannot()]));
        assert!(verdict.is_local());
        // A silent peer counts for nothing either way.
        assert!(Verdict::judge(&answers(&[Answer::Reaches, silent(), silent()])).is_local());
    }

    #[test]
    fn most_peers_failing_too_is_a_shared_outage() {
        let verdict = Verdict::judge(&answers(&[cannot(), cannot()]));
        assert_eq!(
            verdict,
            Verdict::Shared {
                reach: 0,
                cannot: 2
            }
        );
        assert_eq!(
            verdict.reason("database"),
            "shared outage: 3 of 3 replicas cannot reach the database"
        );
        assert_eq!(verdict.label(), "shared");
        let verdict = Verdict::judge(&answers(&[cannot(), cannot(), Answer::Reaches]));
        assert_eq!(
            verdict.reason("database"),
            "shared outage: 3 of 4 replicas cannot reach the database"
        );
    }

    #[test]
    fn a_tie_is_not_proof_of_a_local_fault() {
        let verdict = Verdict::judge(&answers(&[cannot(), Answer::Reaches]));
        assert_eq!(
            verdict,
            Verdict::Shared {
                reach: 1,
                cannot: 1
            }
        );
        assert!(!verdict.is_local());
    }

    #[test]
    fn no_answer_or_no_peer_is_treated_as_shared() {
        let verdict = Verdict::judge(&answers(&[silent(), silent(), silent()]));
        assert_eq!(verdict, Verdict::Unproven { asked: 3 });
        assert_eq!(verdict.label(), "shared");
        assert_eq!(
            verdict.reason("database"),
            "shared outage assumed: none of the 3 peers asked answered whether it reaches the \
             database"
        );
        let alone = Verdict::judge(&[]);
        assert_eq!(alone, Verdict::Unproven { asked: 0 });
        assert_eq!(
            alone.reason("database"),
            "shared outage assumed: no peer to ask whether it reaches the database"
        );
    }

    #[test]
    fn the_detail_lists_every_peer_and_its_answer() {
        assert_eq!(
            describe(&answers(&[Answer::Reaches, cannot(), silent()])),
            "10.0.1.0:6768 reaches it; 10.0.1.1:6768 cannot reach it (connection refused); \
             10.0.1.2:6768 no answer (no answer within 1s)"
        );
        assert_eq!(describe(&[]), "no peer asked");
    }
}
