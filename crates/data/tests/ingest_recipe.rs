//! Recipe features and deduplication through the whole pipeline.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use consort_data::pipeline::{ingest, IngestOptions, IngestReport};
use consort_data::recipe::{Dedup, Recipe};
use consort_data::{ColumnType, DataError, Row, Value};

fn run(
    body: &str,
    recipe: Option<&str>,
    tweak: impl FnOnce(&mut IngestOptions),
) -> Result<(IngestReport, Vec<Row>), DataError> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("in.csv");
    std::fs::write(&p, body).unwrap();
    let mut o = IngestOptions {
        recipe: recipe.map(|r| Recipe::parse(r.as_bytes())).transpose()?,
        reject_path: d.path().join("rej.ndjson"),
        ..Default::default()
    };
    tweak(&mut o);
    run_paths(&[p], &o, d.path())
}

fn run_paths(
    p: &[PathBuf],
    o: &IngestOptions,
    _d: &Path,
) -> Result<(IngestReport, Vec<Row>), DataError> {
    let mut rows = Vec::new();
    let r = ingest(
        p,
        o,
        &mut |b| {
            rows.extend(b);
            Ok(())
        },
        &mut |_| {},
    )?;
    assert_eq!(
        r.rows_read,
        r.rows_kept + r.rows_rejected + r.duplicates_removed
    );
    Ok((r, rows))
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn trim_and_null_tokens() {
    let (r, rows) = run(
        "a,b\n  x ,NA\n y,1\n",
        Some("trim = true\nnull_tokens = [\"NA\", \"\"]"),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        rows,
        vec![vec![t("x"), Value::Null], vec![t("y"), Value::Integer(1)]]
    );
    assert_eq!(r.schema.columns[1].ty, ColumnType::Integer);
    let (_, rows) = run("a\n  x \n", None, |_| {}).unwrap();
    assert_eq!(rows[0][0], t("  x "));
}

#[test]
fn strict_and_lenient_coercion() {
    let recipe = "[columns.n]\ntype = \"integer\"\n";
    let keep = tempfile::tempdir().unwrap();
    let rej = keep.path().join("rejects.ndjson");
    let (r, rows) = run("n\n1\nabc\n3\n", Some(recipe), |o| {
        o.reject_path = rej.clone()
    })
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(r.reject_file.as_deref(), Some(rej.as_path()));
    assert_eq!(r.rejects_by_reason["invalid integer in column 'n'"], 1);
    let lines = std::fs::read_to_string(r.reject_file.unwrap()).unwrap();
    assert!(
        lines.contains("\"reason\":\"column 'n': 'abc' is not a valid integer\""),
        "{lines}"
    );
    assert!(lines.contains("\"record\":3"), "{lines}");
    let (r, rows) = run(
        "n\n1\nabc\n3\n",
        Some("[columns.n]\ntype = \"integer\"\nmode = \"lenient\""),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        rows,
        vec![
            vec![Value::Integer(1)],
            vec![Value::Null],
            vec![Value::Integer(3)]
        ]
    );
    assert_eq!(r.rows_rejected, 0);
    assert!(r.schema.columns[0].nullable);
    // A type override wins over inference.
    let (r, rows) = run("z\n01\n2\n", Some("[columns.z]\ntype = \"text\""), |_| {}).unwrap();
    assert_eq!(r.schema.columns[0].ty, ColumnType::Text);
    assert_eq!(rows[1][0], t("2"));
}

#[test]
fn rename_and_drop() {
    let (r, rows) = run(
        "a,b,c\n1,2,3\n",
        Some("drop = [\"c\"]\n[rename]\na = \"alpha\"\n"),
        |_| {},
    )
    .unwrap();
    assert_eq!(r.schema.names(), ["alpha", "b"]);
    assert_eq!(rows[0], vec![Value::Integer(1), Value::Integer(2)]);
    let e = run("a\n1\n", Some("[rename]\nnope = \"x\""), |_| {}).unwrap_err();
    assert!(e.to_string().contains("'nope'"), "{e}");
}

#[test]
fn filters_reject_with_the_condition() {
    let recipe = "[[filter]]\ncolumn = \"age\"\nop = \">=\"\nvalue = 18\n[[filter]]\ncolumn = \"name\"\nop = \"not_null\"\n";
    let (r, rows) = run("name,age\na,20\nb,17\n,30\nd,18\n", Some(recipe), |_| {}).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(r.rejects_by_reason["filter: 'age' >= '18'"], 1);
    assert_eq!(r.rejects_by_reason["filter: 'name' not_null"], 1);
    for (op, value, want) in [
        ("=", "\"b\"", 1),
        ("!=", "\"b\"", 3),
        ("<", "\"c\"", 2),
        ("<=", "\"c\"", 3),
        (">", "\"a\"", 3),
    ] {
        let recipe = format!("[[filter]]\ncolumn = \"name\"\nop = \"{op}\"\nvalue = {value}\n");
        let (_, rows) = run("name\na\nb\nc\nd\n", Some(&recipe), |_| {}).unwrap();
        assert_eq!(rows.len(), want, "{op}");
    }
    let (_, rows) = run(
        "x,y\n1,\n2,3\n",
        Some("[[filter]]\ncolumn = \"y\"\nop = \"is_null\""),
        |_| {},
    )
    .unwrap();
    assert_eq!(rows, vec![vec![Value::Integer(1), Value::Null]]);
}

#[test]
fn dedup_all_and_key_keep_first() {
    let body = "id,v\n1,a\n2,b\n1,a\n1,c\n3,b\n";
    let (r, rows) = run(body, None, |o| o.dedup = Some(Dedup::All)).unwrap();
    assert_eq!(r.duplicates_removed, 1);
    assert_eq!(rows.len(), 4);
    let (r, rows) = run(body, None, |o| o.key = Some(vec!["id".into()])).unwrap();
    assert_eq!(r.dedup, Dedup::Key);
    assert_eq!(r.duplicates_removed, 2);
    assert_eq!(
        rows,
        vec![
            vec![Value::Integer(1), t("a")],
            vec![Value::Integer(2), t("b")],
            vec![Value::Integer(3), t("b")]
        ]
    );
    let (r, _) = run(body, Some("dedup = \"key\"\nkey = [\"v\"]"), |_| {}).unwrap();
    assert_eq!(r.duplicates_removed, 2);
    let (r, _) = run(body, Some("dedup = \"all\""), |o| {
        o.dedup = Some(Dedup::None)
    })
    .unwrap();
    assert_eq!(r.duplicates_removed, 0);
    let e = run(body, None, |o| {
        o.dedup = Some(Dedup::Key);
        o.key = Some(vec!["missing".into()]);
    })
    .unwrap_err();
    assert!(e.to_string().contains("'missing'"), "{e}");
}

#[test]
fn case_and_unicode_normalisation() {
    let recipe = "normalize = \"nfc\"\n[columns.a]\ncase = \"lower\"\n[columns.b]\ncase = \"upper\"\nnormalize = \"nfkc\"\n";
    let (_, rows) = run("a,b,c\nÉcOLE,ﬁne,e\u{301}\n", Some(recipe), |_| {}).unwrap();
    assert_eq!(rows[0], vec![t("école"), t("FINE"), t("\u{e9}")]);
}

#[test]
fn pseudonymisation() {
    let key = [9u8; 32];
    let recipe = "[columns.email]\npseudonymise = { method = \"keyed_hash\" }\n[columns.pw]\npseudonymise = { method = \"redact\" }\n[columns.ssn]\npseudonymise = { method = \"mask\", keep_last = 4 }\n";
    let body = "email,pw,ssn\na@x.org,hunter2,123456789\n,secret,12\n";
    let (r, rows) = run(body, Some(recipe), |o| o.pseudonym_key = Some(key)).unwrap();
    let h = blake3::keyed_hash(&key, b"a@x.org").to_hex().to_string();
    assert_eq!(rows[0], vec![t(&h), t("[REDACTED]"), t("*****6789")]);
    assert_eq!(rows[1], vec![Value::Null, t("[REDACTED]"), t("12")]);
    assert!(r.schema.columns.iter().all(|c| c.ty == ColumnType::Text));
    let e = run(body, Some(recipe), |_| {}).unwrap_err();
    assert!(e.to_string().contains("no member secret"), "{e}");
    let o = IngestOptions {
        pseudonym_key: Some(key),
        ..Default::default()
    };
    assert!(!format!("{o:?}").contains("9, 9"));
}

#[test]
fn recipe_hash_is_of_the_exact_bytes() {
    let src = "trim = true\n";
    let (r, _) = run("a\n1\n", Some(src), |_| {}).unwrap();
    assert_eq!(r.recipe_hash.0, *blake3::hash(src.as_bytes()).as_bytes());
    let (r, _) = run("a\n1\n", None, |_| {}).unwrap();
    assert_eq!(r.recipe_hash.0, *blake3::hash(b"").as_bytes());
}
