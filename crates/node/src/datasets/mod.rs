//! A member's datasets: taking data in (ingest, clean, store, commit, register on the
//! ledger), and listing, showing, verifying and exporting what it holds.
//!
//! The work runs where the member's directory is (the CLI process): it reads the inputs,
//! writes the member's own database, and registers the dataset through the node's API. Rows
//! never leave the member; the ledger gets the schema, counts and commitments only.
//!
//! Atomicity: rows go to a staging table that appears under its final name only when the
//! whole input went through; the ledger record is submitted after that, and if the ledger
//! refuses it or records it invalid the table is dropped again. A lost answer is chased
//! until the outcome is known (`register`); only if it cannot be known is the table kept,
//! and the error says so. A registered dataset whose table went missing can be restored by
//! running `dataset add` again with the same input.

use std::path::PathBuf;
use std::sync::Arc;

use consort_crypto::{Hash, MemberId};
use consort_data::files::{FileEntry, FileStore};
use consort_data::formats::Format;
use consort_data::hiding::{RowCommitment, RowSalter};
use consort_data::pipeline::{Ingest, IngestOptions, IngestReport};
use consort_data::recipe::{recipe_hash, Dedup, Recipe};
use consort_data::{Column, ColumnType, Row, Schema, Value};
use consort_ledger::dataset::{
    valid_dataset_name, ColumnSpec, CommitmentScheme, DatasetKind, DatasetRecord,
};
use consort_ledger::rules_limits::{RULES_V1, RULES_V3};
use consort_store::{open_store, DatasetStore};
use serde::Serialize;
use serde_json::json;

pub mod fetch;
mod held;
mod register;

pub use held::{export, list, show, verify, VerifyOutcome};

use crate::client::ApiClient;
use crate::config::MemberDir;
use crate::error::NodeError;

/// What `dataset add` / `dataset update` were asked to do.
#[derive(Debug, Clone, Default)]
pub struct AddRequest {
    pub name: String,
    pub inputs: Vec<PathBuf>,
    /// `csv`, `json`, `ndjson`, `parquet` or `files`; detected from the input when absent.
    pub format: Option<String>,
    pub recipe: Option<PathBuf>,
    pub key: Option<Vec<String>>,
    /// `all`, `key` or `none`.
    pub dedup: Option<String>,
    /// Register the next version of an existing dataset instead of a new one.
    pub update: bool,
}

/// What an ingest did, for the summary the CLI prints.
#[derive(Debug, Clone, Serialize)]
pub struct AddSummary {
    pub name: String,
    pub version: u32,
    pub kind: DatasetKind,
    pub table: String,
    pub tx_id: String,
    pub height: u64,
    pub rows_read: u64,
    pub rows_kept: u64,
    pub duplicates_removed: u64,
    pub rows_rejected: u64,
    pub rejects_by_reason: std::collections::BTreeMap<String, u64>,
    pub reject_file: Option<PathBuf>,
    pub commitment: String,
    pub columns: Vec<ColumnSpec>,
    /// The ledger already held this version and its table was missing: the table was
    /// rebuilt from the same input, nothing was registered.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restored: bool,
}

/// Bytes-read callback for progress bars.
pub type Progress = Box<dyn FnMut(u64) + Send>;

/// The table holding version `version` of dataset `name` in the member's database.
pub fn table_name(name: &str, version: u32) -> String {
    // Lower case: SQLite and MySQL table names may be case-insensitive.
    format!("ds_{}_v{version}", name.to_ascii_lowercase())
}

fn column_specs(schema: &Schema) -> Vec<ColumnSpec> {
    schema
        .columns
        .iter()
        .map(|c| ColumnSpec {
            name: c.name.clone(),
            ty: c.ty.as_str().to_string(),
            nullable: c.nullable,
        })
        .collect()
}

pub(crate) fn schema_of(columns: &[ColumnSpec]) -> Result<Schema, NodeError> {
    let columns = columns
        .iter()
        .map(|c| {
            Ok(Column {
                name: c.name.clone(),
                ty: ColumnType::parse(&c.ty).ok_or_else(|| {
                    NodeError::Corrupt(format!("column {} has unknown type {}", c.name, c.ty))
                })?,
                nullable: c.nullable,
            })
        })
        .collect::<Result<Vec<_>, NodeError>>()?;
    Ok(Schema { columns })
}

/// The ledger's current record of `owner`'s dataset `name`, with the id of the transaction
/// that registered it.
async fn ledger_record(
    client: &ApiClient,
    owner: &MemberId,
    name: &str,
) -> Result<Option<(DatasetRecord, Hash)>, NodeError> {
    let owner = owner.to_string();
    for entry in client.catalog().await? {
        if entry["owner"] == owner.as_str() && entry["name"] == name {
            let record: DatasetRecord = serde_json::from_value(json!({
                "name": entry["name"], "kind": entry["kind"], "columns": entry["columns"],
                "row_count": entry["row_count"], "commitment": entry["commitment"],
                "input_hash": entry["input_hash"], "recipe_hash": entry["recipe_hash"],
                "version": entry["version"], "parent": entry["parent"],
                "commitment_scheme": entry["commitment_scheme"],
            }))
            .map_err(|e| NodeError::Internal(format!("catalog entry for {name}: {e}")))?;
            let tx_id = entry["tx_id"]
                .as_str()
                .and_then(|s| s.parse::<Hash>().ok())
                .ok_or_else(|| {
                    NodeError::Internal(format!("catalog entry for {name} has no tx id"))
                })?;
            return Ok(Some((record, tx_id)));
        }
    }
    Ok(None)
}

/// Opens the member's dataset database.
pub async fn open_member_store(dir: &MemberDir) -> Result<Arc<dyn DatasetStore>, NodeError> {
    let config = dir.load_config()?;
    let url = dir.database_url(&config);
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(dir.data_dir())
            .map_err(|e| NodeError::io(format!("creating {}", dir.data_dir().display()), e))?;
    }
    open_store(&url).await.map_err(NodeError::Store)
}

struct Context {
    client: ApiClient,
    store: Arc<dyn DatasetStore>,
    /// The version this one updates.
    current: Option<(DatasetRecord, Hash)>,
    /// The ledger's record of this very version, when its local table is being rebuilt.
    restoring: Option<(DatasetRecord, Hash)>,
    version: u32,
    table: String,
    /// How the new version's rows are committed to: salted columns once the chain runs
    /// rule version 3; a rebuilt table keeps its record's scheme.
    scheme: CommitmentScheme,
}

async fn prepare(dir: &MemberDir, request: &AddRequest) -> Result<Context, NodeError> {
    if !valid_dataset_name(&request.name) {
        return Err(NodeError::Rejected(format!(
            "dataset name {:?} must be 1 to 48 characters of A-Z a-z 0-9 _, starting with a letter",
            request.name
        )));
    }
    if request.inputs.is_empty() {
        return Err(NodeError::Rejected("no input files given".into()));
    }
    let client = ApiClient::for_dir(dir)?;
    let me = dir.load_card()?.member_id;
    let current = ledger_record(&client, &me, &request.name).await?;
    let store = open_member_store(dir).await?;
    let table_exists = |table: String| {
        let store = store.clone();
        async move { store.table_exists(&table).await.map_err(NodeError::Store) }
    };
    let (current, restoring, version) = match (current, request.update) {
        (Some((record, tx)), false) => {
            if table_exists(table_name(&request.name, record.version)).await? {
                return Err(NodeError::Rejected(format!(
                    "dataset {} already exists (version {}); use `consort dataset update` for a new version",
                    request.name, record.version
                )));
            }
            // Registered, but the table is gone: the same input rebuilds it.
            let version = record.version;
            (None, Some((record, tx)), version)
        }
        (None, true) => {
            return Err(NodeError::Rejected(format!(
                "there is no dataset {} to update; use `consort dataset add`",
                request.name
            )))
        }
        (Some((record, tx)), true) => {
            let version = record.version + 1;
            (Some((record, tx)), None, version)
        }
        (None, false) => (None, None, 1),
    };
    let scheme = match &restoring {
        Some((record, _)) => record.commitment_scheme,
        None => {
            let rules = client.status().await?["rules_version"]
                .as_u64()
                .unwrap_or(u64::from(RULES_V1));
            if rules >= u64::from(RULES_V3) {
                CommitmentScheme::SaltedColumns
            } else {
                CommitmentScheme::RowHash
            }
        }
    };
    let table = table_name(&request.name, version);
    if table_exists(table.clone()).await? {
        return Err(NodeError::Rejected(format!(
            "table {table} already exists in the member's database but the ledger has no record of it (if an earlier `dataset add` reported its outcome unknown, `consort dataset list` shows it once committed); drop the table to start over, or choose another name"
        )));
    }
    Ok(Context {
        client,
        store,
        current,
        restoring,
        version,
        table,
        scheme,
    })
}

/// Registers the stored table, or, when rebuilding a registered version's missing table,
/// checks it against the ledger's record.
async fn finish(
    dir: &MemberDir,
    ctx: &Context,
    mut record: DatasetRecord,
    update: bool,
) -> Result<(String, u64), NodeError> {
    match &ctx.restoring {
        Some((ledger, tx_id)) => {
            record.parent = ledger.parent;
            register::restore(ctx, ledger, *tx_id, &record).await
        }
        None => register::register(dir, ctx, &record, update).await,
    }
}

/// Ingests, stores and registers a dataset (or its next version).
pub async fn add(
    dir: &MemberDir,
    request: AddRequest,
    progress: Progress,
) -> Result<AddSummary, NodeError> {
    let ctx = prepare(dir, &request).await?;
    if request.format.as_deref() == Some("files") {
        return add_files(dir, &request, ctx, progress).await;
    }
    let format = match request.format.as_deref() {
        None => None,
        Some(f) => Some(Format::parse(f).ok_or_else(|| {
            NodeError::Rejected(format!(
                "unknown --format {f:?}: use csv, json, ndjson, parquet or files"
            ))
        })?),
    };
    let (recipe, recipe_hash) = match &request.recipe {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| NodeError::io(format!("reading recipe {}", path.display()), e))?;
            (Some(Recipe::parse(&bytes)?), recipe_hash(&bytes))
        }
        None => (None, recipe_hash(b"")),
    };
    let dedup = match request.dedup.as_deref() {
        None => None,
        Some(d) => Some(Dedup::parse(d).ok_or_else(|| {
            NodeError::Rejected(format!("unknown --dedup {d:?}: use all, key or none"))
        })?),
    };
    let pseudonym_key = match &recipe {
        Some(r) if r.needs_pseudonym_key() => Some(*dir.pseudonym_key()?),
        _ => None,
    };
    std::fs::create_dir_all(dir.rejects_dir())
        .map_err(|e| NodeError::io(format!("creating {}", dir.rejects_dir().display()), e))?;
    let options = IngestOptions {
        format,
        recipe,
        key: request.key.clone(),
        dedup,
        pseudonym_key,
        reject_path: dir.rejects_dir().join(format!(
            "{}-v{}-{}.ndjson",
            request.name,
            ctx.version,
            crate::clock::now_ms()
        )),
        commitment: row_commitment(dir, ctx.scheme, &request.name, ctx.version)?,
    };

    let current = ctx.current.as_ref().map(|(record, _)| record.clone());
    let name = request.name.clone();
    let scheme = ctx.scheme;
    let check_columns = |report: &IngestReport| {
        let candidate = DatasetRecord {
            columns: column_specs(&report.schema),
            ..table_record(&name, report, recipe_hash, 0, None, scheme)
        };
        match current
            .as_ref()
            .and_then(|c| candidate.incompatibility_with(c))
        {
            Some(reason) => Err(NodeError::Rejected(format!(
                "the schema of {name} changed incompatibly: {reason}"
            ))),
            None => Ok(()),
        }
    };
    let report = stream_into_table(
        ctx.store.as_ref(),
        &ctx.table,
        request.inputs.clone(),
        options,
        progress,
        check_columns,
    )
    .await?;
    let record = table_record(
        &request.name,
        &report,
        recipe_hash,
        ctx.version,
        ctx.current.as_ref().map(|(_, tx)| *tx),
        ctx.scheme,
    );
    let (tx_id, height) = finish(dir, &ctx, record.clone(), request.update).await?;
    Ok(AddSummary {
        name: request.name,
        version: ctx.version,
        kind: DatasetKind::Table,
        table: ctx.table,
        tx_id,
        height,
        rows_read: report.rows_read,
        rows_kept: report.rows_kept,
        duplicates_removed: report.duplicates_removed,
        rows_rejected: report.rows_rejected,
        rejects_by_reason: report.rejects_by_reason,
        reject_file: report.reject_file,
        commitment: report.commitment.to_string(),
        columns: record.columns,
        restored: ctx.restoring.is_some(),
    })
}

/// Streams `inputs` through the ingest pipeline into `table`: parse, clean and hash on a
/// blocking thread while this task writes to a staging table, concurrently. When the whole
/// input went through and `accept` agrees with the report, the table appears under its
/// name; on any error (or refusal) nothing remains.
pub async fn stream_into_table(
    store: &dyn DatasetStore,
    table: &str,
    inputs: Vec<PathBuf>,
    options: IngestOptions,
    progress: Progress,
    accept: impl FnOnce(&IngestReport) -> Result<(), NodeError>,
) -> Result<IngestReport, NodeError> {
    // Parse, clean and hash on a blocking thread; write on this task, concurrently.
    let (schema_tx, schema_rx) = tokio::sync::oneshot::channel::<Schema>();
    let (rows_tx, mut rows_rx) = tokio::sync::mpsc::channel::<Vec<Row>>(4);
    let mut progress = progress;
    let ingest = tokio::task::spawn_blocking(move || {
        let ingest = Ingest::open(&inputs, &options)?;
        let _ = schema_tx.send(ingest.schema().clone());
        let mut sink = |rows: Vec<Row>| {
            rows_tx
                .blocking_send(rows)
                .map_err(|_| consort_data::DataError::Invalid("the database writer stopped".into()))
        };
        ingest.run(&mut sink, &mut |bytes| progress(bytes))
    });
    let Ok(schema) = schema_rx.await else {
        // The ingest failed before it could fix a schema: report why.
        drop(rows_rx);
        return match ingest.await {
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(_)) => Err(NodeError::Internal("the ingest gave no schema".into())),
            Err(e) => Err(NodeError::Internal(format!("ingest task: {e}"))),
        };
    };
    // Nullability is only known for sure at the end; the table allows NULL everywhere and
    // the ledger records what the data showed.
    let mut table_schema = schema;
    for column in &mut table_schema.columns {
        column.nullable = true;
    }
    let write_result = async {
        let mut load = store
            .begin_load(table, &table_schema)
            .await
            .map_err(NodeError::Store)?;
        let mut next_row = 0u64;
        while let Some(rows) = rows_rx.recv().await {
            let numbered: Vec<(u64, Row)> = rows
                .into_iter()
                .map(|row| {
                    next_row += 1;
                    (next_row - 1, row)
                })
                .collect();
            if let Err(e) = load.insert(numbered).await {
                let _ = load.abort().await;
                return Err(NodeError::Store(e));
            }
        }
        Ok(load)
    }
    .await;
    drop(rows_rx);
    let report = ingest
        .await
        .map_err(|e| NodeError::Internal(format!("ingest task: {e}")))?;
    let outcome = match (report, write_result) {
        (Ok(report), Ok(load)) => {
            if let Err(refusal) = accept(&report) {
                let _ = load.abort().await;
                return Err(refusal);
            }
            load.commit().await.map_err(NodeError::Store)?;
            Ok(report)
        }
        (Err(e), Ok(load)) => {
            let _ = load.abort().await;
            Err(e.into())
        }
        // A write error stops the ingest too; the write error is the cause.
        (_, Err(e)) => Err(e),
    };
    outcome
}

fn table_record(
    name: &str,
    report: &IngestReport,
    recipe_hash: Hash,
    version: u32,
    parent: Option<Hash>,
    commitment_scheme: CommitmentScheme,
) -> DatasetRecord {
    DatasetRecord {
        name: name.to_string(),
        kind: DatasetKind::Table,
        columns: column_specs(&report.schema),
        row_count: report.rows_kept,
        commitment: report.commitment,
        input_hash: report.input_hash,
        recipe_hash,
        version,
        parent,
        commitment_scheme,
    }
}

/// What the ingest pipeline needs to commit to rows under `scheme`.
pub(crate) fn row_commitment(
    dir: &MemberDir,
    scheme: CommitmentScheme,
    name: &str,
    version: u32,
) -> Result<RowCommitment, NodeError> {
    Ok(match scheme {
        CommitmentScheme::RowHash => RowCommitment::RowHash,
        CommitmentScheme::SaltedColumns => {
            row_commitment_with(&*dir.commitment_key()?, scheme, name, version)
        }
    })
}

/// [`row_commitment`] with the member's commitment secret at hand.
pub(crate) fn row_commitment_with(
    commitment_key: &[u8; 32],
    scheme: CommitmentScheme,
    name: &str,
    version: u32,
) -> RowCommitment {
    match scheme {
        CommitmentScheme::RowHash => RowCommitment::RowHash,
        CommitmentScheme::SaltedColumns => {
            RowCommitment::SaltedColumns(Arc::new(RowSalter::new(commitment_key, name, version)))
        }
    }
}

/// The table layout of a files dataset: one row per file, in name order.
fn files_schema() -> Schema {
    let col = |name: &str, ty, nullable| Column {
        name: name.into(),
        ty,
        nullable,
    };
    Schema {
        columns: vec![
            col("name", ColumnType::Text, false),
            col("size", ColumnType::Integer, false),
            col("blake3", ColumnType::Text, false),
            col("media_type", ColumnType::Text, false),
            col("kind", ColumnType::Text, false),
            col("original_blake3", ColumnType::Text, false),
            col("metadata", ColumnType::Text, false),
        ],
    }
}

fn file_row(entry: &FileEntry) -> Row {
    let metadata = json!({ "image": entry.image, "audio": entry.audio, "text": entry.text, "original_size": entry.original_size });
    vec![
        Value::Text(entry.name.as_str().into()),
        Value::Integer(i64::try_from(entry.size).unwrap_or(i64::MAX)),
        Value::Text(entry.blake3.to_string().into()),
        Value::Text(entry.media_type.as_str().into()),
        Value::Text(
            serde_json::to_value(entry.kind)
                .ok()
                .and_then(|v| v.as_str().map(Into::into))
                .unwrap_or_default(),
        ),
        Value::Text(entry.original_blake3.to_string().into()),
        Value::Text(metadata.to_string().into()),
    ]
}

async fn add_files(
    dir: &MemberDir,
    request: &AddRequest,
    ctx: Context,
    progress: Progress,
) -> Result<AddSummary, NodeError> {
    let file_store = FileStore::open(dir.files_dir())?;
    let inputs = request.inputs.clone();
    let mut progress = progress;
    let report = tokio::task::spawn_blocking(move || {
        consort_data::files::ingest_files(&inputs, &file_store, &mut |b| progress(b))
    })
    .await
    .map_err(|e| NodeError::Internal(format!("files task: {e}")))??;
    let schema = files_schema();
    let mut load = ctx
        .store
        .begin_load(&ctx.table, &schema)
        .await
        .map_err(NodeError::Store)?;
    for (chunk_index, chunk) in report.entries.chunks(10_000).enumerate() {
        let rows: Vec<(u64, Row)> = chunk
            .iter()
            .enumerate()
            .map(|(i, e)| ((chunk_index * 10_000 + i) as u64, file_row(e)))
            .collect();
        if let Err(e) = load.insert(rows).await {
            let _ = load.abort().await;
            return Err(NodeError::Store(e));
        }
    }
    let record = DatasetRecord {
        name: request.name.clone(),
        kind: DatasetKind::Files,
        columns: Vec::new(),
        row_count: report.entries.len() as u64,
        commitment: report.commitment,
        input_hash: report.input_hash,
        recipe_hash: recipe_hash(b""),
        version: ctx.version,
        parent: ctx.current.as_ref().map(|(_, tx)| *tx),
        commitment_scheme: Default::default(),
    };
    if let Some((current, _)) = &ctx.current {
        if let Some(reason) = record.incompatibility_with(current) {
            let _ = load.abort().await;
            return Err(NodeError::Rejected(format!("{}: {reason}", request.name)));
        }
    }
    load.commit().await.map_err(NodeError::Store)?;
    let (tx_id, height) = finish(dir, &ctx, record, request.update).await?;
    Ok(AddSummary {
        name: request.name.clone(),
        version: ctx.version,
        kind: DatasetKind::Files,
        table: ctx.table,
        tx_id,
        height,
        rows_read: report.files_read,
        rows_kept: report.entries.len() as u64,
        duplicates_removed: report.duplicates,
        rows_rejected: 0,
        rejects_by_reason: Default::default(),
        reject_file: None,
        commitment: report.commitment.to_string(),
        columns: Vec::new(),
        restored: ctx.restoring.is_some(),
    })
}
