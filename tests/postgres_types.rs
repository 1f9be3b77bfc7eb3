//! Every PostgreSQL type driftwatch compares, with its edge values: identical copies
//! are converged in both strategies (no false difference from decoding or hashing), and
//! a change to any one column is reported as exactly that column.

use driftwatch_tests as common;

use common::*;

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
    let config = |strategy: &str| {
        format!(
            "[defaults]\nconfirm_after = \"0s\"\n[databases.p]\nurl = \"{}\"\n[databases.s]\nurl = \"{}\"\n\
             [[groups]]\nname = \"g\"\npublisher = \"p\"\nsubscribers = [\"s\"]\n[[groups.tables]]\nname = \"public.t\"\nstrategy = \"{strategy}\"\n",
            pg_url("dw_types_pub"),
            pg_url("dw_types_sub")
        )
    };
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
