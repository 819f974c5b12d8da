//! JSON input: a top-level array of objects, streamed element by element.
//!
//! A parser thread walks the array with a `serde::de::SeqAccess` visitor, deserialising one
//! element at a time and handing it over a bounded channel, so memory holds a few elements,
//! never the document. An element that is not an object is a reject naming its index; a
//! top-level value that is not an array, or malformed JSON, is an error.
//!
//! Object values become field texts: strings as is, numbers in their JSON form, booleans
//! `true`/`false`, nested arrays and objects as compact JSON text, `null` as null. Key order
//! is the document's.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{truncate_raw, Fields, Item, Record, RecordReader, Reject, Tally, TeeReader};
use crate::error::DataError;

/// One decoded JSON element: an object's fields in document order, or anything else.
#[derive(Debug)]
pub enum Element {
    Object(Vec<(String, Option<String>)>),
    Other { what: &'static str, text: String },
}

/// Text of a JSON value as a field (see the module documentation).
pub fn json_field(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl<'de> de::Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl ElementVisitor {
    fn other<E>(v: serde_json::Value) -> Result<Element, E> {
        Ok(Element::Other {
            what: kind_of(&v),
            text: truncate_raw(&v.to_string()),
        })
    }
}

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
            fields.push((k, json_field(v)));
        }
        Ok(Element::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
        let v: serde_json::Value =
            de::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Self::other(v)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Element, E> {
        Self::other(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Element, E> {
        Self::other(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Element, E> {
        Self::other(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Element, E> {
        Self::other(v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Element, E> {
        Self::other(v.into())
    }
    fn visit_unit<E>(self) -> Result<Element, E> {
        Self::other(serde_json::Value::Null)
    }
}

/// Turns element `number` into a reader item.
pub(crate) fn element_item(number: u64, el: Element, what: &str, raw: Option<String>) -> Item {
    match el {
        Element::Object(fields) => {
            let mut seen = std::collections::HashSet::new();
            if let Some((dup, _)) = fields.iter().find(|(k, _)| !seen.insert(k.as_str())) {
                let rec = Record {
                    number,
                    fields: Fields::Named(Vec::new()),
                    raw: raw.clone(),
                };
                return Item::Reject(Reject {
                    number,
                    kind: "duplicate key".into(),
                    reason: format!(
                        "{what} {number}: duplicate key {}",
                        crate::infer::quote_short(dup)
                    ),
                    raw: raw.map_or_else(|| rec.raw_text(), |r| truncate_raw(&r)),
                });
            }
            Item::Record(Record {
                number,
                fields: Fields::Named(fields),
                raw,
            })
        }
        Element::Other { what: kind, text } => Item::Reject(Reject {
            number,
            kind: "not an object".into(),
            reason: format!("{what} {number}: expected an object, found {kind}"),
            raw: raw.map_or(text, |r| truncate_raw(&r)),
        }),
    }
}

type Msg = Result<Item, String>;

/// Streaming reader of a JSON array of objects.
pub struct JsonReader {
    rx: Receiver<Msg>,
    tally: Tally,
    done: bool,
}

struct ArraySeed<'a>(&'a std::sync::mpsc::SyncSender<Msg>);

impl<'de> DeserializeSeed<'de> for ArraySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArraySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a top-level JSON array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0u64;
        while let Some(el) = seq.next_element::<Element>()? {
            let item = element_item(index, el, "element", None);
            if self.0.send(Ok(item)).is_err() {
                return Err(de::Error::custom("reader closed"));
            }
            index += 1;
        }
        Ok(())
    }
}

impl JsonReader {
    pub fn open(path: &Path, tally: Tally) -> Result<Self, DataError> {
        let file = File::open(path)
            .map_err(|e| DataError::io(format!("opening {}", path.display()), e))?;
        if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            return Err(DataError::Invalid(format!(
                "{}: no rows (the file is empty)",
                path.display()
            )));
        }
        let reader = BufReader::with_capacity(1 << 16, TeeReader::new(file, tally.clone()));
        let (tx, rx) = sync_channel::<Msg>(1024);
        let name = path.display().to_string();
        std::thread::Builder::new()
            .name("json-reader".into())
            .spawn(move || {
                let mut de = serde_json::Deserializer::from_reader(reader);
                let result = ArraySeed(&tx)
                    .deserialize(&mut de)
                    .and_then(|()| de.end());
                if let Err(e) = result {
                    let msg = if e.is_eof() && e.line() == 1 && e.column() == 0 {
                        format!("{name}: no rows (the file is empty)")
                    } else if e.classify() == serde_json::error::Category::Data {
                        format!("{name}: the top-level JSON value must be an array of objects ({e}); use --format ndjson for one object per line")
                    } else {
                        format!("{name}: invalid JSON: {e}")
                    };
                    let _ = tx.send(Err(msg));
                }
            })
            .map_err(|e| DataError::io("starting the JSON reader thread", e))?;
        Ok(Self {
            rx,
            tally,
            done: false,
        })
    }
}

impl RecordReader for JsonReader {
    fn columns(&self) -> Option<&[String]> {
        None
    }

    fn next_item(&mut self) -> Result<Option<Item>, DataError> {
        if self.done {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Ok(item)) => Ok(Some(item)),
            Ok(Err(msg)) => {
                self.done = true;
                Err(DataError::Format(msg))
            }
            Err(_) => {
                self.done = true;
                Ok(None)
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.tally.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::RecordReader;

    fn read(body: &str) -> Result<Vec<Item>, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        std::fs::write(&p, body).unwrap();
        let mut r = JsonReader::open(&p, Tally::default())?;
        let mut out = Vec::new();
        while let Some(i) = r.next_item()? {
            out.push(i);
        }
        Ok(out)
    }

    #[test]
    fn objects_and_rejects() {
        let items =
            read(r#"[{"b":1,"a":"x","n":null,"o":{"z":[1]}}, 5, [1,2], {"a":1,"a":2}]"#).unwrap();
        assert_eq!(items.len(), 4);
        match &items[0] {
            Item::Record(Record {
                fields: Fields::Named(f),
                ..
            }) => assert_eq!(
                f,
                &vec![
                    ("b".to_string(), Some("1".to_string())),
                    ("a".to_string(), Some("x".to_string())),
                    ("n".to_string(), None),
                    ("o".to_string(), Some(r#"{"z":[1]}"#.to_string())),
                ]
            ),
            other => panic!("{other:?}"),
        }
        match &items[1] {
            Item::Reject(r) => {
                assert_eq!(r.number, 1);
                assert!(r.reason.contains("expected an object, found a number"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&items[2], Item::Reject(r) if r.reason.contains("an array")));
        assert!(matches!(&items[3], Item::Reject(r) if r.kind == "duplicate key"));
    }

    #[test]
    fn top_level_must_be_array() {
        let e = read(r#"{"a":1}"#).unwrap_err();
        assert!(e.to_string().contains("must be an array"), "{e}");
        let e = read(r#"[{"a":1},"#).unwrap_err();
        assert!(e.to_string().contains("invalid JSON"), "{e}");
        let e = read("").unwrap_err();
        assert!(e.to_string().contains("no rows"), "{e}");
    }
}
