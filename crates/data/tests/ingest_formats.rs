//! CSV dialects, JSON/NDJSON, Parquet round trips and export writers through the pipeline.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, TimeZone, Utc};
use consort_data::formats::{export, parquet::write_parquet, Format};
use consort_data::pipeline::{ingest, IngestOptions, IngestReport};
use consort_data::{Column, ColumnType, DataError, Row, Schema, Value};

fn run(
    paths: &[PathBuf],
    mut options: IngestOptions,
    dir: &Path,
) -> Result<(IngestReport, Vec<Row>), DataError> {
    options.reject_path = dir.join("rejects.ndjson");
    let mut rows = Vec::new();
    let r = ingest(
        paths,
        &options,
        &mut |b| {
            rows.extend(b);
            Ok(())
        },
        &mut |_| {},
    )?;
    Ok((r, rows))
}

fn file(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn csv_dialects_give_the_same_rows() {
    let d = tempfile::tempdir().unwrap();
    let want = vec![
        vec![Value::Integer(1), t("a b")],
        vec![Value::Integer(2), t("c")],
    ];
    for (name, body) in [
        ("comma.csv", &b"id,name\n1,a b\n2,c\n"[..]),
        ("semi.csv", b"id;name\n1;a b\n2;c\n"),
        ("tab.tsv", b"id\tname\n1\ta b\n2\tc\n"),
        ("pipe.csv", b"id|name\n1|a b\n2|c\n"),
        ("bom.csv", b"\xEF\xBB\xBFid,name\n1,a b\n2,c\n"),
        ("crlf.csv", b"id,name\r\n1,a b\r\n2,c\r\n"),
        ("quoted.csv", b"\"id\",\"name\"\r\n\"1\",\"a b\"\r\n2,\"c\""),
    ] {
        let (r, rows) = run(
            &[file(d.path(), name, body)],
            IngestOptions::default(),
            d.path(),
        )
        .unwrap();
        assert_eq!(r.schema.names(), ["id", "name"], "{name}");
        assert_eq!(rows, want, "{name}");
    }
}

#[test]
fn csv_quoted_newlines_and_semicolons_in_values() {
    let d = tempfile::tempdir().unwrap();
    let p = file(
        d.path(),
        "q.csv",
        b"id;note\n1;\"line1\nline2; still\"\n2;\"say \"\"hi\"\"\"\n",
    );
    let (_, rows) = run(&[p], IngestOptions::default(), d.path()).unwrap();
    assert_eq!(rows[0][1], t("line1\nline2; still"));
    assert_eq!(rows[1][1], t("say \"hi\""));
}

#[test]
fn csv_without_header_gets_generated_names() {
    let d = tempfile::tempdir().unwrap();
    let p = file(d.path(), "n.csv", b"1,2024-01-02,x\n2,2024-02-03,y\n");
    let (r, rows) = run(&[p], IngestOptions::default(), d.path()).unwrap();
    assert_eq!(r.schema.names(), ["col1", "col2", "col3"]);
    assert_eq!(r.schema.columns[1].ty, ColumnType::Date);
    assert_eq!(rows.len(), 2);
}

#[test]
fn types_and_nullability_are_inferred() {
    let d = tempfile::tempdir().unwrap();
    let p = file(
        d.path(),
        "t.csv",
        b"i,f,b,d,ts,s,flag\n1,1.5,true,2024-01-02,2024-01-02 03:04:05,x,1\n,2,no,2024-01-03,2024-01-02T03:04:05Z,007,0\n",
    );
    let (r, rows) = run(&[p], IngestOptions::default(), d.path()).unwrap();
    let types: Vec<(ColumnType, bool)> = r
        .schema
        .columns
        .iter()
        .map(|c| (c.ty, c.nullable))
        .collect();
    use ColumnType::*;
    assert_eq!(
        types,
        [
            (Integer, true),
            (Float, false),
            (Boolean, false),
            (Date, false),
            (Timestamp, false),
            (Text, false),
            (Integer, false)
        ]
    );
    assert_eq!(rows[1][0], Value::Null);
    assert_eq!(rows[1][5], t("007"));
    assert_eq!(
        rows[0][4],
        Value::Timestamp(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap())
    );
}

#[test]
fn json_and_ndjson_inputs() {
    let d = tempfile::tempdir().unwrap();
    let j = file(
        d.path(),
        "a.json",
        br#"[{"id":1,"tags":["x"],"v":null},{"id":2,"v":2.5,"extra_missing":null}]"#,
    );
    let (r, rows) = run(&[j], IngestOptions::default(), d.path()).unwrap();
    assert_eq!(r.schema.names(), ["id", "tags", "v", "extra_missing"]);
    assert_eq!(
        rows[0],
        vec![Value::Integer(1), t("[\"x\"]"), Value::Null, Value::Null]
    );
    assert_eq!(rows[1][2], Value::Float(2.5));
    let n = file(
        d.path(),
        "a.ndjson",
        b"{\"id\":1,\"name\":\"a\"}\n\n{\"id\":2}\n{\"id\":3,\"new\":1}\n",
    );
    let (r, rows) = run(&[n], IngestOptions::default(), d.path()).unwrap();
    assert_eq!(rows.len(), 3, "{r:?}");
    assert_eq!(r.schema.names(), ["id", "name", "new"]);
    assert_eq!(rows[1], vec![Value::Integer(2), Value::Null, Value::Null]);
}

#[test]
fn ndjson_unknown_field_after_the_sample_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for i in 0..10_000 {
        body.push_str(&format!("{{\"id\":{i}}}\n"));
    }
    body.push_str("{\"id\":1,\"surprise\":true}\n");
    let (r, _) = run(
        &[file(d.path(), "s.ndjson", body.as_bytes())],
        IngestOptions::default(),
        d.path(),
    )
    .unwrap();
    assert_eq!(r.rejects_by_reason["unknown field"], 1);
    assert_eq!(r.rows_read, r.rows_kept + r.rows_rejected);
}

fn no_null_tokens() -> IngestOptions {
    IngestOptions {
        recipe: Some(consort_data::recipe::Recipe::parse(b"null_tokens = []").unwrap()),
        ..Default::default()
    }
}

fn full_schema() -> Schema {
    let c = |name: &str, ty, nullable| Column {
        name: name.into(),
        ty,
        nullable,
    };
    Schema {
        columns: vec![
            c("i", ColumnType::Integer, true),
            c("f", ColumnType::Float, true),
            c("b", ColumnType::Boolean, true),
            c("s", ColumnType::Text, true),
            c("d", ColumnType::Date, true),
            c("ts", ColumnType::Timestamp, true),
        ],
    }
}

fn full_rows() -> Vec<Row> {
    vec![
        vec![
            Value::Integer(i64::MIN),
            Value::Float(-1.5e300),
            Value::Boolean(true),
            t("héllo 世界 🎉"),
            Value::Date(NaiveDate::from_ymd_opt(1, 1, 1).unwrap()),
            Value::Timestamp(Utc.timestamp_opt(-1, 123_456_000).unwrap()),
        ],
        vec![
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
        vec![
            Value::Integer(i64::MAX),
            Value::Float(0.1),
            Value::Boolean(false),
            t(""),
            Value::Date(NaiveDate::from_ymd_opt(9999, 12, 31).unwrap()),
            Value::Timestamp(Utc.with_ymd_and_hms(2262, 1, 1, 0, 0, 0).unwrap()),
        ],
    ]
}

#[test]
fn parquet_round_trip_preserves_schema_and_values() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("rt.parquet");
    let n = write_parquet(&p, &full_schema(), full_rows().into_iter().map(Ok)).unwrap();
    assert_eq!(n, 3);
    // Text "" must survive as text, not null: no null tokens.
    let o = no_null_tokens();
    let (r, rows) = run(std::slice::from_ref(&p), o, d.path()).unwrap();
    assert_eq!(r.schema, full_schema());
    assert_eq!(rows, full_rows());
    assert_eq!(
        consort_data::formats::detect_format(&p).unwrap(),
        Format::Parquet
    );
}

#[test]
fn csv_and_ndjson_export_read_back() {
    let d = tempfile::tempdir().unwrap();
    let schema = full_schema();
    let rows: Vec<Row> = full_rows()
        .into_iter()
        .filter(|r| !r[0].is_null())
        .collect();
    for (fmt, name) in [(Format::Csv, "x.csv"), (Format::Ndjson, "x.ndjson")] {
        let p = d.path().join(name);
        export(fmt, &p, &schema, rows.clone().into_iter().map(Ok)).unwrap();
        let o = no_null_tokens();
        let (r, back) = run(&[p], o, d.path()).unwrap();
        assert_eq!(r.schema.names(), schema.names(), "{name}");
        assert_eq!(back, rows, "{name}");
    }
}

/// Nullability comes from the kept rows, also past the 64 columns whose NULLs the prepare
/// step flags in a mask.
#[test]
fn nullability_of_wide_rows() {
    let d = tempfile::tempdir().unwrap();
    let width = 70;
    let header: Vec<String> = (1..=width).map(|i| format!("c{i}")).collect();
    let full = vec!["1"; width];
    let mut gaps = full.clone();
    gaps[3] = "";
    gaps[66] = "";
    let body = format!(
        "{}\n{}\n{}\n",
        header.join(","),
        full.join(","),
        gaps.join(",")
    );
    let (r, rows) = run(
        &[file(d.path(), "wide.csv", body.as_bytes())],
        IngestOptions::default(),
        d.path(),
    )
    .unwrap();
    assert_eq!(rows.len(), 2);
    let nullable: Vec<usize> = r
        .schema
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.nullable)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(nullable, [3, 66]);
}
