//! The SQL dialects a convergence script can be written in, and what each must spell its
//! own way ([`ScriptDialect`]): `script` writes every script through this interface, and
//! each engine implements it once, for its own dialect, in `engine::<name>::dialect`,
//! beside the quoting its own statements use.
//!
//! Why a module of its own, and not `table.rs` or either side: `script` must be able to
//! speak of a dialect without depending on the engines, and the engines must implement it
//! without depending on `script`; so the interface lives beside the vocabulary, owned by
//! neither. It is not in `table.rs` because that module is the vocabulary of tables and
//! knows no SQL at all, while this one is the vocabulary of SQL spelling. Which engine
//! implements which [`Dialect`] is said once, in the engine registry
//! (`engine::ENGINES`, which also gives [`Dialect::spelling`] and [`Dialect::of`]).
//!
//! Must not: know any one dialect. Nothing here matches on a dialect or spells a statement
//! of one; what all dialects share (a hex string, a float's shortest text) is here so that
//! no engine writes it again.

use std::fmt::Write;

use crate::table::QueryColumn;
use crate::value::{Decimal, Value};

/// A dialect a script is written in. Its name (`tsql`, `postgres`, `mysql`, `sqlite`) is
/// what the CLI's `--dialect`, the HTTP `dialect` parameter and a script's header use;
/// every list of the names is derived from [`Dialect::ALL`] and [`Dialect::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Tsql,
    Postgres,
    Mysql,
    Sqlite,
}

impl Dialect {
    /// Every dialect, in the order help and error messages list them.
    pub const ALL: [Dialect; 4] = [
        Dialect::Tsql,
        Dialect::Postgres,
        Dialect::Mysql,
        Dialect::Sqlite,
    ];

    /// The dialect's name, as the CLI, the API and scripts spell it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Tsql => "tsql",
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
            Dialect::Sqlite => "sqlite",
        }
    }

    /// The dialect of this name, if there is one.
    pub fn parse(s: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Every name, `sep` between two and `last` before the last: `names(", ", " or ")`
    /// is "tsql, postgres, mysql or sqlite".
    pub fn names(sep: &str, last: &str) -> String {
        let mut out = String::new();
        for (i, d) in Dialect::ALL.iter().enumerate() {
            if i > 0 {
                out.push_str(if i + 1 == Dialect::ALL.len() {
                    last
                } else {
                    sep
                });
            }
            out.push_str(d.name());
        }
        out
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dialect::parse(s)
            .ok_or_else(|| format!("unknown dialect {s:?} ({})", Dialect::names(", ", ", ")))
    }
}

impl clap::ValueEnum for Dialect {
    fn value_variants<'a>() -> &'a [Self] {
        &Dialect::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

impl serde::Serialize for Dialect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Dialect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What one dialect spells its own way in a convergence script. `script` adds what every
/// dialect shares: NULL, unguarded statements, a table's name from its parts, and the
/// range of values a coarser-compared column matches.
pub trait ScriptDialect: Sync {
    /// An identifier, quoted so that it reads as itself whatever it holds.
    fn quote_ident(&self, name: &str) -> String;

    /// The exact literal of a value (not NULL) for `column`, the destination's column, or
    /// why the dialect cannot hold it exactly.
    fn literal(&self, column: &QueryColumn, value: &Value) -> Result<String, String>;

    /// `quoted = literal` as a condition on `column`, for a dialect whose type of it
    /// compares otherwise (json).
    fn equals(&self, column: &QueryColumn, quoted: &str, value: &Value, literal: &str) -> String {
        let _ = (column, value);
        format!("{quoted} = {literal}")
    }

    fn begin(&self) -> &'static str;

    fn commit(&self) -> &'static str {
        "COMMIT;\n"
    }

    /// Statements before the first batch (with `guards`, the table of skipped rows).
    fn prologue(&self, guards: bool) -> String;

    /// `parts` (SQL string expressions) concatenated.
    fn concat(&self, parts: &[&str]) -> String {
        parts.join(" || ")
    }

    /// Statements after the last batch of a guarded script: `message` after the count of
    /// statements whose row had changed, and the table of skipped rows dropped.
    fn epilogue(&self, message: &str) -> String {
        let text = self.concat(&["'driftwatch: '", "COUNT(*)", &format!("' {message}'")]);
        format!("SELECT {text} AS driftwatch FROM dw_skipped;\nDROP TABLE dw_skipped;\n")
    }

    /// A guarded `statement` (an UPDATE or DELETE), counted in dw_skipped when it touched
    /// no row.
    fn counted(&self, statement: &str) -> String;

    /// What an INSERT of an identity column's value adds after its column list.
    fn overriding_identity(&self) -> &'static str {
        ""
    }

    /// A guarded INSERT of `values` into `columns` while `absent` (no row has the key)
    /// holds, counted in dw_skipped otherwise.
    fn insert_absent(
        &self,
        table: &str,
        columns: &str,
        overriding: &str,
        values: &str,
        absent: &str,
    ) -> String;
}

/// Bytes as lowercase hexadecimal digits.
pub fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// Rust's shortest round-trip form: the literal reads back as exactly this double.
pub fn float_text(f: f64) -> String {
    format!("{f:?}")
}

/// The digits a decimal's integral value needs (its precision when written without an
/// exponent); 0 for NaN and the infinities.
pub fn decimal_digits(d: &Decimal) -> usize {
    match d {
        Decimal::Finite { digits, exp, .. } => digits.len() + (*exp).max(0) as usize,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_one_list() {
        assert_eq!(
            Dialect::names(", ", " or "),
            "tsql, postgres, mysql or sqlite"
        );
        assert_eq!(Dialect::names(", ", ", "), "tsql, postgres, mysql, sqlite");
        for d in Dialect::ALL {
            assert_eq!(Dialect::parse(d.name()), Some(d));
            assert_eq!(d.to_string().parse::<Dialect>(), Ok(d));
            let v = clap::ValueEnum::to_possible_value(&d).unwrap();
            assert_eq!(v.get_name(), d.name());
        }
        assert_eq!(Dialect::parse("oracle"), None);
    }
}
