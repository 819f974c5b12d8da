//! The table revealed to the requester and its attested hash.
//!
//! `hash()` = `hash_domain("consort/result/v2", [encoding])` where the encoding (crypto
//! `Writer` conventions: big-endian, u32 length prefixes) is: the list of column names
//! (u32 count, then u32 length + UTF-8 each), `suppressed_groups` as u64, then the rows
//! (u32 count; each row a u32 count of values, each value as in `canon`: a tag byte
//! 0 NULL, 1 integer i64, 2 float IEEE-754 bits, 3 boolean, 4 text, 5 date as days since
//! 0001-01-01, 6 timestamp as µs since the epoch).

use consort_crypto::encoding::{Reader, Writer};
use consort_crypto::{hash_domain, Hash};
use consort_model::Value;
use serde::{Deserialize, Serialize};

use crate::canon::{get_rows, put_rows};

/// The revealed result of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultTable {
    pub columns: Vec<String>,
    #[serde(with = "rows_serde")]
    pub rows: Vec<Vec<Value>>,
    /// Groups (or the single result) suppressed because they had fewer than K rows.
    pub suppressed_groups: u64,
}

impl ResultTable {
    /// The canonical encoding hashed by [`ResultTable::hash`].
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.list(&self.columns, |w, c| {
            w.string(c);
        });
        w.u64(self.suppressed_groups);
        put_rows(&mut w, &self.rows);
        w.into_bytes()
    }

    /// Domain-separated BLAKE3 of [`ResultTable::canonical_bytes`].
    pub fn hash(&self) -> Hash {
        hash_domain("consort/result/v2", &[&self.canonical_bytes()])
    }
}

/// Values are (de)serialized through their canonical encoding as `{"type": …, "value": …}`
/// objects, since `consort_model::Value` itself has no serde.
mod rows_serde {
    use super::*;
    use serde::de::Error as _;
    use serde::{Deserializer, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "type", content = "value", rename_all = "lowercase")]
    enum V {
        Null,
        Integer(i64),
        Float(f64),
        Boolean(bool),
        Text(String),
        Date(String),
        Timestamp(String),
    }

    fn to_v(v: &Value) -> V {
        match v {
            Value::Null => V::Null,
            Value::Integer(i) => V::Integer(*i),
            Value::Float(f) => V::Float(*f),
            Value::Boolean(b) => V::Boolean(*b),
            Value::Text(s) => V::Text(s.to_string()),
            Value::Date(d) => V::Date(d.format("%Y-%m-%d").to_string()),
            Value::Timestamp(t) => V::Timestamp(t.to_rfc3339()),
        }
    }

    fn from_v(v: V) -> Result<Value, String> {
        Ok(match v {
            V::Null => Value::Null,
            V::Integer(i) => Value::Integer(i),
            V::Float(f) => Value::Float(f),
            V::Boolean(b) => Value::Boolean(b),
            V::Text(s) => Value::Text(s.into()),
            V::Date(s) => Value::Date(
                chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| e.to_string())?,
            ),
            V::Timestamp(s) => Value::Timestamp(
                chrono::DateTime::parse_from_rfc3339(&s)
                    .map_err(|e| e.to_string())?
                    .with_timezone(&chrono::Utc),
            ),
        })
    }

    pub fn serialize<S: Serializer>(rows: &[Vec<Value>], s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<Vec<V>> = rows.iter().map(|r| r.iter().map(to_v).collect()).collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<Value>>, D::Error> {
        let v: Vec<Vec<V>> = Vec::deserialize(d)?;
        v.into_iter()
            .map(|r| r.into_iter().map(from_v).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(D::Error::custom)
    }
}

/// Decodes rows encoded by `canon::put_rows` (used by the protocol's public messages).
pub(crate) fn decode_rows(bytes: &[u8]) -> Result<Vec<Vec<Value>>, String> {
    let mut r = Reader::new(bytes);
    let rows = get_rows(&mut r).map_err(|e| e.to_string())?;
    r.finish().map_err(|e| e.to_string())?;
    Ok(rows)
}
