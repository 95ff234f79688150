//! `BENCHMARKS.md` rendered from the results through one template
//! (`BENCHMARKS.md.jinja`), keeping the hand-written notes of the previous file.

use std::path::Path;

use anyhow::Result;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior, syntax::SyntaxConfig};

use super::results::Results;

const TEMPLATE: &str = include_str!("BENCHMARKS.md.jinja");
/// Start and end markers of the hand-written part of `BENCHMARKS.md`.
const NOTES_START: &str = "<!-- notes: written by hand, kept by `cargo xtask bench` -->";
const NOTES_END: &str = "<!-- /notes -->";

/// The notes between the markers of an existing `BENCHMARKS.md`.
pub fn notes(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once(NOTES_START)?;
    let (notes, _) = rest.split_once(NOTES_END)?;
    Some(notes.trim_matches('\n'))
}

/// Renders `BENCHMARKS.md`; `work_dir` is shown as `$BENCH_DIR` in command lines.
pub fn render(results: &Results, work_dir: &Path, notes: Option<&str>) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()?,
    );
    env.add_filter("thousands", |value: f64| thousands(value));
    env.add_filter("time", |seconds: f64| time(seconds));
    env.add_filter("mb", |bytes: f64| format!("{:.2} MB", bytes / 1e6));
    env.add_filter("ratio", |value: Option<f64>| {
        value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
    });
    env.add_filter("fixed", |value: f64, digits: usize| {
        format!("{value:.digits$}")
    });
    env.add_filter("pct", |share: f64| format!("{:.0}%", share * 100.0));
    env.add_filter("show", |value: Option<f64>, unit: &str| {
        match (value, unit) {
            (None, _) => "not measured".to_owned(),
            (Some(v), "seconds") => time(v),
            (Some(v), "bytes") => format!("{:.2} MB", v / 1e6),
            (Some(v), "count") => thousands(v),
            (Some(v), _) => format!("{v:.2}"),
        }
    });
    let work = work_dir.display().to_string();
    env.add_filter("bench_dir", move |line: &str| {
        line.replace(&work, "$BENCH_DIR")
    });
    env.add_template("BENCHMARKS.md", TEMPLATE)?;
    let context = minijinja::context! {
        r => Value::from(Serde(results)),
        notes => notes.unwrap_or("(none yet: findings and profiles go here, by hand)"),
        notes_start => NOTES_START,
        notes_end => NOTES_END,
        target => crate::dist::TARGET,
        floor_flags => super::probe::FLOOR_FLAGS.split_whitespace().collect::<Vec<_>>().join(" "),
        script => super::wrk::script("/accounts/", Some((super::FIRST_ID, super::BASE_ACCOUNTS))),
    };
    Ok(env.get_template("BENCHMARKS.md")?.render(context)?)
}

/// A latency in µs below a millisecond, else in ms or s.
fn time(seconds: f64) -> String {
    match seconds * 1e6 {
        micros if micros < 1000.0 => format!("{micros:.0} µs"),
        micros if micros < 1e6 => format!("{:.2} ms", micros / 1e3),
        _ => format!("{seconds:.2} s"),
    }
}

/// A number rounded to a whole one, with thousands separators: `1,000,000`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::results::{CurvePoint, Instructions, Row, Scale};
    use super::*;

    #[test]
    fn numbers_are_shown_readably() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(81_234.6), "81,235");
        assert_eq!(time(0.000_612), "612 µs");
        assert_eq!(time(0.001_234), "1.23 ms");
        assert_eq!(time(2.5), "2.50 s");
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
        let mut results = Results {
            clean_exit: true,
            commands: vec!["wrk -s /tmp/w/a.lua".into()],
            ..Results::default()
        };
        results.main.accounts = Row {
            rate: 68_170.4,
            rate_ratio: Some(0.764),
            ..Row::default()
        };
        results.curve.push(CurvePoint {
            connections: 10,
            ..CurvePoint::default()
        });
        results.scale = Scale {
            accounts: 1000,
            seeding: 0.5,
            file_size: 100_000,
            ..Scale::default()
        };
        results.instructions = Some(Instructions {
            yardstick: 6000.0,
            health: 15_000.0,
            ..Instructions::default()
        });
        results.finish();
        let text = render(&results, Path::new("/tmp/w"), Some("Kept.")).unwrap();
        assert!(
            text.contains("| `/accounts/{id}` | 68,170 | 0.76 |"),
            "{text}"
        );
        assert!(text.contains("| `/health` | 15,000 | 2.5 |"), "{text}");
        assert!(text.contains("wrk -s $BENCH_DIR/a.lua"));
        assert!(text.contains(&format!("{NOTES_START}\nKept.\n{NOTES_END}")));
        assert_eq!(notes(&text), Some("Kept."));
    }
}
