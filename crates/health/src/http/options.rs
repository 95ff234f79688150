//! What the health endpoints show ([`Details`]) and say about the service ([`HttpOptions`]).

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

/// How much a health answer shows. The HTTP status code is the same at every level.
///
/// | level | healthy | unhealthy |
/// |---|---|---|
/// | `Never` | exactly `{"status":"UP"}` | status and a short `reason` naming the failing components |
/// | `Components` | also each component's status (and short reason, if any) | same |
/// | `Always` | also internal details: error texts, observed values, durations, timestamps | same |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Details {
    /// Only the status, plus the short reason when it is not `UP`.
    Never,
    /// Also each component's status and short reason (the default: the endpoint should say
    /// what is wrong).
    #[default]
    Components,
    /// Also internal details. Only for endpoints that untrusted clients cannot reach.
    Always,
}

impl Details {
    /// The setting's name: `never`, `components` or `always`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Details::Never => "never",
            Details::Components => "components",
            Details::Always => "always",
        }
    }
}

impl fmt::Display for Details {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A details level that is not `never`, `components` or `always`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid health details level {0:?}: expected never, components or always")]
pub struct ParseDetailsError(String);

impl FromStr for Details {
    type Err = ParseDetailsError;

    /// Parses `never`, `components` or `always` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Details::Never, Details::Components, Details::Always]
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseDetailsError(s.to_owned()))
    }
}

/// Options for [`crate::http::router`]. `Default` is `details: Components`, empty service id
/// and version (then left out of the answers), no description, no identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpOptions {
    /// How much the answers show.
    pub details: Details,
    /// `serviceId` in `application/health+json` (from `details=components` on).
    pub service_id: String,
    /// `version` in `application/health+json` (from `details=components` on).
    pub version: String,
    /// `description` in `application/health+json` (from `details=components` on).
    pub description: Option<String>,
    /// Who this replica is, for `/health/history`.
    pub identity: Identity,
}

/// Who a replica is: what `/health/history` says about itself, so that a viewer asking several
/// replicas can tell them apart. The version is [`HttpOptions::version`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The replica's name (e.g. the `servedBy` of a service's answers); empty means the
    /// service id.
    pub instance: String,
    /// The `host:port` this replica is reached at, if known.
    pub address: Option<String>,
    /// When the process started; `None` means when the registry was built.
    pub started_at: Option<SystemTime>,
    /// The replica's slot among its service's replicas, when the orchestrator numbers them
    /// (a Swarm task slot, a StatefulSet ordinal); `None` leaves it out of the answer.
    pub slot: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_parse_from_their_names_in_any_case() {
        assert_eq!("never".parse(), Ok(Details::Never));
        assert_eq!("Components".parse(), Ok(Details::Components));
        assert_eq!("ALWAYS".parse(), Ok(Details::Always));
        let err = "sometimes".parse::<Details>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid health details level "sometimes": expected never, components or always"#
        );
        assert_eq!(Details::default(), Details::Components);
        assert_eq!(Details::Always.to_string(), "always");
    }
}
