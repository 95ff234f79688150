//! What a peer's `GET /health/history` answer must hold to count as a health answer.
//!
//! Parsed strictly enough to tell a health history from any other JSON (a 404 body, another
//! service), leniently enough to accept newer replicas that add fields. Every string a peer sends
//! is cut to a bounded length before it is kept, and a whole answer is trimmed to a byte budget
//! (oldest transitions first), so a peer cannot bloat the view. Parsed straight into these
//! types: no intermediate JSON tree, and fields the view does not use are skipped unkept.

use std::mem::size_of;

use std::collections::BTreeMap;

use serde::Deserialize;

/// The statuses a replica may report about itself, in the order of the `health` crate.
pub const HEALTH_STATUSES: [&str; 5] = ["UP", "UNKNOWN", "DEGRADED", "OUT_OF_SERVICE", "DOWN"];

/// The longest string kept from a peer (reasons, names, timestamps), in bytes.
pub const MAX_TEXT: usize = 200;

/// The transitions kept from one peer's answer.
pub const MAX_TRANSITIONS: usize = 256;

/// The components kept from one peer's answer.
pub const MAX_COMPONENTS: usize = 16;

/// A peer's answer, as received.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerHistory {
    /// The peer's instance name.
    pub instance: String,
    /// The address the peer knows itself by, if any.
    #[serde(default)]
    pub address: Option<String>,
    /// The peer's version.
    #[serde(default)]
    pub version: Option<String>,
    /// When the peer started.
    #[serde(default)]
    pub started_at: Option<String>,
    /// The peer's slot among the service's replicas, if it claims one.
    #[serde(default)]
    pub slot: Option<u32>,
    /// The peer's overall status.
    pub status: String,
    /// Why, when not `UP`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Last change of the overall status.
    #[serde(default)]
    pub since: Option<String>,
    /// Newest first.
    pub transitions: Vec<PeerTransition>,
    /// Each component now, by name (absent from replicas that do not say).
    #[serde(default)]
    pub components: BTreeMap<String, PeerComponent>,
}

/// One component as a peer reports it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerComponent {
    /// Its status.
    pub status: String,
    /// Whether restarting the peer can cure its failure.
    #[serde(default)]
    pub curable_by_restart: Option<bool>,
}

/// One transition as a peer reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerTransition {
    /// RFC 3339 UTC.
    pub at: String,
    /// The component that changed, or
    #[serde(default)]
    pub component: Option<String>,
    /// the aggregate scope that changed.
    #[serde(default)]
    pub scope: Option<String>,
    /// Status before.
    pub from: String,
    /// Status after.
    pub to: String,
    /// The public short reason.
    #[serde(default)]
    pub reason: Option<String>,
}

impl PeerHistory {
    /// Parses a body, or says why it is not a health history.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut history: PeerHistory =
            serde_json::from_slice(body).map_err(|error| match error.classify() {
                serde_json::error::Category::Data => {
                    format!("not a health history answer ({})", cut(&error.to_string()))
                }
                _ => "answered with something other than JSON".to_owned(),
            })?;
        if !HEALTH_STATUSES.contains(&history.status.as_str()) {
            return Err(format!(
                "not a health history answer (unknown status `{}`)",
                cut(&history.status)
            ));
        }
        history.tidy();
        Ok(history)
    }

    /// The bytes this answer holds: its own size, its strings' and its transitions'.
    pub fn weight(&self) -> usize {
        let strings = [
            &self.address,
            &self.version,
            &self.started_at,
            &self.reason,
            &self.since,
        ]
        .into_iter()
        .flatten()
        .map(String::capacity)
        .sum::<usize>();
        size_of::<Self>()
            + self.instance.capacity()
            + self.status.capacity()
            + strings
            + self.transitions.capacity() * size_of::<PeerTransition>()
            + self
                .transitions
                .iter()
                .map(PeerTransition::heap)
                .sum::<usize>()
            + self
                .components
                .iter()
                .map(|(name, c)| {
                    name.capacity() + c.status.capacity() + size_of::<(String, PeerComponent)>()
                })
                .sum::<usize>()
    }

    /// Drops the oldest transitions until [`weight`](Self::weight) is at most `max` bytes (or
    /// none is left), and gives back the room they took.
    pub fn fit(&mut self, max: usize) {
        self.transitions.shrink_to_fit();
        let mut weight = self.weight();
        while weight > max {
            let Some(oldest) = self.transitions.pop() else {
                break;
            };
            weight -= oldest.heap() + size_of::<PeerTransition>();
        }
        self.transitions.shrink_to_fit();
    }

    /// Cuts every kept string to [`MAX_TEXT`] and the transitions to [`MAX_TRANSITIONS`].
    fn tidy(&mut self) {
        self.instance = cut(&self.instance);
        self.status = cut(&self.status);
        for field in [
            &mut self.address,
            &mut self.version,
            &mut self.started_at,
            &mut self.reason,
            &mut self.since,
        ]
        .into_iter()
        .flatten()
        {
            *field = cut(field);
        }
        self.transitions.truncate(MAX_TRANSITIONS);
        self.transitions.shrink_to_fit();
        self.components = std::mem::take(&mut self.components)
            .into_iter()
            .take(MAX_COMPONENTS)
            .map(|(name, mut c)| {
                c.status = cut(&c.status);
                (cut(&name), c)
            })
            .collect();
        for t in &mut self.transitions {
            t.at = cut(&t.at);
            t.from = cut(&t.from);
            t.to = cut(&t.to);
            for field in [&mut t.component, &mut t.scope, &mut t.reason]
                .into_iter()
                .flatten()
            {
                *field = cut(field);
            }
        }
    }
}

impl PeerTransition {
    /// The bytes its strings hold.
    fn heap(&self) -> usize {
        [&self.component, &self.scope, &self.reason]
            .into_iter()
            .flatten()
            .map(String::capacity)
            .sum::<usize>()
            + self.at.capacity()
            + self.from.capacity()
            + self.to.capacity()
    }
}

/// `text` cut to at most [`MAX_TEXT`] bytes on a character boundary, with `…` when cut, and
/// control characters written `?`: shown as JSON, a kept string then grows at most twice (a
/// quote or backslash escaped), never six times (`\u0000`).
pub fn cut(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut kept: String = text[..end]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if end < text.len() {
        kept.push('…');
    }
    kept.shrink_to_fit();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"{
        "instance": "accountservice-1a2b3c", "address": "10.0.1.5:6767", "version": "0.1.0",
        "startedAt": "2026-12-02T13:00:00Z", "slot": 2, "status": "DOWN", "reason": "database: read failed",
        "since": "2026-12-02T13:00:01Z", "extra": 1,
        "transitions": [
            {"at": "2026-12-02T13:00:01Z", "component": "database", "from": "UP", "to": "DOWN", "reason": "read failed"},
            {"at": "2026-12-02T13:00:01Z", "scope": "overall", "from": "UP", "to": "DOWN", "reason": "database: read failed"}
        ]
    }"#;

    #[test]
    fn a_history_answer_is_parsed() {
        let history = PeerHistory::parse(ANSWER.as_bytes()).unwrap();
        assert_eq!(history.instance, "accountservice-1a2b3c");
        assert_eq!(history.slot, Some(2));
        assert_eq!(history.status, "DOWN");
        assert_eq!(history.reason.as_deref(), Some("database: read failed"));
        assert_eq!(history.transitions.len(), 2);
        assert_eq!(history.transitions[1].scope.as_deref(), Some("overall"));
    }

    #[test]
    fn other_answers_say_what_they_are() {
        let garbage = PeerHistory::parse(b"\x00\xffnot json").unwrap_err();
        assert_eq!(garbage, "answered with something other than JSON");
        let other = PeerHistory::parse(br#"{"error":"not found"}"#).unwrap_err();
        assert!(other.starts_with("not a health history answer"), "{other}");
        let status = PeerHistory::parse(br#"{"instance":"a","status":"FINE","transitions":[]}"#)
            .unwrap_err();
        assert!(status.contains("unknown status `FINE`"), "{status}");
    }

    #[test]
    fn long_strings_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT);
        let body = format!(r#"{{"instance":"{long}","status":"UP","transitions":[]}}"#);
        let history = PeerHistory::parse(body.as_bytes()).unwrap();
        assert!(history.instance.len() <= MAX_TEXT + "…".len());
        assert!(history.instance.ends_with('…'));
        assert_eq!(cut("a\u{0}b\nc\u{7f}"), "a?b?c?");
    }

    #[test]
    fn an_answer_is_trimmed_to_its_budget_oldest_transitions_first() {
        let transition = |n: usize| {
            format!(
                r#"{{"at":"2026-12-02T13:00:{:02}Z","component":"c{n}","from":"UP","to":"DOWN","reason":"{}"}}"#,
                n % 60,
                "r".repeat(150)
            )
        };
        let transitions: Vec<String> = (0..MAX_TRANSITIONS + 10).map(transition).collect();
        let body = format!(
            r#"{{"instance":"a","status":"UP","transitions":[{}]}}"#,
            transitions.join(",")
        );
        let mut history = PeerHistory::parse(body.as_bytes()).unwrap();
        assert_eq!(history.transitions.len(), MAX_TRANSITIONS);
        let full = history.weight();
        history.fit(8 * 1024);
        assert!(history.weight() <= 8 * 1024, "{}", history.weight());
        assert!(history.weight() < full);
        assert!(!history.transitions.is_empty());
        assert_eq!(
            history.transitions[0].component.as_deref(),
            Some("c0"),
            "the newest is kept"
        );
    }
}
