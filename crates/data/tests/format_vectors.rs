//! The salted-columns test vectors of docs/FORMAT.md §14.1: computed here, and the document
//! must hold each value, so a reimplementation written from the document checks against the
//! same numbers this code produces.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::Hash;
use consort_data::hiding::{cell_hash, salted_leaf, RowSalter};
use consort_data::Value;

fn format_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md");
    std::fs::read_to_string(path).expect("docs/FORMAT.md")
}

fn vectors() -> Vec<(&'static str, String)> {
    let salt_a = [0x01u8; 16];
    let salt_b = [0x02u8; 16];
    let ages = [Value::Integer(42), Value::Integer(7)];
    let diagnoses = [Value::Text("flu".into()), Value::Null];
    let age = cell_hash(&salt_a, 2, &ages, &mut Vec::new());
    let diagnosis = cell_hash(&salt_b, 2, &diagnoses, &mut Vec::new());
    let leaf = salted_leaf(&[age, diagnosis]);
    let salter = RowSalter::new(&[0x07u8; 32], "visits", 1);
    vec![
        ("cell(0x01×16, [42, 7])", age.to_string()),
        ("cell(0x02×16, [\"flu\", null])", diagnosis.to_string()),
        ("leaf of the two", leaf.to_string()),
        ("salt(group 0, column 0)", hex::encode(salter.salt(0, 0))),
        ("salt(group 5, column 2)", hex::encode(salter.salt(5, 2))),
    ]
}

#[test]
fn format_md_holds_the_salted_columns_vectors() {
    let doc = format_md();
    for (what, value) in vectors() {
        let line = format!("{what:<28} = {value}");
        assert!(
            doc.contains(&line),
            "FORMAT.md §14.1 lacks the line\n{line}"
        );
    }
    // The leaf is the RFC 6962 leaf hash of `u32 count || cells`.
    let (a, b) = (Hash([1; 32]), Hash([2; 32]));
    let mut data = vec![0, 0, 0, 2];
    data.extend_from_slice(&a.0);
    data.extend_from_slice(&b.0);
    assert_eq!(
        salted_leaf(&[a, b]),
        consort_crypto::merkle::leaf_hash(&data)
    );
}
