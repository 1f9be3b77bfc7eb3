//! PostgreSQL on loopback (DRIFTWATCH_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432;
//! the README's test command starts one): connections, fresh databases, and generated tables
//! written and respelled.

use driftwatch::engine::postgres::{literal, quote_ident};
use driftwatch::value::Value;

use crate::db::{DropDatabase, Server, TestDb};
use crate::gen::{create_table, respelled, Schema};

pub fn pg_base() -> String {
    std::env::var("DRIFTWATCH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn pg_url(db: &str) -> String {
    format!("{}/{db}?sslmode=disable", pg_base().trim_end_matches('/'))
}

pub async fn pg_connect(db: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg_url(db), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} (set DRIFTWATCH_TEST_PG_URL): {e}",
                pg_base()
            )
        });
    tokio::spawn(conn);
    client
}

/// A fresh, empty database (dropped first if a previous run could not drop it).
pub async fn pg_database(name: &str) -> TestDb<tokio_postgres::Client> {
    let admin = pg_connect("postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    TestDb {
        drop: DropDatabase {
            server: Server::Postgres,
            name: name.to_string(),
        },
        conn: pg_connect(name).await,
    }
}

pub async fn pg_database_exists(name: &str) -> bool {
    pg_connect("postgres")
        .await
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

pub async fn pg_load(
    client: &tokio_postgres::Client,
    table: &str,
    schema: &Schema,
    rows: &[Vec<Value>],
) {
    let create = create_table(table, schema, quote_ident, |c, _| c.pg.to_string());
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}; {create}"))
        .await
        .unwrap();
    for chunk in rows.chunks(200) {
        let values: Vec<String> = chunk
            .iter()
            .map(|row| {
                format!(
                    "({})",
                    row.iter()
                        .zip(&schema.cols)
                        .map(|(v, c)| literal(v, c.pg))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        client
            .batch_execute(&format!("INSERT INTO {table} VALUES {}", values.join(", ")))
            .await
            .unwrap();
    }
}

/// Rewrites values to an equal value of another spelling: 1.5 → 1.50, 0.0 → -0.0.
pub async fn pg_rewrite(
    client: &tokio_postgres::Client,
    table: &str,
    schema: &Schema,
    rewrites: &[(Vec<Value>, &'static str)],
) {
    for (key, column) in rewrites {
        let cond: Vec<String> = schema.cols[..schema.key]
            .iter()
            .zip(key)
            .map(|(c, v)| format!("{} = {}", quote_ident(c.name), literal(v, c.pg)))
            .collect();
        let set = respelled(schema, column, &quote_ident(column));
        client
            .batch_execute(&format!(
                "UPDATE {table} SET {set} WHERE {}",
                cond.join(" AND ")
            ))
            .await
            .unwrap();
    }
}
