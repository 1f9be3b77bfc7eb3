//! Golden files (tests/golden/): generated text compared byte for byte.

use std::path::Path;

/// Compares `actual` with the golden file `tests/golden/{name}`; DRIFTWATCH_BLESS=1
/// rewrites the file instead.
pub fn golden(name: &str, actual: &str) {
    // The generation time is the one line that changes from run to run.
    let actual: String = actual
        .lines()
        .filter(|l| !l.starts_with("-- Generated:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name);
    if std::env::var_os("DRIFTWATCH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with DRIFTWATCH_BLESS=1", path.display()));
    assert!(
        expected == actual,
        "{name} differs from its golden file (DRIFTWATCH_BLESS=1 rewrites it):\n{actual}"
    );
}
