//! driftwatch-tests' shared helpers (the crate's library, compiled once for every test
//! binary): real databases (PostgreSQL and MariaDB on loopback, SQLite files), random tables
//! with hostile values, random mutations whose differences are known exactly, and the
//! driftwatch binary. Nothing here mocks a database.
//!
//! A module per engine or concern; everything but [`replication`] is re-exported at the
//! root, so a test file's `use driftwatch_tests as common; use common::*;` reaches it all.

// No tests of its own: `cargo test --all-targets` builds a test harness of every library
// anyway, and this keeps that one empty instead of compiling the helpers a second time.
#![cfg(not(test))]

pub mod db;
pub mod gen;
pub mod golden;
pub mod mssql;
pub mod mysql;
pub mod postgres;
pub mod property;
pub mod replication;
pub mod scripts;
pub mod service;
pub mod sqlite;

pub use db::*;
pub use gen::*;
pub use golden::*;
pub use mssql::*;
pub use mysql::*;
pub use postgres::*;
pub use property::*;
pub use scripts::*;
pub use service::*;
pub use sqlite::*;
