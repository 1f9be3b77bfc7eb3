//! MySQL / MariaDB at DRIFTWATCH_TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306; the
//! README's test command starts one): connections, fresh databases, generated tables fitted
//! to what MariaDB holds, written and respelled, and the server's own client.

use std::path::Path;

use driftwatch::value::Value;

use crate::db::{DropDatabase, Server, TestDb};
use crate::gen::{create_table, key_strings, respelled, Case, Col, Gen, Schema};
use crate::scripts::run_client;

/// MariaDB (or MySQL) at DRIFTWATCH_TEST_MYSQL_URL, default mysql://root@127.0.0.1:3306
/// (the README's test command starts one).
pub fn mysql_base() -> String {
    std::env::var("DRIFTWATCH_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

pub fn mysql_url(db: &str) -> String {
    format!("{}/{db}", mysql_base().trim_end_matches('/'))
}

async fn mysql_connect_to(url: &str) -> mysql_async::Conn {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(url).unwrap())
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts).await.unwrap_or_else(|e| {
        panic!(
            "MySQL/MariaDB at {} (set DRIFTWATCH_TEST_MYSQL_URL): {e}",
            mysql_base()
        )
    });
    // The writers bind instants as UTC.
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    conn
}

pub async fn mysql_connect(db: &str) -> mysql_async::Conn {
    mysql_connect_to(&mysql_url(db)).await
}

/// A fresh, empty database (dropped first if a previous run could not drop it).
pub async fn mysql_database(name: &str) -> TestDb<mysql_async::Conn> {
    use mysql_async::prelude::Queryable;
    let mut admin = mysql_connect_to(&mysql_base()).await;
    admin
        .query_drop(format!(
            "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        ))
        .await
        .unwrap();
    let _ = admin.disconnect().await;
    TestDb {
        drop: DropDatabase {
            server: Server::Mysql,
            name: name.to_string(),
        },
        conn: mysql_connect(name).await,
    }
}

pub async fn mysql_database_exists(name: &str) -> bool {
    use mysql_async::prelude::Queryable;
    let mut admin = mysql_connect_to(&mysql_base()).await;
    let found: Option<String> = admin
        .exec_first(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ?",
            (name,),
        )
        .await
        .unwrap();
    let _ = admin.disconnect().await;
    found.is_some()
}

/// Applies a script to database `db` with the server's own client over TCP, as a person
/// would, from the file `file`; panics with the client's errors and the script's start.
pub fn mysql_apply(db: &str, script: &str, file: &Path) {
    std::fs::write(file, script).unwrap();
    let args = mysql_client_args(db);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_client(mysql_client(), &args, file);
}

/// The MySQL type the tests give a generated column: text with a bytewise, no-pad
/// collation (so that 'a' and 'a ' are two keys, as on the other engines).
pub fn mysql_type(c: &Col, key: bool) -> &'static str {
    match c.gen {
        Gen::Int => "bigint",
        Gen::Numeric => "decimal(65,12)",
        Gen::Float => "double",
        Gen::Text if key => "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
        Gen::Text => "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
        Gen::Bytes => "longblob",
        Gen::Timestamp => "datetime(6)",
        Gen::TimestampTz => "timestamp(6) NULL",
        Gen::Bool => "bit(1)",
        Gen::Uuid => "uuid",
        Gen::Date => "date",
        Gen::Json => "json",
    }
}

/// Moves a case's values into what MariaDB can hold: `timestamp` spans 1970..2038, so
/// instants are folded into it, and uuids get RFC 4122's version and variant bits (the
/// same way on both sides, keeping values that differ different: mutations change an
/// instant's fraction and a uuid's last byte, or the value's nullity). Inserted rows
/// whose text key is longer than an index holds are left out.
pub fn mysql_fit(case: &mut Case) {
    let fit = |v: &mut Value| {
        match v {
            Value::TimestampTz(t, _) => t.secs = 86_400 + t.secs.rem_euclid(2_000_000_000),
            // MariaDB's uuid takes RFC 4122 variants only.
            Value::Uuid(u) => {
                u[6] = (u[6] & 0x0f) | 0x40;
                u[8] = (u[8] & 0x3f) | 0x80;
            }
            _ => {}
        }
    };
    for row in case.publisher.iter_mut().chain(case.subscriber.iter_mut()) {
        row.iter_mut().for_each(fit);
    }
    // Inserted rows may have long text keys, past what an index holds: left out.
    let key_len = case.schema.key;
    let long = |row: &Vec<Value>| {
        row[..key_len]
            .iter()
            .any(|v| matches!(v, Value::Text(s) if s.len() > 200))
    };
    for row in case.subscriber.iter().filter(|r| long(r)) {
        let key = key_strings(&row[..key_len]);
        case.expected
            .retain(|(k, kind, _)| !(k == &key && kind == "extra"));
    }
    case.subscriber.retain(|r| !long(r));
}

pub async fn mysql_load(
    conn: &mut mysql_async::Conn,
    table: &str,
    schema: &Schema,
    rows: &[Vec<Value>],
) {
    use driftwatch::engine::mysql::{param, quote_ident};
    use mysql_async::prelude::Queryable;
    let create = create_table(table, schema, quote_ident, |c, key| {
        mysql_type(c, key).to_string()
    });
    conn.query_drop(format!("DROP TABLE IF EXISTS {table}; {create}"))
        .await
        .unwrap();
    let marks = format!("({})", vec!["?"; schema.cols.len()].join(", "));
    for chunk in rows.chunks(200) {
        let params: Vec<mysql_async::Value> = chunk.iter().flatten().map(param).collect();
        conn.exec_drop(
            format!(
                "INSERT INTO {table} VALUES {}",
                vec![marks.as_str(); chunk.len()].join(", ")
            ),
            params,
        )
        .await
        .unwrap();
    }
}

/// Rewrites values to an equal value of another spelling: 1.5 → 1.5 * 1.000, 0.0 → -0.0.
pub async fn mysql_rewrite(
    conn: &mut mysql_async::Conn,
    table: &str,
    schema: &Schema,
    rewrites: &[(Vec<Value>, &'static str)],
) {
    use driftwatch::engine::mysql::{param, quote_ident};
    use mysql_async::prelude::Queryable;
    for (key, column) in rewrites {
        let cond: Vec<String> = schema.cols[..schema.key]
            .iter()
            .map(|c| format!("{} = ?", quote_ident(c.name)))
            .collect();
        let set = respelled(schema, column, &quote_ident(column));
        let params: Vec<mysql_async::Value> = key.iter().map(param).collect();
        conn.exec_drop(
            format!("UPDATE {table} SET {set} WHERE {}", cond.join(" AND ")),
            params,
        )
        .await
        .unwrap();
    }
}

/// The client that applies MySQL scripts: MariaDB's `mariadb`, or `mysql`.
pub fn mysql_client() -> &'static str {
    if std::process::Command::new("mariadb")
        .arg("--version")
        .output()
        .is_ok()
    {
        "mariadb"
    } else {
        "mysql"
    }
}

/// The arguments that point [`mysql_client`] at database `db` of the test server.
pub fn mysql_client_args(db: &str) -> Vec<String> {
    let url = mysql_async::Opts::from_url(&mysql_url(db)).unwrap();
    let mut args = vec![
        "--protocol=tcp".to_string(),
        format!("--host={}", url.ip_or_hostname()),
        format!("--port={}", url.tcp_port()),
        format!("--user={}", url.user().unwrap_or("root")),
    ];
    if let Some(p) = url.pass() {
        args.push(format!("--password={p}"));
    }
    args.push(db.into());
    args
}
