//! Typed values, columns and schemas: the vocabulary of every crate that handles rows.

use serde::{Deserialize, Serialize};

/// The column types consort infers and stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Integer,
    Float,
    Boolean,
    Text,
    Date,
    Timestamp,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::Boolean => "boolean",
            ColumnType::Text => "text",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
        }
    }

    /// The type named `s` (as in recipes and schemas), if any.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "integer" | "int" | "bigint" => ColumnType::Integer,
            "float" | "double" | "real" => ColumnType::Float,
            "boolean" | "bool" => ColumnType::Boolean,
            "text" | "string" => ColumnType::Text,
            "date" => ColumnType::Date,
            "timestamp" | "datetime" => ColumnType::Timestamp,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One column of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub nullable: bool,
}

/// The ordered columns of a dataset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub columns: Vec<Column>,
}

impl Schema {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

/// Text of a [`Value`]: up to 24 bytes are kept inline, longer text on the heap. Most
/// cells are short (names, codes, identifiers), and a row's texts were each an allocation
/// made on one core and freed on another, about a tenth of an ingest's CPU time.
pub type Text = compact_str::CompactString;

/// One cell. Dates are calendar days; timestamps are UTC with microsecond precision.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Text(Text),
    Date(chrono::NaiveDate),
    Timestamp(chrono::DateTime<chrono::Utc>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The type of a non-null value.
    pub fn column_type(&self) -> Option<ColumnType> {
        Some(match self {
            Value::Null => return None,
            Value::Integer(_) => ColumnType::Integer,
            Value::Float(_) => ColumnType::Float,
            Value::Boolean(_) => ColumnType::Boolean,
            Value::Text(_) => ColumnType::Text,
            Value::Date(_) => ColumnType::Date,
            Value::Timestamp(_) => ColumnType::Timestamp,
        })
    }
}

/// One row: a value per schema column, in schema order.
pub type Row = Vec<Value>;

/// The one total order on values, which every layer uses (the planner's group keys,
/// ORDER BY and join keys; the stores' sorted groups): NULL first, then numbers (integers
/// and floats numerically, `-0.0` equal to `0.0` as in SQL), then booleans (`false <
/// true`), text (by code point), dates, timestamps. Values of different types order by
/// type, which never happens within one column. Floats in datasets are finite (ingest
/// refuses the rest); a NaN, should one arise in arithmetic, sorts by `total_cmp` so the
/// order stays total.
pub fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Integer(_) | Value::Float(_) => 1,
            Value::Boolean(_) => 2,
            Value::Text(_) => 3,
            Value::Date(_) => 4,
            Value::Timestamp(_) => 5,
        }
    }
    fn floats(x: f64, y: f64) -> Ordering {
        x.partial_cmp(&y).unwrap_or_else(|| x.total_cmp(&y))
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => floats(*x, *y),
        (Value::Integer(x), Value::Float(y)) => floats(*x as f64, *y),
        (Value::Float(x), Value::Integer(y)) => floats(*x, *y as f64),
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// [`compare_values`] lexicographically over rows (a shorter prefix first).
pub fn compare_rows(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = compare_values(x, y);
        if o.is_ne() {
            return o;
        }
    }
    a.len().cmp(&b.len())
}
