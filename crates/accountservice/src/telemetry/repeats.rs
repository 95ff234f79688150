//! [`Repeats`]: a layer around the one that writes the log, which writes a warning or an error
//! of one cause once per window, counts the others, and says how many it left out with the next
//! line of that cause.
//!
//! A store outage under load fails thousands of lookups a second, each of which would write
//! the same ERROR line: the lines that matter (the first, and what else went wrong meanwhile)
//! drown, and the log sink becomes the bottleneck. With this layer the first line of each cause
//! is always written in full; the repeats within the window are counted, and the next line of
//! that cause after the window is preceded by `... 12,345 more like "account store failed" in
//! the last 10 s`.
//!
//! A cause is a place in the code that logs (its callsite) and the values the line carries (an
//! error's text, say), so two different failures reported at one place are each logged. The
//! set is bounded: at most [`MAX_CAUSES`] causes are told apart; past that, new lines share
//! their callsite's count. Lines below WARN pass untouched.

use std::{
    collections::{HashMap, hash_map::Entry},
    fmt::{self, Write as _},
    hash::{DefaultHasher, Hash as _, Hasher as _},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use tracing::{
    Event, Level, Metadata, Subscriber,
    callsite::{DefaultCallsite, Identifier},
    field::{Field, FieldSet, Visit},
    metadata::Kind,
    span,
};
use tracing_subscriber::layer::{Context, Layer};

/// The most causes told apart at once: past it, a new one shares its callsite's count. Each
/// costs a few dozen bytes.
pub const MAX_CAUSES: usize = 1024;

/// Hands `inner` (the layer that writes the log) warnings and errors of one cause once per
/// window (see the module documentation), and everything else as it comes.
#[derive(Debug)]
pub struct Repeats<L> {
    window: Duration,
    causes: Mutex<HashMap<Cause, Window>>,
    inner: L,
}

/// A callsite, and the hash of the values its line carries (`None`: every line of the
/// callsite, once [`MAX_CAUSES`] is reached).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Cause {
    callsite: Identifier,
    values: Option<u64>,
}

/// The window of one cause: when its last full line was written, and how many were left out
/// since.
#[derive(Debug, Clone, Copy)]
struct Window {
    began: Instant,
    suppressed: u64,
}

/// What to do with a line.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Write it.
    Write,
    /// Write it, after a line saying how many of its cause were left out, over how long.
    WriteAfter { suppressed: u64, over: Duration },
    /// Leave it out (counted).
    Suppress,
}

impl<L> Repeats<L> {
    /// `inner`, with windows of `window`.
    pub fn new(window: Duration, inner: L) -> Self {
        Self {
            window,
            causes: Mutex::new(HashMap::new()),
            inner,
        }
    }

    /// The verdict on a line of `callsite` carrying values hashed to `values`, at `now`.
    fn judge(&self, callsite: Identifier, values: u64, now: Instant) -> Verdict {
        let mut causes = self.causes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut cause = Cause {
            callsite,
            values: Some(values),
        };
        if causes.len() >= MAX_CAUSES && !causes.contains_key(&cause) {
            cause.values = None;
        }
        match causes.entry(cause) {
            Entry::Vacant(vacant) => {
                vacant.insert(Window {
                    began: now,
                    suppressed: 0,
                });
                Verdict::Write
            }
            Entry::Occupied(mut occupied) => {
                let window = occupied.get_mut();
                let over = now.saturating_duration_since(window.began);
                if over < self.window {
                    window.suppressed = window.suppressed.saturating_add(1);
                    return Verdict::Suppress;
                }
                let suppressed = std::mem::take(&mut window.suppressed);
                window.began = now;
                if suppressed == 0 {
                    Verdict::Write
                } else {
                    Verdict::WriteAfter { suppressed, over }
                }
            }
        }
    }
}

impl<S: Subscriber, L: Layer<S>> Layer<S> for Repeats<L> {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        // More verbose than WARN (INFO, DEBUG, TRACE) passes.
        if *metadata.level() > Level::WARN {
            return self.inner.on_event(event, ctx);
        }
        let mut values = Values::default();
        event.record(&mut values);
        let verdict = self.judge(metadata.callsite(), values.hasher.finish(), Instant::now());
        // The lock is let go: the lines are written with none held.
        match verdict {
            Verdict::Write => self.inner.on_event(event, ctx),
            Verdict::Suppress => {}
            Verdict::WriteAfter { suppressed, over } => {
                summarise(&self.inner, ctx.clone(), suppressed, over, &values.message);
                self.inner.on_event(event, ctx);
            }
        }
    }

    // Everything else goes to `inner` unchanged.

    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.inner.max_level_hint()
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(id, values, ctx);
    }

    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(id, follows, ctx);
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }
}

/// Writes, through `inner`, the line that says how many lines like `message` were left out
/// over `over`.
fn summarise<S: Subscriber, L: Layer<S>>(
    inner: &L,
    ctx: Context<'_, S>,
    suppressed: u64,
    over: Duration,
    message: &str,
) {
    let text = format!(
        "... {} more like {message:?} in the last {} s",
        thousands(suppressed),
        over.as_secs()
    );
    let fields = SUMMARY.fields();
    let (Some(message), Some(count)) = (fields.field("message"), fields.field("suppressed")) else {
        // Both are named in `SUMMARY` below.
        return;
    };
    let values: [(&Field, Option<&dyn tracing::Value>); 2] = [
        (&message, Some(&tracing::field::display(&text))),
        (&count, Some(&suppressed)),
    ];
    let values = fields.value_set(&values);
    inner.on_event(&Event::new(&SUMMARY, &values), ctx);
}

/// The summary line's description: a WARN of this module, with the count as a field.
static SUMMARY: Metadata<'static> = Metadata::new(
    "repeated lines left out",
    module_path!(),
    Level::WARN,
    Some(file!()),
    Some(line!()),
    Some(module_path!()),
    FieldSet::new(&["message", "suppressed"], Identifier(&SUMMARY_CALLSITE)),
    Kind::EVENT,
);

static SUMMARY_CALLSITE: DefaultCallsite = DefaultCallsite::new(&SUMMARY);

/// A line's values: all of them hashed (the cause), and its message (for the summary).
#[derive(Default)]
struct Values {
    hasher: DefaultHasher,
    message: String,
}

impl Visit for Values {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            // The message alone does not tell causes apart beyond its callsite, unless it
            // carries values, which the formatted text then holds.
            self.message.clear();
            let _ = write!(self.message, "{value:?}");
            self.message.hash(&mut self.hasher);
        } else {
            field.name().hash(&mut self.hasher);
            let mut text = String::new();
            let _ = write!(text, "{value:?}");
            text.hash(&mut self.hasher);
        }
    }
}

/// `12345` as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    fn callsite(n: usize) -> Identifier {
        // Two callsites the tests can name: the metadata of two distinct macros.
        let events = [
            tracing::callsite::Identifier(&CALLSITE_A),
            tracing::callsite::Identifier(&CALLSITE_B),
        ];
        events[n].clone()
    }

    /// Not zero-sized, so that two of them have two addresses, which is what tells callsites
    /// apart.
    struct Site(#[allow(dead_code)] u8);
    impl tracing::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!("never registered")
        }
    }
    static CALLSITE_A: Site = Site(0);
    static CALLSITE_B: Site = Site(1);

    #[test]
    fn the_first_of_each_cause_is_written_and_the_repeats_counted_until_the_window_ends() {
        let repeats = Repeats::new(Duration::from_secs(10), ());
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(repeats.judge(callsite(0), 1, at(0)), Verdict::Write);
        for _ in 0..12_345 {
            assert_eq!(repeats.judge(callsite(0), 1, at(3)), Verdict::Suppress);
        }
        // Another cause at the same place, and the same values at another place: each written.
        assert_eq!(repeats.judge(callsite(0), 2, at(3)), Verdict::Write);
        assert_eq!(repeats.judge(callsite(1), 1, at(3)), Verdict::Write);
        assert_eq!(
            repeats.judge(callsite(0), 1, at(11)),
            Verdict::WriteAfter {
                suppressed: 12_345,
                over: Duration::from_secs(11)
            }
        );
        assert_eq!(repeats.judge(callsite(0), 1, at(12)), Verdict::Suppress);
        // A window with nothing left out: the next line needs no summary.
        assert_eq!(repeats.judge(callsite(1), 1, at(20)), Verdict::Write);
    }

    #[test]
    fn past_the_cap_new_causes_share_their_callsite_s_count() {
        let repeats = Repeats::new(Duration::from_secs(10), ());
        let now = Instant::now();
        for values in 0..MAX_CAUSES as u64 {
            assert_eq!(repeats.judge(callsite(0), values, now), Verdict::Write);
        }
        assert_eq!(
            repeats.judge(callsite(0), u64::MAX, now),
            Verdict::Write,
            "the shared one's first"
        );
        assert_eq!(
            repeats.judge(callsite(0), u64::MAX - 1, now),
            Verdict::Suppress
        );
        assert_eq!(repeats.judge(callsite(1), 7, now), Verdict::Write);
        assert_eq!(repeats.judge(callsite(1), 8, now), Verdict::Suppress);
        let held = repeats.causes.lock().unwrap().len();
        assert_eq!(
            held,
            MAX_CAUSES + 2,
            "bounded: the cap and one per callsite"
        );
    }

    #[test]
    fn counts_are_written_with_thousands_separators() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (12_345, "12,345"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }

    /// Every line that reaches the writer, as text.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Lines {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let mut values = Values::default();
            event.record(&mut values);
            self.0.lock().unwrap().push(values.message);
        }
    }

    #[test]
    fn through_a_subscriber_a_flood_of_one_error_becomes_one_line_then_a_summary() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry()
            .with(Repeats::new(Duration::from_millis(50), lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let fail = |n: u32| tracing::error!(error = "read failed", "account store failed {n}");
            let started = Instant::now();
            // Until the window has passed (polled, bounded): every line after the first is
            // counted, not written; then the next one comes with the summary.
            let mut sent = 0;
            let errors = || {
                lines
                    .0
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|line| !line.contains("info lines"))
                    .count()
            };
            while errors() < 3 {
                assert!(started.elapsed() < Duration::from_secs(10), "no summary");
                fail(0);
                sent += 1;
                tracing::info!("info lines always pass");
            }
            let lines = lines.0.lock().unwrap().clone();
            let errors: Vec<&String> = lines
                .iter()
                .filter(|line| !line.contains("info lines"))
                .collect();
            assert_eq!(errors.len(), 3, "{errors:?}");
            assert_eq!(errors[0], "account store failed 0");
            assert!(
                errors[1].starts_with("... ")
                    && errors[1].contains("more like \"account store failed 0\" in the last 0 s"),
                "{errors:?}"
            );
            assert_eq!(errors[2], "account store failed 0");
            assert_eq!(
                lines
                    .iter()
                    .filter(|line| line.contains("info lines"))
                    .count(),
                sent
            );
        });
    }
}
