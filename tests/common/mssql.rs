//! SQL Server: T-SQL text, checked without a server.

/// Parses `sql` as T-SQL (sqlparser's MsSqlDialect), or fails the test showing it.
pub fn parse_tsql(sql: &str) {
    if let Err(e) = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MsSqlDialect {}, sql)
    {
        panic!("this does not parse as T-SQL: {e}\n{sql}");
    }
}
