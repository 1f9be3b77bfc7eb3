//! Every PostgreSQL type driftwatch compares, with its edge values: identical copies
//! are converged in both strategies (no false difference from decoding or hashing), and
//! a change to any one column is reported as exactly that column.

use driftwatch_tests as common;

use common::*;

/// A publisher and a subscriber database with one table `t`, compared in `strategy`.
fn pair_config(publisher: &str, subscriber: &str, strategy: &str) -> String {
    format!(
        "[defaults]\nconfirm_after = \"0s\"\n[databases.p]\nurl = \"{}\"\n[databases.s]\nurl = \"{}\"\n\
         [[groups]]\nname = \"g\"\npublisher = \"p\"\nsubscribers = [\"s\"]\n[[groups.tables]]\nname = \"public.t\"\nstrategy = \"{strategy}\"\n",
        pg_url(publisher),
        pg_url(subscriber)
    )
}

/// (column, type, values: each row gets one, in order; the last is what row 1 is changed to)
const COLUMNS: &[(&str, &str, &[&str])] = &[
    ("c_int2", "smallint", &["-32768", "32767", "0", "NULL", "1"]),
    (
        "c_int4",
        "integer",
        &["-2147483648", "2147483647", "0", "NULL", "1"],
    ),
    (
        "c_int8",
        "bigint",
        &[
            "-9223372036854775808",
            "9223372036854775807",
            "0",
            "NULL",
            "1",
        ],
    ),
    (
        "c_num",
        "numeric",
        &[
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "1.10",
            "1.1000000000000000001",
        ],
    ),
    (
        "c_num_scaled",
        "numeric(12,3)",
        &["-0.000", "0", "123456789.123", "NULL", "0.002"],
    ),
    (
        "c_real",
        "real",
        &["'NaN'", "'-Infinity'", "'-0'", "3.4e38", "1.5"],
    ),
    (
        "c_double",
        "double precision",
        &["'NaN'", "'Infinity'", "'-0'", "5e-324", "1.5"],
    ),
    (
        "c_bool",
        "boolean",
        &["false", "true", "NULL", "true", "false"],
    ),
    (
        "c_text",
        "text",
        &["''", "' '", "'é'", "NULL", "'e' || chr(769)"],
    ),
    (
        "c_varchar",
        "varchar(10)",
        &["'a '", "'O''Brien'", "'日本'", "NULL", "'a'"],
    ),
    (
        "c_char",
        "char(5)",
        &["'ab'", "'ab   '", "''", "NULL", "'abc'"],
    ),
    // Compared exactly, whatever equality their collation gives them: 'Abc' into 'ABC'.
    (
        "c_citext",
        "citext",
        &["'a'", "'Abc'", "''", "NULL", "'ABC'"],
    ),
    (
        "c_ci",
        "text COLLATE dw_ci",
        &["'a'", "'Abc'", "''", "NULL", "'ABC'"],
    ),
    (
        "c_bytea",
        "bytea",
        &["'\\x'", "'\\x00'", "'\\xdeadbeef'", "NULL", "'\\x0000'"],
    ),
    (
        "c_date",
        "date",
        &[
            "'infinity'",
            "'-infinity'",
            "'0001-01-01'",
            "'9999-12-31'",
            "'2000-01-01'",
        ],
    ),
    (
        "c_time",
        "time",
        &[
            "'00:00'",
            "'23:59:59.999999'",
            "'12:00'",
            "NULL",
            "'00:00:00.000001'",
        ],
    ),
    (
        "c_ts",
        "timestamp",
        &[
            "'infinity'",
            "'1970-01-01'",
            "'2000-01-01 00:00:00.000001'",
            "NULL",
            "'1970-01-01 00:00:00.000001'",
        ],
    ),
    (
        "c_tstz",
        "timestamptz",
        &[
            "'2025-06-14 02:00:00+02'",
            "'-infinity'",
            "'2000-01-01 00:00:00Z'",
            "NULL",
            "'2025-06-14 02:00:00+01'",
        ],
    ),
    (
        "c_uuid",
        "uuid",
        &[
            "'00000000-0000-0000-0000-000000000000'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            "gen_random_uuid()",
            "NULL",
            "'00000000-0000-0000-0000-000000000001'",
        ],
    ),
    (
        "c_json",
        "json",
        &[
            "'{\"b\":1, \"a\":2}'",
            "'[]'",
            "'null'",
            "NULL",
            "'{\"a\":2, \"b\":1}'",
        ],
    ),
    (
        "c_jsonb",
        "jsonb",
        &[
            "'{\"b\":1, \"a\":2}'",
            "'[]'",
            "'\"x\"'",
            "NULL",
            "'{\"a\":2,\"b\":1, \"c\":0}'",
        ],
    ),
    (
        "c_interval",
        "interval",
        &[
            "'1 day'",
            "'-1 mon 2 days 00:00:00.5'",
            "'0'",
            "NULL",
            "'24 hours'",
        ],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_postgres_type_compares_exactly() {
    let pubc = pg_database("dw_types_pub").await;
    let subc = pg_database("dw_types_sub").await;
    let cols: Vec<String> = COLUMNS.iter().map(|(n, t, _)| format!("{n} {t}")).collect();
    // citext and a nondeterministic (case-insensitive) collation, for the columns above.
    let create = format!(
        "CREATE EXTENSION IF NOT EXISTS citext; \
         CREATE COLLATION dw_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false); \
         CREATE TABLE t (id int PRIMARY KEY, {})",
        cols.join(", ")
    );
    let mut rows = Vec::new();
    for r in 0..4 {
        let values: Vec<&str> = COLUMNS.iter().map(|(_, _, v)| v[r]).collect();
        rows.push(format!("({r}, {})", values.join(", ")));
    }
    let load = format!("{create}; INSERT INTO t VALUES {}", rows.join(", "));
    pubc.batch_execute(&load).await.unwrap();
    // The same rows, copied as replication would (uuids included).
    subc.batch_execute(&create).await.unwrap();
    let dir = temp_dir();
    let config = |strategy: &str| pair_config("dw_types_pub", "dw_types_sub", strategy);
    // Copy row by row through text, the way a logical replica would apply them.
    for r in pubc
        .query("SELECT t::text FROM t ORDER BY id", &[])
        .await
        .unwrap()
    {
        let text: String = r.get(0);
        subc.execute("INSERT INTO t SELECT (($1::text)::t).*", &[&text])
            .await
            .unwrap();
    }
    for strategy in ["pushdown", "streamed"] {
        let results = run_pass(load_config(dir.path(), &config(strategy))).await;
        let (status, found) = &results[0];
        assert_eq!(status.error, None);
        assert!(
            found.is_empty(),
            "{strategy}: identical copies reported as different: {found:#?}"
        );
        assert_eq!(status.schema.unsupported, Vec::<String>::new());
    }
    // Equal values spelled otherwise are still equal.
    subc.batch_execute(
        "UPDATE t SET c_num = 1.100 WHERE id = 3; UPDATE t SET c_double = 0 WHERE id = 2;
         UPDATE t SET c_tstz = '2025-06-14 00:00:00Z' WHERE id = 0; UPDATE t SET c_jsonb = '{\"a\":2,\"b\":1}' WHERE id = 0;
         UPDATE t SET c_char = 'ab' WHERE id = 1;",
    )
    .await
    .unwrap();
    for strategy in ["pushdown", "streamed"] {
        let results = run_pass(load_config(dir.path(), &config(strategy))).await;
        assert!(
            results[0].1.is_empty(),
            "{strategy}: equal values reported as different: {:#?}",
            results[0].1
        );
    }
    // One column changed at a time: exactly that column is reported. Also values that
    // PostgreSQL's own hash functions do not tell apart, into one another: row 1 holds
    // numeric Infinity (NaN and -Infinity hash alike with it), numeric(12,3) 0 (hashed as a
    // NULL is), jsonb '[]' (as '{}' does), real -Infinity and double Infinity.
    let specials = [
        ("c_num", "'-Infinity'"),
        ("c_num", "'NaN'"),
        ("c_num_scaled", "NULL"),
        // numeric(12,3), declared alike, holds no infinity and is hashed without the
        // special part: NaN must still differ from the 0 it replaces.
        ("c_num_scaled", "'NaN'"),
        ("c_jsonb", "'{}'"),
        ("c_jsonb", "'[[]]'"),
        ("c_real", "'Infinity'"),
        ("c_double", "'NaN'"),
    ];
    let changes = COLUMNS
        .iter()
        .map(|(name, _, values)| (*name, values[4]))
        .chain(specials);
    for (name, value) in changes {
        let set = format!("UPDATE t SET {name} = {value} WHERE id = 1");
        subc.batch_execute(&set).await.unwrap();
        for strategy in ["pushdown", "streamed"] {
            let results = run_pass(load_config(dir.path(), &config(strategy))).await;
            let found: Vec<_> = results[0].1.iter().cloned().collect();
            let want = vec![(
                vec!["1".to_string()],
                "changed".to_string(),
                vec![name.to_string()],
            )];
            assert_eq!(found, want, "{strategy}: {set}");
        }
        // Put it back for the next column.
        let original: String = pubc
            .query_one(&format!("SELECT {name}::text FROM t WHERE id = 1"), &[])
            .await
            .unwrap()
            .get::<_, Option<String>>(0)
            .map(|s| format!("'{}'", s.replace('\'', "''")))
            .unwrap_or("NULL".into());
        subc.batch_execute(&format!("UPDATE t SET {name} = {original} WHERE id = 1"))
            .await
            .unwrap();
    }
}

/// The pushdown digest hashes each column under a seed of its own position and XORs the
/// column hashes: values swapped between two columns of one type, a value traded for a
/// NULL in the next column, and the values that PostgreSQL's hash functions map to their
/// seed (float 0; numeric 0, NaN and the infinities) must still change the row's hash.
/// Each case changes one row, so that the pass can only find it by its digest.
#[tokio::test]
async fn values_swapped_between_columns_are_differences() {
    let pubc = pg_database("dw_swap_pub").await;
    let subc = pg_database("dw_swap_sub").await;
    let rows = "CREATE TABLE t (id int PRIMARY KEY, f1 float8, f2 float8, n1 numeric, n2 numeric, \
                t1 text, t2 text); INSERT INTO t VALUES \
                (1, 0, 5, 0, 7, 'x', 'y'), (2, NULL, 0, NULL, 0, NULL, ''), \
                (3, 0, 0, 'NaN', 0, 'a', 'a'), (4, 0, 0, 'Infinity', '-Infinity', 'a', 'a')";
    pubc.batch_execute(rows).await.unwrap();
    subc.batch_execute(rows).await.unwrap();
    let dir = temp_dir();
    let config = |strategy: &str| pair_config("dw_swap_pub", "dw_swap_sub", strategy);
    // (row, the subscriber's change, the columns it changes)
    let cases: &[(i32, &str, &[&str])] = &[
        (1, "f1 = 5, f2 = 0", &["f1", "f2"]),
        (1, "n1 = 7, n2 = 0", &["n1", "n2"]),
        (1, "t1 = 'y', t2 = 'x'", &["t1", "t2"]),
        (2, "f1 = 0, f2 = NULL", &["f1", "f2"]),
        (2, "n1 = 0, n2 = NULL", &["n1", "n2"]),
        (2, "t1 = '', t2 = NULL", &["t1", "t2"]),
        (3, "n1 = 0, n2 = 'NaN'", &["n1", "n2"]),
        (4, "n1 = '-Infinity', n2 = 'Infinity'", &["n1", "n2"]),
        (4, "n1 = 'NaN'", &["n1"]),
    ];
    for (id, set, columns) in cases {
        subc.batch_execute(&format!("UPDATE t SET {set} WHERE id = {id}"))
            .await
            .unwrap();
        for strategy in ["pushdown", "streamed"] {
            let results = run_pass(load_config(dir.path(), &config(strategy))).await;
            assert_eq!(results[0].0.error, None);
            let found: Vec<_> = results[0].1.iter().cloned().collect();
            let want = vec![(
                vec![id.to_string()],
                "changed".to_string(),
                columns.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            )];
            assert_eq!(found, want, "{strategy}: row {id}: {set}");
        }
        // Back to the publisher's row for the next case.
        subc.batch_execute(&format!(
            "DELETE FROM t WHERE id = {id}; INSERT INTO t SELECT * FROM \
             (VALUES {}) v",
            match id {
                1 => "(1, 0::float8, 5::float8, 0::numeric, 7::numeric, 'x', 'y')",
                2 => "(2, NULL::float8, 0::float8, NULL::numeric, 0::numeric, NULL, '')",
                3 => "(3, 0::float8, 0::float8, 'NaN'::numeric, 0::numeric, 'a', 'a')",
                _ => "(4, 0::float8, 0::float8, 'Infinity'::numeric, '-Infinity'::numeric, 'a', 'a')",
            }
        ))
        .await
        .unwrap();
    }
}
