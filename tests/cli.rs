//! The `driftwatch` binary as a user runs it: the demo binding before it prints (and
//! refusing a taken port with a hint), the demo's suggested fix script landing in the
//! demo's directory, and log lines on a pipe: no colour codes, the schema warning as
//! readable fields in text and in JSON.

use driftwatch_tests as common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

fn driftwatch() -> Command {
    Command::new(driftwatch_tests::bin())
}

/// Kills the child (by its own handle) when a test ends, passed or failed.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_demo_refuses_a_taken_port_before_printing_anything() {
    let dir = temp_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = driftwatch()
        .args(["demo", "--listen", &addr, "--dir"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "nothing printed before the bind failed"
    );
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[test]
fn the_demo_prints_urls_that_answer_and_a_fix_script_path_in_its_directory() {
    let dir = temp_dir();
    let demo_dir = dir.path().join("demo");
    let mut child = Running(
        driftwatch()
            .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
            .arg(&demo_dir)
            // From elsewhere: the suggested output must not depend on where one stands.
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut base = None;
    let mut diff = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("open   ") {
            base = Some(url.split_whitespace().next().unwrap().to_string());
        }
        if line.contains(" diff --config ") {
            diff = Some(line);
            break;
        }
    }
    let base = base.expect("the demo prints the page's URL");
    assert!(!base.ends_with(":0/"), "the bound port, not 0: {base}");
    // Printed means bound: the first request answers, no retry.
    let body = http_get(&format!("{base}healthz"));
    assert_eq!(body, "ok\n");
    let diff = diff.expect("the demo suggests a diff");
    let fix = std::path::absolute(&demo_dir).unwrap().join("fix.sql");
    assert!(
        diff.ends_with(&format!("-o {}", fix.display())),
        "the fix script goes into the demo's directory: {diff}"
    );
}

/// One GET over a plain TCP stream (the tests' reqwest has no blocking client).
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// A converged pair whose publisher has a column the subscriber lacks.
fn schema_drift_config(dir: &Path) -> std::path::PathBuf {
    for (name, extra) in [("a.db", ", note TEXT"), ("b.db", "")] {
        let c = rusqlite::Connection::open(dir.join(name)).unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT{extra}); \
             INSERT INTO t (id, v) VALUES (1, 'x'), (2, 'y');"
        ))
        .unwrap();
    }
    write_config(
        dir,
        &format!(
            "[databases.a]\nurl = \"{}\"\n[databases.b]\nurl = \"{}\"\n\
             [[groups]]\nname = \"g\"\npublisher = \"a\"\nsubscribers = [\"b\"]\n\
             [[groups.tables]]\nname = \"t\"\n",
            sqlite_url(&dir.join("a.db")),
            sqlite_url(&dir.join("b.db"))
        ),
    )
}

#[test]
fn logs_on_a_pipe_carry_no_colour_and_the_schema_warning_as_fields() {
    let dir = temp_dir();
    let config = schema_drift_config(dir.path());
    let text = driftwatch()
        .args(["check", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(
        !stderr.contains('\x1b'),
        "no ANSI codes on a pipe: {stderr:?}"
    );
    let warning = stderr
        .lines()
        .find(|l| l.contains("schema differs"))
        .unwrap_or_else(|| panic!("the schema warning: {stderr}"));
    assert!(!warning.contains("SchemaReport"), "{warning}");
    assert!(warning.contains("publisher_only=note"), "{warning}");

    let json = driftwatch()
        .args(["check", "--log-format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&json.stderr);
    let warning: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("schema differs"))
        })
        .unwrap_or_else(|| panic!("the schema warning as JSON: {stderr}"));
    assert_eq!(warning["publisher_only"], "note", "{warning}");
    assert_eq!(warning["subscriber_only"], "", "{warning}");
    assert_eq!(warning["table"], "t", "{warning}");
    assert!(warning.get("schema").is_none(), "{warning}");
}

#[test]
fn script_requests_and_refusals_are_logged_as_one_json_line_each_without_the_token() {
    let dir = temp_dir();
    let config = schema_drift_config(dir.path());
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[server]\napi_token_file = \"token\"\n{text}"),
    )
    .unwrap();
    let mut child = Running(
        driftwatch()
            .args([
                "serve",
                "--log-format",
                "json",
                "--listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(&config)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            assert!(!line.contains("s3cret"), "the token in a log line: {line}");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| loop {
        let v = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no log line {what:?}"));
        if v["message"] == what {
            return v;
        }
    };
    let addr = next("driftwatch listening")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |path: &str, token: bool| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let auth = if token {
            "Authorization: Bearer s3cret\r\n"
        } else {
            ""
        };
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let path = "/api/v1/groups/g/tables/t/script?subscriber=b";
    assert!(get(path, false).starts_with("HTTP/1.1 401"));
    let refused = next("request refused");
    assert_eq!(
        refused["route"],
        "/api/v1/groups/{group}/tables/{table}/script"
    );
    assert_eq!(refused["path"], "/api/v1/groups/g/tables/t/script");
    assert_eq!(refused["outcome"], "unauthorized");
    assert!(refused["client"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    assert!(get(path, true).starts_with("HTTP/1.1 200"));
    let served = next("script request");
    for (field, value) in [
        ("group", "g"),
        ("table", "t"),
        ("subscriber", "b"),
        ("dialect", "sqlite"),
        ("mode", "fix"),
        ("outcome", "served"),
    ] {
        assert_eq!(served[field], value, "{field}: {served}");
    }
    assert!(served["client"].as_str().unwrap().starts_with("127.0.0.1:"));
}
