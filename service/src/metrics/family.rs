//! Gauge and counter families kept as exposition text, for the metrics with a series per
//! table: a series' line is written when its value changes, so that a scrape copies text
//! instead of rebuilding every series.
//!
//! The prometheus crate's gather clones every label of every series into a new message and
//! sorts them, at each scrape: at a thousand tables (8,000 series) that was two thirds of
//! a scrape's time. The text written here is the crate's text format (the same escaping,
//! the same number format), so that both render into one exposition. A family must not be
//! given unbounded label values (keys, values, ranges): a series lives until it is removed.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, RwLock};

/// The families kept as text, in the order they were made (and render).
#[derive(Default)]
pub struct TextFamilies(Vec<Arc<Family>>);

/// A gauge whose series exist while they are set.
pub struct GaugeFamily(Arc<Family>);

/// A counter: its series only go up, from the first increment on.
pub struct CounterFamily(Arc<Family>);

impl TextFamilies {
    fn register(&mut self, family: Family) -> Arc<Family> {
        let family = Arc::new(family);
        self.0.push(family.clone());
        family
    }

    /// Every family with a series, one after the other.
    pub fn render(&self, out: &mut String) {
        for family in &self.0 {
            family.render(out);
        }
    }
}

impl GaugeFamily {
    /// `name` without the `driftwatch_` prefix, which the family adds.
    pub fn new(
        families: &mut TextFamilies,
        name: &str,
        help: &str,
        labels: &'static [&'static str],
    ) -> GaugeFamily {
        GaugeFamily(families.register(Family::new(name, help, "gauge", labels)))
    }

    pub fn set(&self, values: &[&str], value: f64) {
        self.0.update(values, |_| value);
    }

    pub fn remove(&self, values: &[&str]) {
        self.0.remove(values);
    }
}

impl CounterFamily {
    /// `name` without the `driftwatch_` prefix, which the family adds.
    pub fn new(
        families: &mut TextFamilies,
        name: &str,
        help: &str,
        labels: &'static [&'static str],
    ) -> CounterFamily {
        CounterFamily(families.register(Family::new(name, help, "counter", labels)))
    }

    pub fn inc(&self, values: &[&str]) {
        self.0.update(values, |v| v + 1.0);
    }
}

struct Family {
    name: String,
    labels: &'static [&'static str],
    /// `# HELP` and `# TYPE`.
    header: String,
    /// By the series' name and labels as written, which keeps a scrape's order stable.
    series: RwLock<BTreeMap<String, Sample>>,
}

struct Sample {
    value: f64,
    /// The value as the exposition writes it.
    text: String,
}

impl Family {
    fn new(name: &str, help: &str, kind: &str, labels: &'static [&'static str]) -> Family {
        let name = format!("driftwatch_{name}");
        let mut header = format!("# HELP {name} ");
        escape(help, false, &mut header);
        write!(header, "\n# TYPE {name} {kind}\n").expect("writing to a String succeeds");
        Family {
            name,
            labels,
            header,
            series: RwLock::new(BTreeMap::new()),
        }
    }

    /// `name{label="value",...}`, as a sample line starts.
    fn series_name(&self, values: &[&str]) -> String {
        assert_eq!(
            values.len(),
            self.labels.len(),
            "{} takes the labels {:?}",
            self.name,
            self.labels
        );
        let mut s = String::with_capacity(self.name.len() + 16 * values.len() + 2);
        s.push_str(&self.name);
        for (i, (label, value)) in self.labels.iter().zip(values).enumerate() {
            s.push(if i == 0 { '{' } else { ',' });
            s.push_str(label);
            s.push_str("=\"");
            escape(value, true, &mut s);
            s.push('"');
        }
        if !values.is_empty() {
            s.push('}');
        }
        s
    }

    fn update(&self, values: &[&str], f: impl FnOnce(f64) -> f64) {
        let name = self.series_name(values);
        let mut series = self.series.write().unwrap();
        let sample = series.entry(name).or_insert(Sample {
            value: 0.0,
            text: String::new(),
        });
        sample.value = f(sample.value);
        sample.text.clear();
        write!(sample.text, "{}", sample.value).expect("writing to a String succeeds");
    }

    fn remove(&self, values: &[&str]) {
        let name = self.series_name(values);
        self.series.write().unwrap().remove(&name);
    }

    /// Nothing while the family has no series, as the crate's encoder does.
    fn render(&self, out: &mut String) {
        let series = self.series.read().unwrap();
        if series.is_empty() {
            return;
        }
        out.push_str(&self.header);
        for (name, sample) in series.iter() {
            out.push_str(name);
            out.push(' ');
            out.push_str(&sample.text);
            out.push('\n');
        }
    }
}

/// The text format's escaping: a backslash and a line feed always, a double quote in a
/// label value.
fn escape(s: &str, quote: bool, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

    const LABELS: &[&str] = &["group", "table"];

    /// Label values and numbers that the text format escapes or writes specially.
    const SERIES: &[(&str, &str, f64)] = &[
        ("g", "t", 1.0),
        ("g", "quote\"d", -3.0),
        ("back\\slash", "new\nline", 0.25),
        ("ünïcödé", "", 1_796_000_000.123_456),
        ("g", "t2", 1e21),
        ("g", "t3", f64::NAN),
        ("g", "t4", f64::INFINITY),
    ];

    /// The crate's encoder is the reference: the same series render to the same lines.
    #[test]
    fn the_text_is_the_prometheus_crates() {
        let help = "Help with a \\ backslash, a \"quote\" and a\nline feed";
        let registry = Registry::new_custom(Some("driftwatch".into()), None).unwrap();
        let gauges = GaugeVec::new(Opts::new("g", help), LABELS).unwrap();
        let counters = IntCounterVec::new(Opts::new("c", help), LABELS).unwrap();
        registry.register(Box::new(gauges.clone())).unwrap();
        registry.register(Box::new(counters.clone())).unwrap();
        let mut families = TextFamilies::default();
        let gauge = GaugeFamily::new(&mut families, "g", help, LABELS);
        let counter = CounterFamily::new(&mut families, "c", help, LABELS);
        for &(a, b, v) in SERIES {
            gauges.with_label_values(&[a, b]).set(v);
            gauge.set(&[a, b], v);
            counters.with_label_values(&[a, b]).inc_by(2);
            counter.inc(&[a, b]);
            counter.inc(&[a, b]);
        }
        let mut expected = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut expected)
            .unwrap();
        let mut text = String::new();
        families.render(&mut text);
        let sorted = |s: &str| {
            // Both write one family after the other; within one, the series' order differs.
            let mut lines: Vec<String> = s.lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted(&text), sorted(&String::from_utf8(expected).unwrap()));
        assert_eq!(text.lines().count(), 2 * (2 + SERIES.len()));
    }

    #[test]
    fn a_removed_series_is_gone_and_an_empty_family_writes_nothing() {
        let mut families = TextFamilies::default();
        let gauge = GaugeFamily::new(&mut families, "g", "help", LABELS);
        gauge.set(&["g", "t"], 2.0);
        gauge.set(&["g", "u"], 3.0);
        gauge.set(&["g", "t"], 4.0);
        gauge.remove(&["g", "u"]);
        let mut text = String::new();
        families.render(&mut text);
        assert_eq!(
            text,
            "# HELP driftwatch_g help\n# TYPE driftwatch_g gauge\n\
             driftwatch_g{group=\"g\",table=\"t\"} 4\n"
        );
        gauge.remove(&["g", "t"]);
        gauge.remove(&["g", "never set"]);
        let mut text = String::new();
        families.render(&mut text);
        assert_eq!(text, "");
    }

    #[test]
    #[should_panic(expected = "driftwatch_g takes the labels")]
    fn the_wrong_number_of_label_values_is_a_bug() {
        GaugeFamily::new(&mut TextFamilies::default(), "g", "help", LABELS).set(&["g"], 1.0);
    }
}
