//! Bad inputs from issue 3: each gives a clear error or a reject with a reason, and nothing
//! is lost (rows_read == kept + rejected + duplicates).

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use consort_data::pipeline::{ingest, IngestOptions, IngestReport};
use consort_data::recipe::Recipe;
use consort_data::{DataError, Row, Value};

fn run(
    paths: &[PathBuf],
    mut options: IngestOptions,
    dir: &Path,
) -> (Result<IngestReport, DataError>, Vec<Row>) {
    options.reject_path = dir.join("rejects.ndjson");
    let mut rows = Vec::new();
    let r = ingest(
        paths,
        &options,
        &mut |batch| {
            rows.extend(batch);
            Ok(())
        },
        &mut |_| {},
    );
    (r, rows)
}

fn file(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn balanced(r: &IngestReport) {
    assert_eq!(
        r.rows_read,
        r.rows_kept + r.rows_rejected + r.duplicates_removed,
        "{r:?}"
    );
    assert_eq!(r.rows_rejected, r.rejects_by_reason.values().sum::<u64>());
}

fn reject_lines(r: &IngestReport) -> Vec<serde_json::Value> {
    let p = r.reject_file.as_ref().expect("reject file");
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn empty_file_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    for name in ["e.csv", "e.json", "e.ndjson", "e.parquet"] {
        let p = file(d.path(), name, b"");
        let (r, rows) = run(&[p], IngestOptions::default(), d.path());
        let e = r.unwrap_err().to_string();
        assert!(e.contains("no rows"), "{name}: {e}");
        assert!(rows.is_empty());
    }
}

#[test]
fn header_only_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    for (name, body) in [("h.csv", &b"name,city\n"[..]), ("h.json", b"[]")] {
        let p = file(d.path(), name, body);
        let e = run(&[p], IngestOptions::default(), d.path())
            .0
            .unwrap_err()
            .to_string();
        assert!(e.contains("no data rows"), "{name}: {e}");
    }
}

#[test]
fn ragged_rows_are_rejected_with_line_numbers() {
    let d = tempfile::tempdir().unwrap();
    let p = file(d.path(), "r.csv", b"a,b\n1,2\n3\n4,5,6\n7,8\n");
    let (r, rows) = run(&[p], IngestOptions::default(), d.path());
    let r = r.unwrap();
    balanced(&r);
    assert_eq!((r.rows_read, r.rows_kept, r.rows_rejected), (4, 2, 2));
    assert_eq!(
        rows,
        vec![
            vec![Value::Integer(1), Value::Integer(2)],
            vec![Value::Integer(7), Value::Integer(8)]
        ]
    );
    let lines = reject_lines(&r);
    assert_eq!(lines[0]["record"], 3);
    assert_eq!(lines[0]["reason"], "line 3: expected 2 fields, found 1");
    assert_eq!(lines[0]["raw"], "3");
    assert_eq!(lines[1]["record"], 4);
    assert_eq!(r.rejects_by_reason["wrong number of fields"], 2);
}

#[test]
fn unterminated_quote_is_rejected_naming_the_line() {
    let d = tempfile::tempdir().unwrap();
    let p = file(d.path(), "q.csv", b"a,b\n1,x\n2,\"never closed\n3,y\n");
    let (r, _) = run(&[p], IngestOptions::default(), d.path());
    let r = r.unwrap();
    balanced(&r);
    assert_eq!(r.rows_kept, 1);
    assert_eq!(r.rows_rejected, 1);
    let lines = reject_lines(&r);
    assert_eq!(lines[0]["record"], 3);
    assert!(lines[0]["reason"]
        .as_str()
        .unwrap()
        .contains("quoted field is not closed"));
}

#[test]
fn invalid_utf8_rejects_that_row() {
    let d = tempfile::tempdir().unwrap();
    let p = file(
        d.path(),
        "u.csv",
        b"id,name\n1,ok\n2,bad\xff\xfename\n3,fine\n",
    );
    let (r, rows) = run(&[p], IngestOptions::default(), d.path());
    let r = r.unwrap();
    balanced(&r);
    assert_eq!(rows.len(), 2);
    assert_eq!(r.rejects_by_reason["invalid UTF-8"], 1);
    let lines = reject_lines(&r);
    assert_eq!(lines[0]["record"], 3);
    assert!(lines[0]["reason"]
        .as_str()
        .unwrap()
        .contains("field 2: invalid UTF-8"));
}

#[test]
fn hundred_megabyte_line_is_rejected_not_fatal() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        f.write_all(b"id,text\n1,").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\n2,short\n").unwrap();
    }
    let (r, rows) = run(&[p], IngestOptions::default(), d.path());
    let r = r.unwrap();
    balanced(&r);
    assert_eq!((r.rows_read, r.rows_kept, r.rows_rejected), (2, 1, 1));
    assert_eq!(rows[0][1], Value::Text("short".into()));
    let lines = reject_lines(&r);
    assert!(lines[0]["reason"].as_str().unwrap().contains("exceeds"));
    assert!(lines[0]["raw"].as_str().unwrap().len() <= 1024);
    assert_eq!(r.bytes_read, 100 * (1 << 20) + 19);
}

#[test]
fn binary_garbage_csv_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let mut garbage = vec![0u8; 4096];
    let mut x = 0x12345678u32;
    for b in garbage.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let p = file(d.path(), "g.csv", &garbage);
    let e = run(&[p], IngestOptions::default(), d.path())
        .0
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("not a text CSV file"), "{e}");
    // Even without NUL bytes.
    let no_nul: Vec<u8> = garbage.iter().map(|b| b.max(&1) | 0x80).collect();
    let p = file(d.path(), "g2.csv", &no_nul);
    let e = run(&[p], IngestOptions::default(), d.path())
        .0
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("not a text CSV file"), "{e}");
}

#[test]
fn truncated_parquet_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.parquet");
    let schema = consort_data::Schema {
        columns: vec![consort_data::Column {
            name: "n".into(),
            ty: consort_data::ColumnType::Integer,
            nullable: false,
        }],
    };
    let rows = (0..1000).map(|i| Ok(vec![Value::Integer(i)]));
    consort_data::formats::parquet::write_parquet(&p, &schema, rows).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    for cut in [bytes.len() - 3, bytes.len() / 2, 10] {
        let q = file(d.path(), "cut.parquet", &bytes[..cut]);
        let e = run(&[q], IngestOptions::default(), d.path())
            .0
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a readable Parquet file"), "{cut}: {e}");
    }
}

#[test]
fn json_element_that_is_not_an_object_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = file(
        d.path(),
        "j.json",
        br#"[{"a":1,"b":"x"}, 42, "str", {"a":2,"b":"y"}, null]"#,
    );
    let (r, rows) = run(&[p], IngestOptions::default(), d.path());
    let r = r.unwrap();
    balanced(&r);
    assert_eq!((r.rows_read, r.rows_kept, r.rows_rejected), (5, 2, 3));
    assert_eq!(rows[1], vec![Value::Integer(2), Value::Text("y".into())]);
    let lines = reject_lines(&r);
    assert_eq!(lines[0]["record"], 1);
    assert_eq!(
        lines[0]["reason"],
        "element 1: expected an object, found a number"
    );
    let p = file(d.path(), "o.json", br#"{"a":1}"#);
    let o = IngestOptions {
        format: Some(consort_data::formats::Format::Json),
        ..Default::default()
    };
    let e = run(&[p], o, d.path()).0.unwrap_err().to_string();
    assert!(e.contains("must be an array of objects"), "{e}");
}

#[test]
fn duplicate_column_names_are_an_error() {
    let d = tempfile::tempdir().unwrap();
    let p = file(d.path(), "d.csv", b"id,name,id\n1,a,2\n");
    let e = run(&[p], IngestOptions::default(), d.path())
        .0
        .unwrap_err()
        .to_string();
    assert!(e.contains("duplicate column name 'id'"), "{e}");
}

#[test]
fn sql_keyword_and_quote_names_pass_through_intact() {
    let d = tempfile::tempdir().unwrap();
    let p = file(
        d.path(),
        "k.csv",
        b"select,\"we\"\"ird\",\"a;b\",\"x\"\"); DROP TABLE t; --\"\n1,2,3,4\n",
    );
    let r = run(&[p], IngestOptions::default(), d.path()).0.unwrap();
    assert_eq!(
        r.schema.names(),
        ["select", "we\"ird", "a;b", "x\"); DROP TABLE t; --"]
    );
    let p = file(d.path(), "k.ndjson", b"{\"order\":1,\"'quoted'\":\"v\"}\n");
    let r = run(&[p], IngestOptions::default(), d.path()).0.unwrap();
    assert_eq!(r.schema.names(), ["order", "'quoted'"]);
}

#[test]
fn recipe_with_unknown_key_is_an_error() {
    let e = Recipe::parse(b"trim = true\nnull_tokenz = [\"NA\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("null_tokenz"), "{e}");
    let e = Recipe::parse(b"[columns.a]\ncase = \"lower\"\ncolour = 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn non_finite_floats_are_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = file(d.path(), "f.csv", b"x\n1.5\nNaN\n2\ninf\n");
    let (r, rows) = run(&[p], IngestOptions::default(), d.path());
    let r = r.unwrap();
    balanced(&r);
    assert_eq!(rows, vec![vec![Value::Float(1.5)], vec![Value::Float(2.0)]]);
    assert_eq!(r.rejects_by_reason["non-finite float in column 'x'"], 2);
}

#[test]
fn rows_after_the_sample_that_do_not_fit_are_rejected() {
    let d = tempfile::tempdir().unwrap();
    let mut body = String::from("n\n");
    for i in 0..10_000 {
        body.push_str(&format!("{i}\n"));
    }
    body.push_str("oops\n");
    let p = file(d.path(), "late.csv", body.as_bytes());
    let r = run(&[p], IngestOptions::default(), d.path()).0.unwrap();
    balanced(&r);
    assert_eq!(r.rows_rejected, 1);
    assert_eq!(r.rejects_by_reason["invalid integer in column 'n'"], 1);
    assert_eq!(reject_lines(&r)[0]["record"], 10_002);
}

#[test]
fn multiple_inputs_need_the_same_schema() {
    let d = tempfile::tempdir().unwrap();
    let a = file(d.path(), "a.csv", b"x,y\n1,2\n");
    let b = file(d.path(), "b.csv", b"x;y\n3;4\n");
    let c = file(d.path(), "c.csv", b"x,z\n3,4\n");
    let (r, rows) = run(&[a.clone(), b.clone()], IngestOptions::default(), d.path());
    let r = r.unwrap();
    assert_eq!(rows.len(), 2);
    // input hash: BLAKE3 over (len BE || bytes) per file
    let mut h = blake3::Hasher::new();
    for p in [&a, &b] {
        let bytes = std::fs::read(p).unwrap();
        h.update(&(bytes.len() as u64).to_be_bytes());
        h.update(&bytes);
    }
    assert_eq!(r.input_hash.0, *h.finalize().as_bytes());
    let e = run(&[a, c], IngestOptions::default(), d.path())
        .0
        .unwrap_err()
        .to_string();
    assert!(e.contains("different schema"), "{e}");
}

fn numbered_csv(dir: &Path, name: &str, header: &str, rows: usize) -> PathBuf {
    let mut body = format!("{header}\n");
    for i in 0..rows {
        body.push_str(&format!("{i},{}\n", i * 2));
    }
    file(dir, name, body.as_bytes())
}

#[test]
fn a_later_input_that_fails_stops_the_run_with_its_error() {
    // Past the sample, so the second input is opened by the running pipeline's reader.
    let d = tempfile::tempdir().unwrap();
    let a = numbered_csv(d.path(), "a.csv", "x,y", 30_000);
    let c = file(d.path(), "c.csv", b"x,z\n3,4\n");
    let e = run(&[a, c], IngestOptions::default(), d.path())
        .0
        .unwrap_err()
        .to_string();
    assert!(e.contains("different schema"), "{e}");
}

#[test]
fn a_failing_sink_stops_the_run_with_its_error() {
    let d = tempfile::tempdir().unwrap();
    let a = numbered_csv(d.path(), "a.csv", "x,y", 50_000);
    let options = IngestOptions {
        reject_path: d.path().join("rejects.ndjson"),
        ..IngestOptions::default()
    };
    let mut calls = 0;
    let r = ingest(
        &[a],
        &options,
        &mut |_batch| {
            calls += 1;
            if calls == 2 {
                return Err(DataError::Invalid("the disk is full".into()));
            }
            Ok(())
        },
        &mut |_| {},
    );
    let e = r.unwrap_err().to_string();
    assert!(e.contains("the disk is full"), "{e}");
    assert_eq!(calls, 2, "no batch after the failing one");
}
