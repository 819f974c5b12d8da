//! What a member holds: listing, showing, verifying (against the ledger's commitment) and
//! exporting its datasets.

use std::path::Path;

use consort_crypto::Hash;
use consort_data::files::FileStore;
use consort_data::formats::Format;
use consort_data::{Row, Schema, Value};
use consort_ledger::dataset::DatasetKind;
use consort_store::DatasetStore;
use serde::Serialize;
use serde_json::{json, Value as Json};

use super::{files_schema, ledger_record, open_member_store, schema_of, table_name};
use crate::client::ApiClient;
use crate::config::MemberDir;
use crate::error::NodeError;

/// The member's own datasets, from the ledger, with whether the local table is present.
pub async fn list(dir: &MemberDir) -> Result<Vec<Json>, NodeError> {
    let client = ApiClient::for_dir(dir)?;
    let me = dir.load_card()?.member_id.to_string();
    let store = open_member_store(dir).await?;
    let mut mine = Vec::new();
    for mut entry in client.catalog().await? {
        if entry["owner"] != me.as_str() {
            continue;
        }
        let name = entry["name"].as_str().unwrap_or_default().to_string();
        let version = entry["version"].as_u64().unwrap_or(0) as u32;
        let table = table_name(&name, version);
        let present = store.table_exists(&table).await.unwrap_or(false);
        entry["table"] = json!(table);
        entry["stored"] = json!(present);
        mine.push(entry);
    }
    Ok(mine)
}

/// One of the member's datasets, as `list` shows it.
pub async fn show(dir: &MemberDir, name: &str) -> Result<Json, NodeError> {
    list(dir)
        .await?
        .into_iter()
        .find(|d| d["name"] == name)
        .ok_or_else(|| NodeError::Rejected(format!("this member has no dataset named {name}")))
}

/// What `dataset verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyOutcome {
    pub name: String,
    pub version: u32,
    pub rows: u64,
    pub ledger_commitment: String,
    pub recomputed_commitment: String,
    pub matches: bool,
    /// Files whose stored bytes are missing or changed (files datasets).
    pub bad_files: Vec<String>,
}

const PAGE: usize = 10_000;

/// Calls `each` with every page of `table`'s rows, in row-number order, so no dataset is
/// ever read into memory whole.
async fn for_each_page(
    store: &dyn DatasetStore,
    table: &str,
    schema: &Schema,
    mut each: impl FnMut(Vec<Row>) -> Result<(), NodeError>,
) -> Result<(), NodeError> {
    let mut after = None;
    loop {
        let page = store
            .read_rows(table, schema, after, PAGE)
            .await
            .map_err(NodeError::Store)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(*last);
        each(page.into_iter().map(|(_, row)| row).collect())?;
    }
}

/// Recomputes the commitment from the stored rows (and, for files, the stored bytes) and
/// compares it with the ledger's record.
pub async fn verify(dir: &MemberDir, name: &str) -> Result<VerifyOutcome, NodeError> {
    let client = ApiClient::for_dir(dir)?;
    let me = dir.load_card()?.member_id;
    let (record, _) = ledger_record(&client, &me, name)
        .await?
        .ok_or_else(|| NodeError::Rejected(format!("this member has no dataset named {name}")))?;
    let store = open_member_store(dir).await?;
    let table = table_name(name, record.version);
    let schema = match record.kind {
        DatasetKind::Table => schema_of(&record.columns)?,
        DatasetKind::Files => files_schema(),
    };
    let mut commitment = consort_data::canonical::Commitment::new();
    let mut entries = Vec::new();
    let mut rows = 0u64;
    let salter = match super::row_commitment(dir, record.commitment_scheme, name, record.version)? {
        consort_data::hiding::RowCommitment::SaltedColumns(salter) => Some(salter),
        consort_data::hiding::RowCommitment::RowHash => None,
    };
    // Pages come in row-number order, numbered from 0 without gaps.
    let mut salted = salter
        .as_deref()
        .map(consort_data::hiding::SaltedCommitment::new);
    for_each_page(store.as_ref(), &table, &schema, |page| {
        if let Some(salted) = salted.as_mut() {
            salted.push(&page);
        }
        for row in &page {
            rows += 1;
            match record.kind {
                DatasetKind::Table => {
                    if salted.is_none() {
                        commitment.push_row(row);
                    }
                }
                DatasetKind::Files => {
                    if let (Some(Value::Text(name)), Some(Value::Text(hash))) =
                        (row.first(), row.get(2))
                    {
                        entries.push((name.clone(), hash.parse::<Hash>().unwrap_or_default()));
                    }
                }
            }
        }
        Ok(())
    })
    .await?;
    let mut bad_files = Vec::new();
    let recomputed = match record.kind {
        DatasetKind::Table => match salted {
            Some(salted) => salted.finish().root(),
            None => commitment.root(),
        },
        DatasetKind::Files => {
            let file_store = FileStore::open(dir.files_dir())?;
            for (name, hash) in &entries {
                if !matches!(
                    file_store.verify(hash)?,
                    consort_data::files::BlobCheck::Intact
                ) {
                    bad_files.push(name.to_string());
                }
            }
            let leaves: Vec<Vec<u8>> = entries
                .iter()
                .map(|(name, hash)| consort_data::files::commitment_leaf(name, hash))
                .collect();
            consort_crypto::merkle::root(&leaves)
        }
    };
    Ok(VerifyOutcome {
        name: name.to_string(),
        version: record.version,
        rows,
        ledger_commitment: record.commitment.to_string(),
        recomputed_commitment: recomputed.to_string(),
        matches: recomputed == record.commitment
            && rows == record.row_count
            && bad_files.is_empty(),
        bad_files,
    })
}

/// Writes one of the member's table datasets to `out` in `format`.
pub async fn export(
    dir: &MemberDir,
    name: &str,
    format: &str,
    out: &Path,
) -> Result<u64, NodeError> {
    let format = Format::parse(format).ok_or_else(|| {
        NodeError::Rejected(format!(
            "unknown --format {format:?}: use csv, ndjson or parquet"
        ))
    })?;
    let client = ApiClient::for_dir(dir)?;
    let me = dir.load_card()?.member_id;
    let (record, _) = ledger_record(&client, &me, name)
        .await?
        .ok_or_else(|| NodeError::Rejected(format!("this member has no dataset named {name}")))?;
    if record.kind != DatasetKind::Table {
        return Err(NodeError::Rejected(format!(
            "{name} is a files dataset; its files are in {}",
            dir.files_dir().display()
        )));
    }
    let schema = schema_of(&record.columns)?;
    let store = open_member_store(dir).await?;
    let table = table_name(name, record.version);
    let mut writer = consort_data::formats::create_writer(format, out, &schema)?;
    let mut written = 0u64;
    for_each_page(store.as_ref(), &table, &schema, |rows| {
        written += rows.len() as u64;
        Ok(writer.write_rows(&rows)?)
    })
    .await?;
    writer.finish()?;
    Ok(written)
}
