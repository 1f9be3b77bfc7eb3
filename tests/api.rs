//! The public JSON's shape: every field name and value type of `GET /api/v1/status` and
//! of `check --json`, over the demo's pair, against golden files. A change to either API
//! shows in review as a change to `golden/api_status.shape.json` or
//! `golden/check_json.shape.json` (DRIFTWATCH_BLESS=1 rewrites them).

use driftwatch_tests as common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Map, Value};

/// A value's shape: objects keep their keys, arrays their first element, every other value
/// becomes its type name (a field that may be null shows as it is in the demo).
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

fn demo_config(dir: &std::path::Path) -> driftwatch::config::Config {
    let setup = driftwatch::demo::create(dir, "127.0.0.1:0").unwrap();
    let mut config = driftwatch::config::load(&setup.config_path).unwrap();
    for t in &mut config.groups[0].tables {
        t.confirm_after = Duration::from_millis(200);
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_json_keeps_its_shape() {
    let dir = temp_dir();
    let config = demo_config(dir.path());
    let service = Served::start(config).await;
    let base = service.base.clone();
    // Every table divergent, with its rows and a requested pass completed: every field
    // that can be filled is.
    let validate = reqwest::Client::new()
        .post(format!(
            "{base}/api/v1/groups/demo/tables/customers/validate"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(validate.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let text = reqwest::get(format!("{base}/api/v1/status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let status: Value = serde_json::from_str(&text).unwrap();
        let tables = status["tables"].as_array().unwrap();
        let done = tables
            .iter()
            .all(|t| t["state"] == "divergent" && !t["sample"].as_array().unwrap().is_empty())
            && !tables[0]["last_requested_pass"].is_null();
        if done {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo never settled: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The demo's first table, customers: a column on the publisher only, a time window.
    let customers = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "customers")
        .unwrap()
        .clone();
    let mut one = status.clone();
    one["tables"] = json!([customers]);
    golden(
        "api_status.shape.json",
        &serde_json::to_string_pretty(&shape(&one)).unwrap(),
    );
    service.stop(Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_json_keeps_its_shape() {
    let dir = temp_dir();
    let report = driftwatch::check::check(demo_config(dir.path()), None, Some("customers"))
        .await
        .unwrap();
    let json = serde_json::to_value(driftwatch::api::CheckReport::from(&report)).unwrap();
    golden(
        "check_json.shape.json",
        &serde_json::to_string_pretty(&shape(&json)).unwrap(),
    );
}
