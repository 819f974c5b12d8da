//! The preprocessing recipe: a TOML file read with unknown keys refused everywhere (the
//! error names the key).
//!
//! ```toml
//! # Global text cleaning, applied to every field before anything else.
//! trim = true                          # strip leading/trailing whitespace (default false)
//! null_tokens = ["", "NA", "null"]     # fields equal to one of these become NULL (default [""])
//! normalize = "nfc"                    # Unicode normalisation of all text: "nfc" | "nfkc"
//!
//! drop = ["internal_note"]             # columns to leave out (names after renaming)
//!
//! # Deduplication: "all" (all columns), "key" (the `key` columns) or "none" (default).
//! # The first occurrence is kept. `--dedup` / `--key` on the command line win.
//! dedup = "key"
//! key = ["id"]
//!
//! # Column renames (old = new), applied first; everything else uses the new names.
//! [rename]
//! "E-mail" = "email"
//!
//! # Per-column rules (all optional).
//! [columns.age]
//! type = "integer"        # integer | float | boolean | text | date | timestamp
//! mode = "lenient"        # strict (default): a bad value rejects the row; lenient: it becomes NULL
//!
//! [columns.country]
//! trim = true
//! case = "upper"          # "lower" | "upper"
//! normalize = "nfkc"      # overrides the global normalisation
//!
//! [columns.email]
//! case = "lower"
//! pseudonymise = { method = "keyed_hash" }            # hex BLAKE3 keyed with the member secret
//!
//! [columns.national_id]
//! pseudonymise = { method = "mask", keep_last = 4 }   # "123456789" -> "*****6789"
//!
//! [columns.password]
//! pseudonymise = { method = "redact" }                # "[REDACTED]"
//!
//! # Row filters: a row is kept only if every condition holds; the others go to the
//! # reject file with the failed condition as the reason.
//! # op: "=" "!=" "<" "<=" ">" ">=" (with value) | "is_null" "not_null" (without)
//! [[filter]]
//! column = "age"
//! op = ">="
//! value = 18
//!
//! [[filter]]
//! column = "email"
//! op = "not_null"
//! ```
//!
//! Order of application: rename → drop → per field trim, null tokens, Unicode
//! normalisation, case → type coercion → filters → deduplication → pseudonymisation.
//! Pseudonymised columns are stored as text; a `type` on them only validates the input.
//!
//! The recipe hash recorded in lineage is plain BLAKE3 of the recipe file's exact bytes
//! ([`recipe_hash`]); no recipe hashes the empty input.

use std::collections::BTreeMap;
use std::path::Path;

use consort_crypto::Hash;
use serde::Deserialize;

use crate::error::DataError;
use crate::value::ColumnType;

/// A parsed recipe.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default)]
    pub trim: bool,
    #[serde(default)]
    pub null_tokens: Option<Vec<String>>,
    #[serde(default)]
    pub normalize: Option<Normalization>,
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    #[serde(default)]
    pub drop: Vec<String>,
    #[serde(default)]
    pub dedup: Option<Dedup>,
    #[serde(default)]
    pub key: Option<Vec<String>>,
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnRule>,
    #[serde(default, rename = "filter")]
    pub filters: Vec<Filter>,
    /// BLAKE3 of the source bytes (set by [`Recipe::parse`]).
    #[serde(skip)]
    pub hash: Option<Hash>,
}

/// Per-column rules.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    #[serde(default, rename = "type", deserialize_with = "de_type")]
    pub ty: Option<ColumnType>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub trim: Option<bool>,
    #[serde(default)]
    pub case: Option<Case>,
    #[serde(default)]
    pub normalize: Option<Normalization>,
    #[serde(default)]
    pub pseudonymise: Option<Pseudonymise>,
}

fn de_type<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ColumnType>, D::Error> {
    let s = String::deserialize(d)?;
    ColumnType::parse(&s).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown type `{s}`, expected integer, float, boolean, text, date or timestamp"
        ))
    })
}

/// What happens to a value that does not parse as the column's type.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The row is rejected with the reason.
    #[default]
    Strict,
    /// The value becomes NULL.
    Lenient,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Case {
    Lower,
    Upper,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    Nfc,
    Nfkc,
}

/// Deduplication mode.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Dedup {
    All,
    Key,
    #[default]
    None,
}

impl Dedup {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "all" => Dedup::All,
            "key" => Dedup::Key,
            "none" => Dedup::None,
            _ => return None,
        })
    }
}

/// How a sensitive column is replaced.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pseudonymise {
    /// Lowercase hex of BLAKE3 keyed with the member's 32-byte secret.
    KeyedHash,
    /// The constant `[REDACTED]`.
    Redact,
    /// Every character but the last `keep_last` replaced by `*`.
    Mask { keep_last: usize },
}

impl Pseudonymise {
    /// Applies the method to `s`; `key` is required for `keyed_hash`.
    pub fn apply(&self, s: &str, key: Option<&[u8; 32]>) -> String {
        match self {
            Pseudonymise::KeyedHash => match key {
                Some(k) => blake3::keyed_hash(k, s.as_bytes()).to_hex().to_string(),
                None => "[REDACTED]".to_string(),
            },
            Pseudonymise::Redact => "[REDACTED]".to_string(),
            Pseudonymise::Mask { keep_last } => {
                let n = s.chars().count();
                let hide = n.saturating_sub(*keep_last);
                s.chars()
                    .enumerate()
                    .map(|(i, c)| if i < hide { '*' } else { c })
                    .collect()
            }
        }
    }
}

/// A filter comparison.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Op {
    #[serde(rename = "=", alias = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "is_null")]
    IsNull,
    #[serde(rename = "not_null")]
    NotNull,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::IsNull => "is_null",
            Op::NotNull => "not_null",
        }
    }
}

/// One row condition.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub column: String,
    pub op: Op,
    #[serde(default)]
    pub value: Option<toml::Value>,
}

impl Filter {
    /// The filter's value as text (TOML strings as is, other scalars in TOML form).
    pub fn value_text(&self) -> Option<String> {
        self.value.as_ref().map(|v| match v {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

impl Recipe {
    /// Parses recipe TOML, keeping the hash of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, DataError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| DataError::Recipe("the recipe is not valid UTF-8".into()))?;
        let mut recipe: Recipe =
            toml::from_str(text).map_err(|e| DataError::Recipe(e.message().to_string()))?;
        recipe.validate()?;
        recipe.hash = Some(recipe_hash(bytes));
        Ok(recipe)
    }

    /// Reads and parses a recipe file.
    pub fn from_file(path: &Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(path)
            .map_err(|e| DataError::io(format!("reading recipe {}", path.display()), e))?;
        Self::parse(&bytes).map_err(|e| match e {
            DataError::Recipe(m) => DataError::Recipe(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    fn validate(&self) -> Result<(), DataError> {
        for (i, f) in self.filters.iter().enumerate() {
            let needs_value = !matches!(f.op, Op::IsNull | Op::NotNull);
            if needs_value != f.value.is_some() {
                return Err(DataError::Recipe(format!(
                    "filter {} on `{}`: op `{}` {} a `value`",
                    i + 1,
                    f.column,
                    f.op.as_str(),
                    if needs_value { "needs" } else { "takes no" }
                )));
            }
        }
        if self.dedup == Some(Dedup::Key) && self.key.as_ref().is_none_or(|k| k.is_empty()) {
            return Err(DataError::Recipe(
                "dedup = \"key\" needs `key = [...]`".into(),
            ));
        }
        Ok(())
    }

    /// True if some column is pseudonymised with a keyed hash.
    pub fn needs_pseudonym_key(&self) -> bool {
        self.columns
            .values()
            .any(|c| c.pseudonymise == Some(Pseudonymise::KeyedHash))
    }
}

/// BLAKE3 of the exact recipe bytes (`recipe_hash(b"")` when there is no recipe).
pub fn recipe_hash(bytes: &[u8]) -> Hash {
    Hash(*blake3::hash(bytes).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module documentation's example, extracted from this file.
    fn example() -> String {
        let src = include_str!("recipe.rs");
        let start = src.find("//! ```toml").unwrap() + "//! ```toml\n".len();
        let end = start + src[start..].find("//! ```\n").unwrap();
        src[start..end]
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.strip_prefix("//!").unwrap_or(l))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn parses_example() {
        let example = example();
        let r = Recipe::parse(example.as_bytes()).unwrap();
        assert!(r.trim);
        assert_eq!(r.dedup, Some(Dedup::Key));
        assert_eq!(r.columns["age"].ty, Some(ColumnType::Integer));
        assert_eq!(r.columns["age"].mode, Mode::Lenient);
        assert_eq!(
            r.columns["national_id"].pseudonymise,
            Some(Pseudonymise::Mask { keep_last: 4 })
        );
        assert_eq!(r.filters[0].op, Op::Ge);
        assert_eq!(r.filters[0].value_text().as_deref(), Some("18"));
        assert_eq!(r.hash, Some(recipe_hash(example.as_bytes())));
        assert!(r.needs_pseudonym_key());
    }

    #[test]
    fn unknown_keys_are_named() {
        for (toml, key) in [
            ("trimm = true", "trimm"),
            ("[columns.a]\ntipe = \"integer\"", "tipe"),
            (
                "[columns.a]\npseudonymise = { method = \"mask\", keep_last = 1, extra = 2 }",
                "extra",
            ),
            (
                "[[filter]]\ncolumn = \"a\"\nop = \"=\"\nvalue = 1\nwhat = 2",
                "what",
            ),
        ] {
            let e = Recipe::parse(toml.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
        let e = Recipe::parse(b"[columns.a]\ntype = \"money\"").unwrap_err();
        assert!(e.to_string().contains("money"));
        let e = Recipe::parse(b"[[filter]]\ncolumn = \"a\"\nop = \">\"").unwrap_err();
        assert!(e.to_string().contains("needs"), "{e}");
    }

    #[test]
    fn pseudonymise_methods() {
        let k = [7u8; 32];
        let h = Pseudonymise::KeyedHash.apply("a@b.c", Some(&k));
        assert_eq!(h, blake3::keyed_hash(&k, b"a@b.c").to_hex().to_string());
        assert_ne!(h, Pseudonymise::KeyedHash.apply("a@b.c", Some(&[8u8; 32])));
        assert_eq!(Pseudonymise::Redact.apply("x", None), "[REDACTED]");
        let m = Pseudonymise::Mask { keep_last: 4 };
        assert_eq!(m.apply("123456789", None), "*****6789");
        assert_eq!(m.apply("éé", None), "éé");
        assert_eq!(recipe_hash(b""), Hash(*blake3::hash(b"").as_bytes()));
    }
}
