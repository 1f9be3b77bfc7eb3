//! The core property, shared by every engine's test: random tables and mutations, one
//! pass, exactly the mutated keys reported.

use rand::Rng;

use crate::gen::{text_key_schema, wide_schema, Case, Schema};
use crate::service::{load_config, run_pass, sorted};

/// How many seeds a property test runs (DRIFTWATCH_PROPTEST_CASES, default 3).
pub fn proptest_cases() -> u64 {
    std::env::var("DRIFTWATCH_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// A one-table config comparing `table` (publisher) with `subscriber_table`.
pub fn pair_config(
    pub_url: &str,
    sub_url: &str,
    table: &str,
    subscriber_table: &str,
    strategy: &str,
    chunk_rows: u64,
) -> String {
    format!(
        r#"
[defaults]
confirm_after = "0s"
chunk_rows = {chunk_rows}
max_diff_rows = 1000000

[databases.pub]
url = "{pub_url}"
[databases.sub]
url = "{sub_url}"

[[groups]]
name = "g"
publisher = "pub"
subscribers = ["sub"]

[[groups.tables]]
name = "{table}"
subscriber_name = "{subscriber_table}"
strategy = "{strategy}"
"#
    )
}

/// The two table shapes of the property test: an integer-led composite key in many small
/// chunks, and a text key in one chunk larger than a fetch, so that localizing must bisect.
pub fn shapes(seed: u64) -> [(Schema, usize, u64); 2] {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    [
        (wide_schema(), rng.random_range(200..1500), 150),
        (text_key_schema(), 3000, 5000),
    ]
}

/// Runs one pass and asserts it reports exactly the case's differences, with no schema
/// drift, no skipped column, the right state and exact row counts.
pub async fn assert_exact(toml: String, dir: &std::path::Path, case: &Case, what: &str) {
    let results = run_pass(load_config(dir, &toml)).await;
    let (status, found) = &results[0];
    assert_eq!(status.error, None, "{what}");
    assert!(!status.schema.mismatch(), "{what}: {:?}", status.schema);
    assert!(
        status.schema.unsupported.is_empty(),
        "{what}: {:?}",
        status.schema
    );
    let expected = sorted(case.expected.clone());
    if *found != expected {
        let missed: Vec<_> = expected.difference(found).take(5).collect();
        let wrong: Vec<_> = found.difference(&expected).take(5).collect();
        panic!("{what}: {} expected, {} found\nnot reported: {missed:#?}\nwrongly reported: {wrong:#?}", expected.len(), found.len());
    }
    let count = |kind: &str| case.expected.iter().filter(|(_, k, _)| k == kind).count() as u64;
    let total = status.confirmed;
    assert_eq!(
        (total.missing, total.extra, total.changed),
        (count("missing"), count("extra"), count("changed")),
        "{what}"
    );
    let want = if case.expected.is_empty() {
        driftwatch::status::State::Converged
    } else {
        driftwatch::status::State::Divergent
    };
    assert_eq!(status.state, want, "{what}");
    assert_eq!(
        status.publisher_rows,
        Some(case.publisher.len() as u64),
        "{what}"
    );
    assert_eq!(
        status.subscriber_rows,
        Some(case.subscriber.len() as u64),
        "{what}"
    );
}
