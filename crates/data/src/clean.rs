//! Applying a recipe to records: column projection (rename, drop), text cleaning (trim,
//! null tokens, Unicode normalisation, case), type coercion (strict or lenient), row
//! filters, deduplication keys and pseudonymisation. See [`crate::recipe`] for the order.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use crate::canonical::encode_value;
use crate::error::DataError;
use crate::formats::value_to_text;
use crate::infer::{finalize_names, parse_value, push_parsed, quote_short};
use crate::recipe::{Case, Dedup, Mode, Normalization, Op, Pseudonymise, Recipe};
use crate::value::{ColumnType, Row, Schema, Value};

/// Why a row was not kept: a short `kind` (counted in the report) and the full `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowReject {
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default)]
struct TextRule {
    trim: bool,
    case: Option<Case>,
    normalize: Option<Normalization>,
}

/// Projection and text cleaning for one set of input columns.
#[derive(Clone, Debug)]
pub struct Cleaner {
    /// Output column names (after rename and drop).
    pub names: Vec<String>,
    /// Input position of each output column.
    select: Vec<usize>,
    rules: Vec<TextRule>,
    /// Few in practice, so a linear scan beats hashing every field.
    null_tokens: Vec<String>,
    /// Recipe type per output column (pseudonymised columns: validation type).
    types: Vec<Option<ColumnType>>,
    modes: Vec<Mode>,
    pseudo: Vec<Option<Pseudonymise>>,
}

fn recipe_err(msg: String) -> DataError {
    DataError::Recipe(msg)
}

impl Cleaner {
    /// Compiles `recipe` against the input column names (already through
    /// [`finalize_names`]). Errors name any recipe column that does not exist.
    pub fn new(recipe: &Recipe, input_names: &[String]) -> Result<Self, DataError> {
        for old in recipe.rename.keys() {
            if !input_names.contains(old) {
                return Err(recipe_err(format!(
                    "rename: no column {}",
                    quote_short(old)
                )));
            }
        }
        let renamed: Vec<String> = input_names
            .iter()
            .map(|n| recipe.rename.get(n).cloned().unwrap_or_else(|| n.clone()))
            .collect();
        let renamed = finalize_names(renamed)?;
        for d in &recipe.drop {
            if !renamed.contains(d) {
                return Err(recipe_err(format!("drop: no column {}", quote_short(d))));
            }
        }
        let select: Vec<usize> = (0..renamed.len())
            .filter(|&i| !recipe.drop.contains(&renamed[i]))
            .collect();
        let names: Vec<String> = select.iter().map(|&i| renamed[i].clone()).collect();
        for c in recipe.columns.keys() {
            if !names.contains(c) {
                return Err(recipe_err(format!("columns: no column {}", quote_short(c))));
            }
        }
        for f in &recipe.filters {
            if !names.contains(&f.column) {
                return Err(recipe_err(format!(
                    "filter: no column {}",
                    quote_short(&f.column)
                )));
            }
        }
        let mut rules = Vec::new();
        let (mut types, mut modes, mut pseudo) = (Vec::new(), Vec::new(), Vec::new());
        for n in &names {
            let rule = recipe.columns.get(n).cloned().unwrap_or_default();
            rules.push(TextRule {
                trim: rule.trim.unwrap_or(recipe.trim),
                case: rule.case,
                normalize: rule.normalize.or(recipe.normalize),
            });
            types.push(rule.ty);
            modes.push(rule.mode);
            pseudo.push(rule.pseudonymise);
        }
        let null_tokens = recipe
            .null_tokens
            .clone()
            .unwrap_or_else(|| vec![String::new()])
            .into_iter()
            .collect();
        Ok(Self {
            names,
            select,
            rules,
            null_tokens,
            types,
            modes,
            pseudo,
        })
    }

    /// Types the recipe fixes per output column (pseudonymised columns are text).
    pub fn fixed_types(&self) -> Vec<Option<ColumnType>> {
        self.types
            .iter()
            .zip(&self.pseudo)
            .map(|(t, p)| {
                if p.is_some() {
                    Some(ColumnType::Text)
                } else {
                    *t
                }
            })
            .collect()
    }

    /// Input position of each output column.
    pub fn selection(&self) -> &[usize] {
        &self.select
    }

    /// Projects input fields to output columns and cleans their text.
    pub fn clean_text(&self, fields: Vec<Option<String>>) -> Vec<Option<String>> {
        self.clean_fields(&fields)
            .into_iter()
            .map(|f| f.map(Cow::into_owned))
            .collect()
    }

    /// [`Self::clean_text`] borrowing from `fields`: text the recipe leaves unchanged is
    /// not copied, and the caller keeps the original for a reject.
    pub fn clean_fields<'a>(&self, fields: &'a [Option<String>]) -> Vec<Option<Cow<'a, str>>> {
        self.clean_iter(|i| fields.get(i)?.as_deref()).collect()
    }

    /// [`Self::clean_fields`] for fields given by position, as an iterator: `field(i)` is
    /// the text of input column `i`, `None` for null or absent. A caller that consumes
    /// the fields once needs no vector of them.
    pub fn clean_iter<'s, 'a: 's>(
        &'s self,
        field: impl Fn(usize) -> Option<&'a str> + 's,
    ) -> impl Iterator<Item = Option<Cow<'a, str>>> + 's {
        self.select.iter().zip(&self.rules).map(move |(&i, rule)| {
            let s = field(i)?;
            let s = if rule.trim { s.trim() } else { s };
            if self.null_tokens.iter().any(|t| t == s) {
                return None;
            }
            let s = match rule.normalize {
                None => Cow::Borrowed(s),
                Some(_) if s.is_ascii() => Cow::Borrowed(s),
                Some(Normalization::Nfc) => Cow::Owned(s.nfc().collect()),
                Some(Normalization::Nfkc) => Cow::Owned(s.nfkc().collect()),
            };
            Some(match rule.case {
                None => s,
                Some(Case::Lower) => Cow::Owned(s.to_lowercase()),
                Some(Case::Upper) => Cow::Owned(s.to_uppercase()),
            })
        })
    }
}

#[derive(Clone, Debug)]
struct CompiledFilter {
    column: usize,
    op: Op,
    value: Value,
    text: String,
}

/// Type coercion, filters, dedup keys and pseudonymisation against a final schema.
pub struct Typer {
    schema: Schema,
    /// Per column: the type to parse with and the mode.
    parse: Vec<(ColumnType, Mode)>,
    pseudo: Vec<Option<Pseudonymise>>,
    filters: Vec<CompiledFilter>,
    dedup_cols: Option<Vec<usize>>,
    key: Option<[u8; 32]>,
}

impl std::fmt::Debug for Typer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Typer")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Typer {
    /// `dedup`/`key` are the effective deduplication settings; `pseudonym_key` is needed
    /// when a column uses `keyed_hash`.
    pub fn new(
        cleaner: &Cleaner,
        schema: &Schema,
        recipe: &Recipe,
        dedup: Dedup,
        key: Option<&[String]>,
        pseudonym_key: Option<[u8; 32]>,
    ) -> Result<Self, DataError> {
        let parse = schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let ty = cleaner.types.get(i).copied().flatten().unwrap_or(c.ty);
                (ty, cleaner.modes.get(i).copied().unwrap_or_default())
            })
            .collect::<Vec<_>>();
        if pseudonym_key.is_none()
            && cleaner
                .pseudo
                .iter()
                .flatten()
                .any(|p| *p == Pseudonymise::KeyedHash)
        {
            return Err(DataError::Invalid(
                "the recipe pseudonymises with keyed_hash but no member secret was given".into(),
            ));
        }
        let mut filters = Vec::new();
        for f in &recipe.filters {
            let column = schema.index_of(&f.column).ok_or_else(|| {
                recipe_err(format!("filter: no column {}", quote_short(&f.column)))
            })?;
            let (ty, _) = parse[column];
            let text = f.value_text().unwrap_or_default();
            let value = match f.op {
                Op::IsNull | Op::NotNull => Value::Null,
                _ => parse_value(&text, ty).map_err(|e| {
                    recipe_err(format!("filter on {}: {e}", quote_short(&f.column)))
                })?,
            };
            filters.push(CompiledFilter {
                column,
                op: f.op,
                value,
                text,
            });
        }
        let dedup_cols = match dedup {
            Dedup::None => None,
            Dedup::All => Some((0..schema.columns.len()).collect()),
            Dedup::Key => {
                let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
                    DataError::Invalid("dedup on a key needs the key columns (--key)".into())
                })?;
                Some(
                    key.iter()
                        .map(|k| {
                            schema.index_of(k).ok_or_else(|| {
                                DataError::Invalid(format!("key: no column {}", quote_short(k)))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
        };
        Ok(Self {
            schema: schema.clone(),
            parse,
            pseudo: cleaner.pseudo.clone(),
            filters,
            dedup_cols,
            key: pseudonym_key,
        })
    }

    /// Coerces cleaned fields to a typed row.
    pub fn to_row<S>(&self, fields: impl IntoIterator<Item = Option<S>>) -> Result<Row, RowReject>
    where
        S: AsRef<str>,
    {
        let mut row = Vec::with_capacity(self.parse.len());
        for (i, f) in fields.into_iter().enumerate() {
            let Some(s) = f else {
                row.push(Value::Null);
                continue;
            };
            let (ty, mode) = self.parse[i];
            let s = s.as_ref();
            // Pseudonymised columns keep their text (below); every other valid field is
            // parsed straight into the row.
            if self.pseudo[i].is_none() && push_parsed(&mut row, s, ty) {
                continue;
            }
            let name = &self.schema.columns[i].name;
            let v = match parse_value(s, ty) {
                Ok(Value::Float(x)) if !x.is_finite() => {
                    return Err(RowReject {
                        kind: format!("non-finite float in column {}", quote_short(name)),
                        reason: format!(
                            "column {}: {} is not a finite number",
                            quote_short(name),
                            quote_short(s)
                        ),
                    });
                }
                Ok(v) => v,
                Err(_) if mode == Mode::Lenient => Value::Null,
                Err(e) => {
                    return Err(RowReject {
                        kind: format!("invalid {ty} in column {}", quote_short(name)),
                        reason: format!("column {}: {e}", quote_short(name)),
                    });
                }
            };
            // Pseudonymised columns keep their (validated) text for filters and dedup.
            if self.pseudo[i].is_some() && !matches!(v, Value::Null | Value::Text(_)) {
                row.push(Value::Text(s.into()));
            } else {
                row.push(v);
            }
        }
        Ok(row)
    }

    /// `Err` naming the first filter `row` fails.
    pub fn check_filters(&self, row: &Row) -> Result<(), RowReject> {
        for f in &self.filters {
            let v = &row[f.column];
            let ok = match f.op {
                Op::IsNull => v.is_null(),
                Op::NotNull => !v.is_null(),
                op => match compare(v, &f.value) {
                    None => false,
                    Some(o) => match op {
                        Op::Eq => o == Ordering::Equal,
                        Op::Ne => o != Ordering::Equal,
                        Op::Lt => o == Ordering::Less,
                        Op::Le => o != Ordering::Greater,
                        Op::Gt => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    },
                },
            };
            if !ok {
                let name = &self.schema.columns[f.column].name;
                let cond = match f.op {
                    Op::IsNull | Op::NotNull => format!("{} {}", quote_short(name), f.op.as_str()),
                    op => format!(
                        "{} {} {}",
                        quote_short(name),
                        op.as_str(),
                        quote_short(&f.text)
                    ),
                };
                return Err(RowReject {
                    kind: format!("filter: {cond}"),
                    reason: format!("filter not met: {cond}"),
                });
            }
        }
        Ok(())
    }

    /// The 16-byte dedup fingerprint of `row`, if deduplicating.
    pub fn dedup_key(&self, row: &Row, buf: &mut Vec<u8>) -> Option<u128> {
        let cols = self.dedup_cols.as_ref()?;
        buf.clear();
        buf.extend_from_slice(&(cols.len() as u32).to_be_bytes());
        for &c in cols {
            encode_value(&row[c], buf);
        }
        let h = blake3::hash(buf);
        let mut b = [0u8; 16];
        b.copy_from_slice(&h.as_bytes()[..16]);
        Some(u128::from_be_bytes(b))
    }

    /// Whether deduplication compares whole rows that no pseudonymisation changes. The
    /// fingerprint's encoding is then the canonical encoding the commitment hashes, and
    /// the leaf hash (SHA-256, as collision-resistant as the fingerprint's BLAKE3) can
    /// serve as the fingerprint, saving a hash per row.
    pub fn fingerprint_is_leaf(&self) -> bool {
        self.pseudo.iter().all(Option::is_none)
            && self
                .dedup_cols
                .as_ref()
                .is_some_and(|c| c.iter().copied().eq(0..self.schema.columns.len()))
    }

    /// Replaces pseudonymised columns' values.
    pub fn pseudonymise(&self, row: &mut Row) {
        for (v, p) in row.iter_mut().zip(&self.pseudo) {
            if let Some(p) = p {
                if let Some(s) = value_to_text(v) {
                    *v = Value::Text(p.apply(&s, self.key.as_ref()).into());
                }
            }
        }
    }
}

/// SQL-like comparison of two values of the same type (NULL compares with nothing).
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Integer(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Integer(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Boolean(x), Value::Boolean(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Maps named fields (JSON) to positions of `index`; `Err` names an unknown key.
pub fn position_named(
    pairs: Vec<(String, Option<String>)>,
    index: &HashMap<String, usize>,
) -> Result<Vec<Option<String>>, RowReject> {
    let mut out = vec![None; index.len()];
    for (k, v) in pairs {
        match index.get(&k) {
            Some(&i) => out[i] = v,
            None => {
                return Err(RowReject {
                    kind: "unknown field".into(),
                    reason: format!(
                        "unknown field {} (not in the sampled columns)",
                        quote_short(&k)
                    ),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Column;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn cleaning_and_projection() {
        let r = Recipe::parse(
            br#"trim = true
null_tokens = ["", "NA"]
drop = ["x"]
[rename]
a = "b"
[columns.c]
case = "upper"
normalize = "nfkc"
"#,
        )
        .unwrap();
        let names = vec!["a".to_string(), "x".into(), "c".into()];
        let c = Cleaner::new(&r, &names).unwrap();
        assert_eq!(c.names, ["b", "c"]);
        assert_eq!(
            c.clean_text(vec![s(" NA "), s("gone"), s(" ﬁx ")]),
            vec![None, s("FIX")]
        );
        let e = Cleaner::new(&Recipe::parse(b"drop = [\"zz\"]").unwrap(), &names).unwrap_err();
        assert!(e.to_string().contains("'zz'"), "{e}");
        let e = Cleaner::new(&Recipe::parse(b"[rename]\na = \"c\"").unwrap(), &names).unwrap_err();
        assert!(e.to_string().contains("duplicate column name 'c'"), "{e}");
    }

    #[test]
    fn typing_filters_pseudonymise() {
        let r = Recipe::parse(
            br#"[columns.n]
type = "integer"
mode = "lenient"
[columns.id]
type = "integer"
pseudonymise = { method = "mask", keep_last = 2 }
[[filter]]
column = "n"
op = ">"
value = 1
"#,
        )
        .unwrap();
        let names = vec!["n".to_string(), "id".into()];
        let c = Cleaner::new(&r, &names).unwrap();
        let schema = Schema {
            columns: vec![
                Column {
                    name: "n".into(),
                    ty: ColumnType::Integer,
                    nullable: true,
                },
                Column {
                    name: "id".into(),
                    ty: ColumnType::Text,
                    nullable: true,
                },
            ],
        };
        let t = Typer::new(&c, &schema, &r, Dedup::All, None, None).unwrap();
        let mut row = t.to_row(vec![s("5"), s("1234")]).unwrap();
        assert!(t.check_filters(&row).is_ok());
        t.pseudonymise(&mut row);
        assert_eq!(row, vec![Value::Integer(5), Value::Text("**34".into())]);
        let row = t.to_row(vec![s("zz"), s("1")]).unwrap();
        assert_eq!(row[0], Value::Null);
        let rej = t.check_filters(&row).unwrap_err();
        assert_eq!(rej.kind, "filter: 'n' > '1'");
        let rej = t.to_row(vec![s("1"), s("x")]).unwrap_err();
        assert!(rej.reason.contains("'x' is not a valid integer"), "{rej:?}");
        let mut buf = Vec::new();
        assert_eq!(
            t.dedup_key(&vec![Value::Integer(1), Value::Null], &mut buf),
            t.dedup_key(&vec![Value::Integer(1), Value::Null], &mut buf)
        );
        // A pseudonymised column changes the leaf's encoding: keep a separate fingerprint.
        assert!(!t.fingerprint_is_leaf());
        let plain = Recipe::default();
        let c = Cleaner::new(&plain, &names).unwrap();
        let t = Typer::new(&c, &schema, &plain, Dedup::All, None, None).unwrap();
        assert!(t.fingerprint_is_leaf());
        let key = ["n".to_string()];
        let t = Typer::new(&c, &schema, &plain, Dedup::Key, Some(&key), None).unwrap();
        assert!(
            !t.fingerprint_is_leaf(),
            "a key fingerprint covers only the key"
        );
        let t = Typer::new(&c, &schema, &plain, Dedup::None, None, None).unwrap();
        assert!(!t.fingerprint_is_leaf());
    }
}
