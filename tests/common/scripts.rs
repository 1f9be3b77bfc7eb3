//! Convergence scripts: generated from a diff, applied with a database's own client.

use std::path::Path;

/// Diffs the only table of `config` and returns its script (header included) and counts.
pub async fn script_for(
    config: driftwatch::config::Config,
    options: &driftwatch::script::Options,
) -> (String, driftwatch::script::Summary) {
    let rt = driftwatch::runtime::Runtime::new(config).unwrap();
    let (g, t) = (
        rt.config.groups[0].name.clone(),
        rt.config.groups[0].tables[0].name.clone(),
    );
    let sub = driftwatch::diff::subscriber_of(&rt, &g, &t, None).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    let collect = async {
        let mut s = String::new();
        while let Some(piece) = rx.recv().await {
            s.push_str(&piece);
        }
        s
    };
    let generate = async move { driftwatch::diff::generate(&rt, &g, &t, &sub, options, &tx).await };
    let (generated, body) = tokio::join!(generate, collect);
    let (summary, header) = generated.unwrap_or_else(|e| panic!("{e}"));
    (header.unwrap_or_default() + &body, summary)
}

/// Applies `script` with a database's own client (psql, sqlite3, mariadb), which must
/// succeed; returns what the client printed.
pub fn run_client(program: &str, args: &[&str], script: &Path) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::fs::File::open(script).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (the test command installs it)"));
    assert!(
        out.status.success(),
        "{program} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(script)
            .unwrap()
            .chars()
            .take(3000)
            .collect::<String>()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
