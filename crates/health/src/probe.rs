//! Which probes a component takes part in ([`Probes`]) and which view a report takes ([`Scope`]).

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of probes a component takes part in, combined with `|`:
/// `Probes::LIVENESS | Probes::READINESS`.
///
/// The overall view ([`Scope::Overall`], `/health`) always includes every component,
/// whatever its probes; [`Probes::NONE`] therefore means "shown in `/health` only".
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Probes(u8);

impl Probes {
    /// Only the overall view.
    pub const NONE: Probes = Probes(0);
    /// The liveness probe (`/health/live`): is the process able to work at all? Keep
    /// dependencies out of it: a liveness probe that fails when a database is down makes an
    /// orchestrator restart every replica at once, which does not fix the database.
    pub const LIVENESS: Probes = Probes(1);
    /// The readiness probe (`/health/ready`): should this instance get traffic now?
    pub const READINESS: Probes = Probes(2);
    /// Both probes.
    pub const ALL: Probes = Probes(3);

    /// Whether every probe in `other` is in `self`.
    #[must_use]
    pub fn contains(self, other: Probes) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether a component with these probes appears in the given scope.
    #[must_use]
    pub fn includes(self, scope: Scope) -> bool {
        match scope {
            Scope::Overall => true,
            Scope::Liveness => self.contains(Probes::LIVENESS),
            Scope::Readiness => self.contains(Probes::READINESS),
        }
    }
}

impl BitOr for Probes {
    type Output = Probes;
    fn bitor(self, rhs: Probes) -> Probes {
        Probes(self.0 | rhs.0)
    }
}

impl BitOrAssign for Probes {
    fn bitor_assign(&mut self, rhs: Probes) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Probes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Probes::NONE => f.write_str("Probes::NONE"),
            Probes::LIVENESS => f.write_str("Probes::LIVENESS"),
            Probes::READINESS => f.write_str("Probes::READINESS"),
            _ => f.write_str("Probes::LIVENESS | Probes::READINESS"),
        }
    }
}

/// Which components a report covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every component (`/health`).
    Overall,
    /// Components that take part in [`Probes::LIVENESS`] (`/health/live`, `/livez`).
    Liveness,
    /// Components that take part in [`Probes::READINESS`] (`/health/ready`, `/readyz`).
    Readiness,
}

impl Scope {
    /// The three scopes, in a fixed order.
    pub const ALL: [Scope; 3] = [Scope::Overall, Scope::Liveness, Scope::Readiness];

    /// The scope's name: `overall`, `liveness` or `readiness`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Overall => "overall",
            Scope::Liveness => "liveness",
            Scope::Readiness => "readiness",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_combine_with_bitor() {
        let both = Probes::LIVENESS | Probes::READINESS;
        assert_eq!(both, Probes::ALL);
        assert!(both.contains(Probes::LIVENESS));
        assert!(both.contains(Probes::READINESS));
        assert!(!Probes::READINESS.contains(Probes::LIVENESS));
        let mut p = Probes::NONE;
        p |= Probes::LIVENESS;
        assert_eq!(p, Probes::LIVENESS);
    }

    #[test]
    fn the_overall_scope_includes_every_component() {
        for p in [
            Probes::NONE,
            Probes::LIVENESS,
            Probes::READINESS,
            Probes::ALL,
        ] {
            assert!(p.includes(Scope::Overall));
        }
        assert!(!Probes::NONE.includes(Scope::Liveness));
        assert!(!Probes::READINESS.includes(Scope::Liveness));
        assert!(Probes::READINESS.includes(Scope::Readiness));
        assert!(Probes::ALL.includes(Scope::Liveness));
    }
}
