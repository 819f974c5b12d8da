//! Plain data sharing (`consort dataset fetch OWNER/NAME`): a member copies rows of another
//! member's table dataset over the TLS link, if the owner's grants give it `plain` on every
//! column it asks for.
//!
//! The recipient (the CLI, through its own node, which relays each request to the owner's
//! node over the peer link) pages through the rows in row-number order and checks them
//! against the ledger's commitment (docs/FORMAT.md §14.1, §16):
//! - a dataset committed with salted columns comes with an opening per row: the salts of
//!   the columns asked for and the cell hashes of the others. The recipient recomputes
//!   every leaf from the values it got, so a value that differs from the committed one is
//!   caught, while the columns it was not granted stay hidden (their salts never leave the
//!   owner);
//! - a dataset committed with row hashes (registered before rule version 3) can only be
//!   fetched whole, the recipient recomputing the commitment from the rows; a column
//!   subset is refused, because its leaves would let the recipient test guesses of the
//!   other columns.
//!
//! Finally the recipient reports the row count and the hash of what it received; the owner
//! recomputes both from its own table and records a `DataTransfer`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use consort_crypto::{Hash, MemberId};
use consort_data::canonical::{date_to_days, encode_row, timestamp_to_micros, Commitment};
use consort_data::formats::{create_writer, Format};
use consort_data::hiding::{
    leaf_from_opening, open_group, GroupOpening, LeafScratch, RowSalter, GROUP_ROWS,
};
use consort_data::{Column, Row, Schema, Value};
use consort_ledger::dataset::{CommitmentScheme, DatasetKind, DatasetRecord};
use consort_ledger::policy::{DataTransfer, Permission};
use consort_ledger::TxPayload;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ledger_record, schema_of, table_name};
use crate::client::ApiClient;
use crate::config::MemberDir;
use crate::core::NodeShared;
use crate::error::NodeError;

/// Rows per page: small enough for one peer frame and one API response, and a whole number
/// of salted-columns groups (312 of 16 rows), so a page never splits one.
pub const PAGE_ROWS: usize = 4_992;

/// A value on the wire: floats travel as their bits (so JSON relays keep them exact), dates
/// as days since 1970-01-01, timestamps as microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireValue {
    Null,
    Integer(i64),
    Float(u64),
    Boolean(bool),
    Text(String),
    Date(i32),
    Timestamp(i64),
}

impl From<&Value> for WireValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::Null => WireValue::Null,
            Value::Integer(i) => WireValue::Integer(*i),
            Value::Float(f) => WireValue::Float(f.to_bits()),
            Value::Boolean(b) => WireValue::Boolean(*b),
            Value::Text(s) => WireValue::Text(s.to_string()),
            Value::Date(d) => WireValue::Date(date_to_days(*d)),
            Value::Timestamp(t) => WireValue::Timestamp(timestamp_to_micros(*t)),
        }
    }
}

impl WireValue {
    pub fn to_value(&self) -> Result<Value, String> {
        Ok(match self {
            WireValue::Null => Value::Null,
            WireValue::Integer(i) => Value::Integer(*i),
            WireValue::Float(bits) => Value::Float(f64::from_bits(*bits)),
            WireValue::Boolean(b) => Value::Boolean(*b),
            WireValue::Text(s) => Value::Text(s.as_str().into()),
            WireValue::Date(days) => {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
                Value::Date(
                    epoch
                        .checked_add_signed(chrono::Duration::days(i64::from(*days)))
                        .ok_or_else(|| format!("date {days} days from 1970 is out of range"))?,
                )
            }
            WireValue::Timestamp(us) => Value::Timestamp(
                DateTime::<Utc>::from_timestamp_micros(*us)
                    .ok_or_else(|| format!("timestamp {us} µs is out of range"))?,
            ),
        })
    }
}

/// One page request, relayed by the recipient's node to the owner's node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageRequest {
    pub dataset: String,
    pub version_tx: Hash,
    /// Empty: every column.
    pub columns: Vec<String>,
    pub after_row: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Page {
    /// `(row number, projected values)` in row-number order.
    pub rows: Vec<(u64, Vec<WireValue>)>,
    /// For a salted-columns dataset: one opening per group of rows in the page.
    #[serde(default)]
    pub openings: Vec<WireOpening>,
}

/// A [`GroupOpening`] on the wire: salts as 32 lowercase hex digits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireOpening {
    pub salts: Vec<String>,
    pub hidden: Vec<Hash>,
}

impl From<&GroupOpening> for WireOpening {
    fn from(o: &GroupOpening) -> Self {
        WireOpening {
            salts: o.salts.iter().map(hex::encode).collect(),
            hidden: o.hidden.clone(),
        }
    }
}

impl WireOpening {
    fn to_opening(&self) -> Result<GroupOpening, String> {
        let salts = self
            .salts
            .iter()
            .map(|s| {
                let mut salt = [0u8; 16];
                if s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(format!("salt {s:?} is not lowercase hex"));
                }
                hex::decode_to_slice(s, &mut salt)
                    .map_err(|_| format!("salt {s:?} is not 32 hex digits"))?;
                Ok(salt)
            })
            .collect::<Result<_, String>>()?;
        Ok(GroupOpening {
            salts,
            hidden: self.hidden.clone(),
        })
    }
}

/// Why a column subset of a row-hash dataset is not served.
fn row_hash_subset_refusal(owner: &str, dataset: &str, version: u32) -> String {
    format!(
        "{owner}'s dataset {dataset} (version {version}) is committed with row hashes, which would let the recipient of some columns test guesses of the others; it can only be fetched whole until {owner} registers it again (`consort dataset update`) under the salted-columns commitment"
    )
}

/// The recipient's confirmation after the last page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoneRequest {
    pub dataset: String,
    pub version_tx: Hash,
    pub columns: Vec<String>,
    pub rows: u64,
    pub content_hash: Hash,
}

/// Domain of [`ContentHasher`].
pub const TRANSFER_DOMAIN: &str = "consort/transfer/v1";

/// BLAKE3 over `"consort/transfer/v1" || 0x00 || u32 column count || each column name
/// (u32 length, UTF-8) || each row: u64 row number || u32 length || canonical encoding of
/// the projected row` (all integers little-endian).
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    pub fn new(columns: &[String]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(TRANSFER_DOMAIN.as_bytes());
        h.update(&[0]);
        h.update(&(columns.len() as u32).to_le_bytes());
        for c in columns {
            h.update(&(c.len() as u32).to_le_bytes());
            h.update(c.as_bytes());
        }
        Self(h)
    }

    pub fn push(&mut self, row_number: u64, projected: &Row) {
        let enc = encode_row(projected);
        self.0.update(&row_number.to_le_bytes());
        self.0.update(&(enc.len() as u32).to_le_bytes());
        self.0.update(&enc);
    }

    pub fn finish(&self) -> Hash {
        Hash(*self.0.finalize().as_bytes())
    }
}

/// The columns asked for, by name and position in the full schema.
type Picked = Vec<(String, usize)>;

/// What the owner's node checks on every request: the dataset is this member's table at
/// that version, the columns exist, and `from` holds `plain` on each (an owner fetching its
/// own data needs no grant). Returns the record, the full schema and the column names and
/// positions asked for.
fn authorize(
    node: &NodeShared,
    from: &MemberId,
    dataset: &str,
    version_tx: &Hash,
    columns: &[String],
) -> Result<(DatasetRecord, Schema, Picked), String> {
    let me = node.me;
    let now = node.clock.now_ms();
    node.chain.read(|state| {
        let entry = state
            .dataset(&me, dataset)
            .ok_or_else(|| format!("{} has no dataset named {dataset}", node.name))?;
        if entry.tx_id != *version_tx {
            return Err(format!(
                "dataset {dataset} is now at version {} ({}); fetch that version",
                entry.record.version, entry.tx_id
            ));
        }
        if entry.record.kind != DatasetKind::Table {
            return Err(format!(
                "{dataset} is a files dataset; fetching files is not supported yet"
            ));
        }
        let schema = schema_of(&entry.record.columns).map_err(|e| e.to_string())?;
        let wanted: Vec<String> = if columns.is_empty() {
            schema.columns.iter().map(|c| c.name.clone()).collect()
        } else {
            columns.to_vec()
        };
        let mut picked: Picked = Vec::with_capacity(wanted.len());
        for name in wanted {
            if picked.iter().any(|(n, _)| *n == name) {
                return Err(format!("column {name:?} is asked for twice"));
            }
            let index = schema
                .index_of(&name)
                .ok_or_else(|| format!("dataset {dataset} has no column {name:?}"))?;
            if *from != me {
                let plain = state.grants_on(&me, dataset).any(|g| {
                    g.applies_to(from, now)
                        && g.grant.permissions_on(&name).contains(&Permission::Plain)
                });
                if !plain {
                    let who = state
                        .members()
                        .get(from)
                        .map(|m| m.name.clone())
                        .unwrap_or_else(|| from.to_string());
                    return Err(format!(
                        "column {name:?} of {dataset} lacks permission \"plain\" for {who}"
                    ));
                }
            }
            picked.push((name, index));
        }
        let whole = picked.iter().map(|(_, i)| *i).eq(0..schema.columns.len());
        if !whole && entry.record.commitment_scheme == CommitmentScheme::RowHash {
            return Err(row_hash_subset_refusal(
                &node.name,
                dataset,
                entry.record.version,
            ));
        }
        Ok((entry.record.clone(), schema, picked))
    })
}

fn project(row: &Row, picked: &[(String, usize)]) -> Row {
    picked
        .iter()
        .map(|(_, i)| row.get(*i).cloned().unwrap_or(Value::Null))
        .collect()
}

/// Owner side: one page of rows for `from`.
pub async fn serve_page(
    node: &NodeShared,
    from: MemberId,
    req: PageRequest,
) -> Result<Page, String> {
    let (record, schema, picked) =
        authorize(node, &from, &req.dataset, &req.version_tx, &req.columns)?;
    let store = node.queries.store().await.map_err(|e| e.to_string())?;
    let table = table_name(&record.name, record.version);
    let first = req.after_row.map_or(0, |a| a.saturating_add(1));
    let salter = match record.commitment_scheme {
        CommitmentScheme::RowHash => None,
        CommitmentScheme::SaltedColumns => {
            // Past the last row there is nothing to open: the recipient's last request
            // finds the end there.
            if !first.is_multiple_of(GROUP_ROWS as u64) && first < record.row_count {
                return Err(format!(
                    "pages of {} start at a multiple of {GROUP_ROWS} rows (its commitment groups rows), not at row {first}",
                    record.name
                ));
            }
            let key = node.queries.commitment_key().map_err(|e| e.to_string())?;
            Some(RowSalter::new(key, &record.name, record.version))
        }
    };
    let (numbers, rows): (Vec<u64>, Vec<Row>) = store
        .read_rows(&table, &schema, req.after_row, PAGE_ROWS)
        .await
        .map_err(|e| format!("reading {}: {e}", record.name))?
        .into_iter()
        .unzip();
    let mut page = Page::default();
    if let Some(salter) = &salter {
        // Rows are numbered from 0 without gaps, so a group is a run of rows with the same
        // number / GROUP_ROWS.
        let positions: Vec<usize> = picked.iter().map(|(_, i)| *i).collect();
        let mut scratch = LeafScratch::default();
        let mut start = 0;
        while let Some(&number) = numbers.get(start) {
            let group = number / GROUP_ROWS as u64;
            let len = numbers[start..]
                .iter()
                .take_while(|n| *n / GROUP_ROWS as u64 == group)
                .count();
            let rows = &rows[start..start + len];
            let opening = open_group(salter, group, rows, &positions, &mut scratch);
            page.openings.push(WireOpening::from(&opening));
            start += len;
        }
    }
    for (number, row) in numbers.into_iter().zip(&rows) {
        let projected = project(row, &picked);
        page.rows
            .push((number, projected.iter().map(WireValue::from).collect()));
    }
    Ok(page)
}

/// Owner side: checks the recipient's count and content hash against its own table and
/// records the `DataTransfer`; returns its transaction id.
pub async fn serve_done(
    node: &NodeShared,
    from: MemberId,
    req: DoneRequest,
) -> Result<Hash, String> {
    let (record, schema, picked) =
        authorize(node, &from, &req.dataset, &req.version_tx, &req.columns)?;
    let store = node.queries.store().await.map_err(|e| e.to_string())?;
    let table = table_name(&record.name, record.version);
    let names: Vec<String> = picked.iter().map(|(n, _)| n.clone()).collect();
    let mut hasher = ContentHasher::new(&names);
    let mut count = 0u64;
    let mut after = None;
    loop {
        let rows = store
            .read_rows(&table, &schema, after, PAGE_ROWS)
            .await
            .map_err(|e| format!("reading {}: {e}", record.name))?;
        let Some((last, _)) = rows.last() else { break };
        after = Some(*last);
        for (number, row) in &rows {
            hasher.push(*number, &project(row, &picked));
            count += 1;
        }
    }
    if count != req.rows || hasher.finish() != req.content_hash {
        return Err(format!(
            "the recipient reports {} rows with content hash {}, but {} sent {count} rows hashing to {}",
            req.rows,
            req.content_hash,
            node.name,
            hasher.finish()
        ));
    }
    let payload = TxPayload::DataTransfer(DataTransfer {
        recipient: from,
        dataset: record.name.clone(),
        version_tx: req.version_tx,
        columns: names,
        rows: count,
        content_hash: req.content_hash,
    });
    crate::query::submit_payload(node, payload)
        .await
        .map(|c| c.tx_id)
        .map_err(|e| format!("recording the transfer: {e}"))
}

/// What `dataset fetch` did.
#[derive(Debug, Clone, Serialize)]
pub struct FetchSummary {
    pub owner: String,
    pub dataset: String,
    pub version: u32,
    pub columns: Vec<String>,
    pub rows: u64,
    pub out: PathBuf,
    /// How the rows were checked against the ledger's commitment: recomputed from whole
    /// rows (row-hash datasets), or from the values and the owner's openings (salted).
    pub verified_by: String,
    pub content_hash: String,
    pub transfer_tx: String,
}

/// Recipient side (runs beside the member directory, through its node's API): fetches every
/// page, verifies it against the ledger, writes `out` (format from its extension: csv,
/// ndjson, json or parquet), and has the owner record the transfer. On any failure the
/// output file is removed.
pub async fn fetch(
    dir: &MemberDir,
    owner: &str,
    name: &str,
    columns: &[String],
    out: &Path,
) -> Result<FetchSummary, NodeError> {
    let format = out
        .extension()
        .and_then(|e| e.to_str())
        .and_then(Format::parse)
        .ok_or_else(|| {
            NodeError::Rejected(format!(
                "cannot tell the format of {} from its extension (use .csv, .ndjson, .json or .parquet)",
                out.display()
            ))
        })?;
    let client = ApiClient::for_dir(dir)?;
    let owner_id = resolve_member(&client, owner).await?;
    if owner_id == dir.load_card()?.member_id {
        return Err(NodeError::Rejected(format!(
            "{owner}/{name} is this member's own dataset: use `consort dataset export {name} --format csv --out FILE`"
        )));
    }
    let (record, version_tx) = ledger_record(&client, &owner_id, name)
        .await?
        .ok_or_else(|| NodeError::Rejected(format!("{owner} has no dataset named {name}")))?;
    if record.kind != DatasetKind::Table {
        return Err(NodeError::Rejected(format!(
            "{name} is a files dataset; fetching files is not supported yet"
        )));
    }
    let schema = schema_of(&record.columns)?;
    let names: Vec<String> = if columns.is_empty() {
        schema.columns.iter().map(|c| c.name.clone()).collect()
    } else {
        columns.to_vec()
    };
    let mut projected_columns: Vec<Column> = Vec::with_capacity(names.len());
    let mut positions: Vec<usize> = Vec::with_capacity(names.len());
    for n in &names {
        let index = schema
            .index_of(n)
            .ok_or_else(|| NodeError::Rejected(format!("{name} has no column {n:?}")))?;
        if positions.contains(&index) {
            return Err(NodeError::Rejected(format!(
                "column {n:?} is asked for twice"
            )));
        }
        positions.push(index);
        projected_columns.push(schema.columns[index].clone());
    }
    let whole = positions.iter().copied().eq(0..schema.columns.len());
    if !whole && record.commitment_scheme == CommitmentScheme::RowHash {
        return Err(NodeError::Rejected(row_hash_subset_refusal(
            owner,
            name,
            record.version,
        )));
    }
    let result = fetch_into(
        &client,
        FetchTarget {
            owner: owner_id,
            record: &record,
            version_tx,
            names: &names,
            positions: &positions,
            whole,
            columns: schema.columns.len(),
        },
        &Schema {
            columns: projected_columns,
        },
        format,
        out,
    )
    .await;
    let (rows, content_hash, transfer_tx) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    };
    Ok(FetchSummary {
        owner: owner.to_string(),
        dataset: name.to_string(),
        version: record.version,
        columns: names,
        rows,
        out: out.to_path_buf(),
        verified_by: match record.commitment_scheme {
            CommitmentScheme::RowHash => "commitment",
            CommitmentScheme::SaltedColumns => "commitment (salted-columns openings)",
        }
        .into(),
        content_hash: content_hash.to_string(),
        transfer_tx: transfer_tx.to_string(),
    })
}

struct FetchTarget<'a> {
    owner: MemberId,
    record: &'a DatasetRecord,
    version_tx: Hash,
    names: &'a [String],
    /// Schema positions of `names`.
    positions: &'a [usize],
    whole: bool,
    /// Columns of the whole schema.
    columns: usize,
}

async fn fetch_into(
    client: &ApiClient,
    target: FetchTarget<'_>,
    schema: &Schema,
    format: Format,
    out: &Path,
) -> Result<(u64, Hash, Hash), NodeError> {
    let mut writer = create_writer(format, out, schema)?;
    let mut commitment = Commitment::new();
    let salted = target.record.commitment_scheme == CommitmentScheme::SaltedColumns;
    let mut scratch = LeafScratch::default();
    let mut hasher = ContentHasher::new(target.names);
    let mut after: Option<u64> = None;
    let mut count = 0u64;
    let columns = if target.whole {
        Vec::new()
    } else {
        target.names.to_vec()
    };
    loop {
        let request = json!({
            "owner": target.owner.to_string(),
            "request": PageRequest {
                dataset: target.record.name.clone(),
                version_tx: target.version_tx,
                columns: columns.clone(),
                after_row: after,
            },
        });
        let answer = client
            .post_json("/api/datasets/fetch-page", &request)
            .await?;
        let page: Page = serde_json::from_value(answer)
            .map_err(|e| NodeError::Rejected(format!("malformed page from the owner: {e}")))?;
        if page.rows.is_empty() {
            break;
        }
        let mut rows = Vec::with_capacity(page.rows.len());
        for (number, values) in &page.rows {
            // Salted leaves group rows by number, so the numbers must run from 0 without
            // gaps; a row-hash commitment only needs them in order.
            let in_order = if salted {
                *number == count
            } else {
                after.is_none_or(|a| *number > a)
            };
            if !in_order || values.len() != target.names.len() {
                return Err(NodeError::Rejected(format!(
                    "the owner sent a malformed row (number {number})"
                )));
            }
            after = Some(*number);
            let row: Row = values
                .iter()
                .map(WireValue::to_value)
                .collect::<Result<_, _>>()
                .map_err(NodeError::Rejected)?;
            if !salted {
                commitment.push_row(&row);
            }
            hasher.push(*number, &row);
            rows.push(row);
            count += 1;
        }
        if salted {
            let first = count - rows.len() as u64;
            let leaves = group_leaves(&target, first, &rows, &page.openings, &mut scratch)?;
            for leaf in leaves {
                commitment.push_leaf_hash(leaf);
            }
        }
        writer.write_rows(&rows)?;
    }
    writer.finish()?;
    if count != target.record.row_count || commitment.root() != target.record.commitment {
        return Err(NodeError::Rejected(format!(
            "the fetched rows do not match the ledger: {count} rows with root {}, the ledger records {} rows with root {}",
            commitment.root(),
            target.record.row_count,
            target.record.commitment
        )));
    }
    let content_hash = hasher.finish();
    let done = json!({
        "owner": target.owner.to_string(),
        "request": DoneRequest {
            dataset: target.record.name.clone(),
            version_tx: target.version_tx,
            columns,
            rows: count,
            content_hash,
        },
    });
    let answer = client.post_json("/api/datasets/fetch-done", &done).await?;
    let transfer_tx = answer["transfer_tx"]
        .as_str()
        .and_then(|s| s.parse::<Hash>().ok())
        .ok_or_else(|| NodeError::Rejected("the owner did not record the transfer".into()))?;
    Ok((count, content_hash, transfer_tx))
}

/// The leaves of one page of a salted-columns dataset whose first row is `first`: the
/// page must hold whole groups (the table's last group may be short), one opening each.
fn group_leaves(
    target: &FetchTarget<'_>,
    first: u64,
    rows: &[Row],
    openings: &[WireOpening],
    scratch: &mut LeafScratch,
) -> Result<Vec<Hash>, NodeError> {
    let malformed = |what: String| NodeError::Rejected(format!("the owner sent {what}"));
    let group_rows = GROUP_ROWS as u64;
    if !first.is_multiple_of(group_rows) {
        return Err(malformed(format!(
            "a page starting inside a group (row {first})"
        )));
    }
    let mut leaves = Vec::with_capacity(openings.len());
    let mut start = 0usize;
    while start < rows.len() {
        let number = first + start as u64;
        let group = number / group_rows;
        let size = target
            .record
            .row_count
            .saturating_sub(number)
            .min(group_rows) as usize;
        if size == 0 {
            return Err(malformed(format!(
                "row {number}, beyond the {} rows the ledger records",
                target.record.row_count
            )));
        }
        let end = start + size;
        let Some(values) = rows.get(start..end) else {
            return Err(malformed(format!("a page that ends inside group {group}")));
        };
        let opening = openings
            .get(leaves.len())
            .ok_or_else(|| malformed(format!("no opening for group {group}")))?
            .to_opening()
            .map_err(|e| malformed(format!("a malformed opening for group {group}: {e}")))?;
        let leaf = leaf_from_opening(target.columns, target.positions, values, &opening, scratch)
            .map_err(|e| malformed(format!("a malformed opening for group {group}: {e}")))?;
        leaves.push(leaf);
        start = end;
    }
    if leaves.len() != openings.len() {
        return Err(malformed(format!(
            "{} openings for {} groups",
            openings.len(),
            leaves.len()
        )));
    }
    Ok(leaves)
}

/// The member named `who` (by name or member id) in the node's view of the ledger.
pub async fn resolve_member(client: &ApiClient, who: &str) -> Result<MemberId, NodeError> {
    let status = client.status().await?;
    for m in status["members"].as_array().into_iter().flatten() {
        if m["name"].as_str() == Some(who) || m["member_id"].as_str() == Some(who) {
            if let Some(id) = m["member_id"].as_str().and_then(|s| s.parse().ok()) {
                return Ok(id);
            }
        }
    }
    Err(NodeError::Rejected(format!(
        "no member named {who:?} in the consortium"
    )))
}
