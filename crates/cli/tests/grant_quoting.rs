//! `consort grant` can name columns whose names hold `:` or `,`, in double quotes.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cluster, consort, dir_arg, serial};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn columns_with_colons_and_commas_are_granted_in_quotes() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let cluster = cluster(root.path(), 1).await;
    let dir = dir_arg(&cluster, 0);
    let csv = root.path().join("odd.csv");
    std::fs::write(&csv, "\"a:b\",\"x,y\",plain\n1,2,3\n4,5,6\n").unwrap();
    let (code, out, err) = consort(&[
        "--dir",
        &dir,
        "dataset",
        "add",
        "odd",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = consort(&[
        "--dir",
        &dir,
        "grant",
        "odd",
        "--to",
        "*",
        "--columns",
        r#""a:b":plain,"x,y":aggregate+filter,plain:group"#,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = consort(&["--dir", &dir, "grants", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let grants: serde_json::Value = serde_json::from_str(&out).unwrap();
    let columns = grants["given"][0]["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("one grant given: {grants}"));
    let mut got: Vec<(String, Vec<String>)> = columns
        .iter()
        .map(|c| {
            let mut permissions: Vec<String> = c["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect();
            permissions.sort();
            (c["column"].as_str().unwrap().to_string(), permissions)
        })
        .collect();
    got.sort();
    let want = |c: &str, ps: &[&str]| (c.to_string(), ps.iter().map(|p| p.to_string()).collect());
    assert_eq!(
        got,
        vec![
            want("a:b", &["plain"]),
            want("plain", &["group"]),
            want("x,y", &["aggregate", "filter"]),
        ],
        "{grants}"
    );

    let (code, _, err) = consort(&[
        "--dir",
        &dir,
        "grant",
        "odd",
        "--to",
        "*",
        "--columns",
        r#""a:b:plain"#,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("unterminated quote"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
