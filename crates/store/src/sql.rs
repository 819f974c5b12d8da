//! SQL text shared by the SQL backends. Only quoted identifiers and placeholders are
//! ever written into statements; values are always bound.

use std::fmt::Write;

use super::rules::ROW_COLUMN;
use consort_model::value::{ColumnType, Schema};

/// How one SQL backend spells things.
pub(crate) struct Dialect {
    /// Quotes an identifier.
    pub quote: fn(&str) -> String,
    /// `$1, $2, …` (PostgreSQL) instead of `?`.
    pub numbered: bool,
    /// The definition of the row-number column (after its quoted name).
    pub row_column: &'static str,
    /// The SQL type of a column type.
    pub type_name: fn(ColumnType) -> &'static str,
    /// Appended after the closing parenthesis of `CREATE TABLE`.
    pub table_options: &'static str,
}

impl Dialect {
    fn placeholder(&self, out: &mut String, n: usize) {
        if self.numbered {
            let _ = write!(out, "${n}");
        } else {
            out.push('?');
        }
    }

    fn column_list(&self, schema: &Schema) -> String {
        let mut s = (self.quote)(ROW_COLUMN);
        for c in &schema.columns {
            s.push_str(", ");
            s.push_str(&(self.quote)(&c.name));
        }
        s
    }

    /// `CREATE TABLE` for a (staging) table; `extra` is appended inside the parentheses.
    pub fn create_table(&self, table: &str, schema: &Schema, extra: &str) -> String {
        let mut s = format!(
            "CREATE TABLE {} ({} {}",
            (self.quote)(table),
            (self.quote)(ROW_COLUMN),
            self.row_column
        );
        for c in &schema.columns {
            let _ = write!(
                s,
                ", {} {}{}",
                (self.quote)(&c.name),
                (self.type_name)(c.ty),
                if c.nullable { "" } else { " NOT NULL" }
            );
        }
        s.push_str(extra);
        s.push(')');
        s.push_str(self.table_options);
        s
    }

    /// A multi-row `INSERT` of `rows` rows.
    pub fn insert(&self, table: &str, schema: &Schema, rows: usize) -> String {
        let per_row = schema.columns.len() + 1;
        let mut s = format!(
            "INSERT INTO {} ({}) VALUES ",
            (self.quote)(table),
            self.column_list(schema)
        );
        s.reserve(rows * per_row * 4);
        let mut n = 0;
        for r in 0..rows {
            if r > 0 {
                s.push(',');
            }
            s.push('(');
            for c in 0..per_row {
                if c > 0 {
                    s.push(',');
                }
                n += 1;
                self.placeholder(&mut s, n);
            }
            s.push(')');
        }
        s
    }

    /// A page of rows ordered by row number; binds `[after,] limit`.
    pub fn select_page(&self, table: &str, schema: &Schema, after: bool) -> String {
        let row = (self.quote)(ROW_COLUMN);
        let mut s = format!(
            "SELECT {} FROM {}",
            self.column_list(schema),
            (self.quote)(table)
        );
        let mut n = 0;
        if after {
            let _ = write!(s, " WHERE {row} > ");
            n += 1;
            self.placeholder(&mut s, n);
        }
        let _ = write!(s, " ORDER BY {row} LIMIT ");
        self.placeholder(&mut s, n + 1);
        s
    }

    pub fn count(&self, table: &str) -> String {
        format!("SELECT COUNT(*) FROM {}", (self.quote)(table))
    }

    pub fn drop_table(&self, table: &str) -> String {
        format!("DROP TABLE IF EXISTS {}", (self.quote)(table))
    }
}
