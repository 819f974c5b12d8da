//! Query SQL from the API, from a member's `QueryRequest` and in every owner's `judge` goes
//! through the ledger's lexical limits and then the planner; neither may panic, overflow a
//! stack or run long on any text (issue 15). A catalog with one dataset of every column type
//! lets fuzzed SQL reach the planner's walks, not only its name lookups.
#![no_main]

use consort_crypto::{Hash, MemberId};
use consort_ledger::dataset::{ColumnSpec, DatasetEntry, DatasetKind, DatasetRecord};
use consort_query::plan::Catalog;
use libfuzzer_sys::fuzz_target;

fn catalog() -> Catalog {
    let owner = MemberId([7; 16]);
    let columns = [
        ("region", "text"),
        ("year", "integer"),
        ("amount", "float"),
        ("ok", "boolean"),
        ("day", "date"),
        ("at", "timestamp"),
    ]
    .iter()
    .map(|(name, ty)| ColumnSpec {
        name: name.to_string(),
        ty: ty.to_string(),
        nullable: true,
    })
    .collect();
    Catalog {
        members: vec![(owner, "m".into())],
        datasets: vec![DatasetEntry {
            owner,
            record: DatasetRecord {
                name: "sales".into(),
                kind: DatasetKind::Table,
                columns,
                row_count: 10,
                commitment: Hash::ZERO,
                input_hash: Hash::ZERO,
                recipe_hash: Hash::ZERO,
                version: 1,
                parent: None,
                commitment_scheme: Default::default(),
            },
            tx_id: Hash::ZERO,
        }],
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(sql) = std::str::from_utf8(data) {
        let lexical = consort_ledger::sql_limits::check(sql, &consort_ledger::sql_limits::SQL_LIMITS);
        let planned = consort_query::plan(sql, &catalog());
        // The planner never accepts what the ledger refuses.
        assert!(!(lexical.is_err() && planned.is_ok()));
    }
});
