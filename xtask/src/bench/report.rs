//! `BENCHMARKS.md` rendered from the results through one template
//! (`BENCHMARKS.md.jinja`), keeping the hand-written notes of the previous file.

use anyhow::Result;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior, syntax::SyntaxConfig};

use super::results::Results;

/// Start and end markers of the hand-written part of `BENCHMARKS.md`.
const NOTES_START: &str = "<!-- notes: written by hand, kept by `cargo xtask bench` -->";
const NOTES_END: &str = "<!-- /notes -->";

/// The notes between the markers of an existing `BENCHMARKS.md`.
pub fn notes(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once(NOTES_START)?;
    Some(rest.split_once(NOTES_END)?.0.trim_matches('\n'))
}

/// Renders `BENCHMARKS.md`.
pub fn render(results: &Results, notes: Option<&str>) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let mut syntax = SyntaxConfig::builder();
    syntax
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true);
    env.set_syntax(syntax.build()?);
    env.add_filter("thousands", thousands);
    env.add_filter("time", time);
    env.add_filter("mb", mb);
    env.add_filter("pct", |share: f64| format!("{:.0}%", share * 100.0));
    // `-` for a ratio not taken (no reference).
    env.add_filter("fixed", |value: Option<f64>, digits: Option<usize>| {
        value.map_or("-".to_owned(), |v| format!("{v:.*}", digits.unwrap_or(2)))
    });
    env.add_filter("show", |value: Option<f64>, unit: &str| {
        match (value, unit) {
            (None, _) => "not measured".to_owned(),
            (Some(v), "seconds") => time(v),
            (Some(v), "bytes") => mb(v),
            (Some(v), "count") => thousands(v),
            (Some(v), _) => format!("{v:.2}"),
        }
    });
    let context = minijinja::context! {
        r => Value::from(Serde(results)),
        notes => notes.unwrap_or("(none yet: findings and profiles go here, by hand)"),
        notes_start => NOTES_START,
        notes_end => NOTES_END,
        target => crate::dist::TARGET,
        floor_flags => super::probe::FLOOR_FLAGS,
        script => super::wrk::script("/accounts/", Some((super::FIRST_ID, super::BASE_ACCOUNTS))),
    };
    Ok(env.render_str(include_str!("BENCHMARKS.md.jinja"), context)?)
}

/// A latency in µs below a millisecond, else in ms or s.
fn time(seconds: f64) -> String {
    match seconds * 1e6 {
        micros if micros < 1000.0 => format!("{micros:.0} µs"),
        micros if micros < 1e6 => format!("{:.2} ms", micros / 1e3),
        _ => format!("{seconds:.2} s"),
    }
}

fn mb(bytes: f64) -> String {
    format!("{:.2} MB", bytes / 1e6)
}

/// A number rounded to a whole one, with thousands separators: `1,000,000`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0)).into_bytes();
    let groups = digits.rchunks(3).rev().map(String::from_utf8_lossy);
    groups.collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::super::results::{CurvePoint, Instructions};
    use super::*;

    #[test]
    fn numbers_are_shown_readably() {
        let shown = [
            thousands(0.0),
            thousands(999.0),
            thousands(1e6),
            thousands(81_234.6),
        ];
        assert_eq!(shown, ["0", "999", "1,000,000", "81,235"]);
        assert_eq!(
            [time(0.000_612), time(0.001_234), time(2.5)],
            ["612 µs", "1.23 ms", "2.50 s"]
        );
    }

    #[test]
    fn the_notes_between_the_markers_are_found() {
        let text = format!(
            "# Benchmarks\n## Notes\n\n{NOTES_START}\nProfiled: x.\n\nMore.\n{NOTES_END}\n"
        );
        assert_eq!(notes(&text), Some("Profiled: x.\n\nMore."));
        assert_eq!(notes("# Benchmarks\nno markers\n"), None);
    }

    #[test]
    fn the_template_renders_every_figure_and_keeps_the_notes() {
        let mut r = Results::default();
        r.machine.opt_level = "\"s\"".into();
        (r.main.accounts.rate, r.main.accounts.rate_ratio) = (68_170.4, Some(0.764));
        r.management_port.rate_ratio = Some(0.981);
        r.curve.push(CurvePoint {
            connections: 10,
            ..CurvePoint::default()
        });
        (r.scale.accounts, r.scale.seeding) = (1000, 0.5);
        let instructions = Instructions {
            yardstick: 6000.0,
            health: 15_000.0,
            ..Default::default()
        };
        r.instructions = Some(instructions);
        r.finish();
        let text = render(&r, Some("Kept.")).unwrap();
        for expected in [
            "| `/accounts/{id}` | 68,170 | 0.76 |",
            "| `/health` | 15,000 | 2.5 |",
            "`opt-level = \"s\"`",
            "without (same rounds) | ≥ 0.97 | 0.98 | met |",
            "**0.98 × the requests/s without it**",
            &format!("{NOTES_START}\nKept.\n{NOTES_END}"),
        ] {
            assert!(text.contains(expected), "{expected} not in\n{text}");
        }
        assert_eq!(notes(&text), Some("Kept."));
    }

    #[test]
    fn problems_are_listed_below_the_targets() {
        let mut r = Results::default();
        (r.scale.accounts, r.scale.seeding) = (1000, 0.5);
        let clean = render(&r, None).unwrap();
        assert!(!clean.contains("Errors and crashes"));
        r.problems = vec!["one".into(), "two".into()];
        r.finish();
        let text = render(&r, None).unwrap();
        let listed = "| **not met** |\n\nErrors and crashes:\n- one\n- two\n\nThe big";
        assert!(text.contains(listed), "{text}");
    }
}
