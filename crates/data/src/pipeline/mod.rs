//! The ingest pipeline: read inputs, infer the schema, clean, reject, deduplicate, number
//! and commit rows, handing them to a sink in batches.
//!
//! [`Ingest::open`] reads a sample (the first [`SAMPLE_ROWS`] records over the inputs in
//! order) and fixes the schema, so the caller can create its staging table from
//! [`Ingest::schema`]; [`Ingest::run`] then streams every record through the recipe and
//! calls the sink with batches of about [`BATCH_ROWS`] rows. The `k`-th row handed to the
//! sink overall has row number `k` (0-based) and is leaf `k` of the commitment.
//!
//! Nullability in [`Ingest::schema`] reflects the sample; the report's schema reflects
//! every kept row (a column is nullable iff some kept row has a NULL in it), so stores
//! should create columns nullable. Memory is bounded apart from the dedup set (a 16-byte
//! fingerprint per distinct row, in a table at most 3/4 full) and the commitment (`O(log n)`).
//!
//! Every record read ends up kept, rejected (reject file, counted by reason; rows failing a
//! filter are rejects too) or removed as a duplicate:
//! `rows_read == rows_kept + rows_rejected + duplicates_removed`.

mod accept;
mod fingerprints;
mod inputs;
mod seal;
mod stage;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use consort_crypto::Hash;
use rayon::prelude::*;

use crate::canonical::Commitment;
use crate::clean::{position_named, Cleaner, Typer};
use crate::error::DataError;
use crate::formats::{Fields, Format, Item};
use crate::hiding::{RowCommitment, RowSalter};
use crate::infer::{finalize_names, Inference, SAMPLE_ROWS};
use crate::recipe::{recipe_hash, Dedup, Recipe};
use crate::value::Schema;
use accept::Accept;
pub use accept::{ProgressFn, Sink};
use fingerprints::FingerprintSet;
use inputs::Inputs;
use stage::{Prepared, Rejects};

/// Rows per sink call.
pub const BATCH_ROWS: usize = 10_000;

/// What to ingest and how.
#[derive(Clone, Default)]
pub struct IngestOptions {
    /// Input format; detected per file when `None`.
    pub format: Option<Format>,
    pub recipe: Option<Recipe>,
    /// Key columns (`--key`); wins over the recipe's `key`.
    pub key: Option<Vec<String>>,
    /// Deduplication (`--dedup`); wins over the recipe's. When neither sets it: `Key` if a
    /// key is given, else `None`.
    pub dedup: Option<Dedup>,
    /// Member secret for `keyed_hash` pseudonymisation. Never printed.
    pub pseudonym_key: Option<[u8; 32]>,
    /// Where rejected records go (created only if there is a reject).
    pub reject_path: PathBuf,
    /// How rows are committed to; salted leaves need the row numbers, so they are hashed
    /// as rows are accepted, in parallel per chunk.
    pub commitment: RowCommitment,
}

impl std::fmt::Debug for IngestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestOptions")
            .field("format", &self.format)
            .field("recipe", &self.recipe)
            .field("key", &self.key)
            .field("dedup", &self.dedup)
            .field("pseudonym_key", &self.pseudonym_key.map(|_| "<secret>"))
            .field("reject_path", &self.reject_path)
            .field("commitment", &self.commitment)
            .finish()
    }
}

/// The outcome of an ingest.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct IngestReport {
    pub schema: Schema,
    pub rows_read: u64,
    pub rows_kept: u64,
    pub duplicates_removed: u64,
    pub rows_rejected: u64,
    pub rejects_by_reason: BTreeMap<String, u64>,
    pub reject_file: Option<PathBuf>,
    pub commitment: Hash,
    /// BLAKE3 over the inputs in order, each as `u64 BE length || bytes`.
    pub input_hash: Hash,
    pub recipe_hash: Hash,
    pub bytes_read: u64,
    /// Effective deduplication and key.
    pub dedup: Dedup,
    pub key: Option<Vec<String>>,
}

impl serde::Serialize for Dedup {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Dedup::All => "all",
            Dedup::Key => "key",
            Dedup::None => "none",
        })
    }
}

fn no_rows(bytes: u64) -> DataError {
    DataError::Invalid(if bytes == 0 {
        "no rows: the input is empty".into()
    } else {
        "no data rows: the input has a header or structure but no records".into()
    })
}

/// A prepared ingest: sample read, schema fixed.
pub struct Ingest {
    inputs: Inputs,
    buffer: VecDeque<(usize, Item, bool)>,
    named_index: HashMap<String, usize>,
    cleaner: Cleaner,
    typer: Typer,
    schema: Schema,
    recipe_hash: Hash,
    dedup: Dedup,
    key: Option<Vec<String>>,
    reject_path: PathBuf,
    commitment: RowCommitment,
    /// Records the inputs likely hold, from the sample's bytes per record.
    expected_records: usize,
}

/// At most this many dedup fingerprints are reserved up front (a 1 GiB table); a larger
/// input grows the set as it goes.
const MAX_RESERVED_FINGERPRINTS: usize = 1 << 25;

/// The records `inputs` likely hold, extrapolated from the `records` in the first `read`
/// bytes. Reserving the dedup set for them spares rehashing it (and touching its memory
/// afresh) at every doubling.
fn expected_records(inputs: &[PathBuf], records: usize, read: u64) -> usize {
    let total: u64 = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    if read == 0 {
        return records;
    }
    let estimate = (total as f64 / read as f64 * records as f64) as usize;
    estimate.clamp(records, MAX_RESERVED_FINGERPRINTS.max(records))
}

impl Ingest {
    /// Reads the sample of `inputs` and infers the schema.
    pub fn open(inputs: &[PathBuf], options: &IngestOptions) -> Result<Self, DataError> {
        if inputs.is_empty() {
            return Err(DataError::Invalid("no input files".into()));
        }
        let mut src = Inputs {
            paths: inputs.to_vec(),
            next: 0,
            current: None,
            format: options.format,
            hasher: Some(blake3::Hasher::new()),
            done_bytes: 0,
            columns: None,
        };
        src.open_next()?;
        let mut buffer = VecDeque::new();
        let mut records = 0usize;
        let mut named_order: Vec<String> = Vec::new();
        let mut named_seen: HashSet<String> = HashSet::new();
        while records < SAMPLE_ROWS {
            let Some((i, item)) = src.next_item()? else {
                break;
            };
            if let Item::Record(r) = &item {
                records += 1;
                if let Fields::Named(pairs) = &r.fields {
                    for (k, _) in pairs {
                        if !named_seen.contains(k) {
                            named_seen.insert(k.clone());
                            named_order.push(k.clone());
                        }
                    }
                }
            }
            buffer.push_back((i, item, false));
        }
        if buffer.is_empty() {
            src.finish_current()?;
            return Err(no_rows(src.done_bytes));
        }
        let expected_records = expected_records(inputs, records, src.bytes());
        let (raw_names, declared) = match &src.columns {
            Some((cols, types, _)) => (cols.clone(), types.clone()),
            None => (named_order, None),
        };
        let named_index: HashMap<String, usize> = raw_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let input_names = finalize_names(raw_names)?;
        let recipe = options.recipe.clone().unwrap_or_default();
        let cleaner = Cleaner::new(&recipe, &input_names)?;
        let mut fixed = cleaner.fixed_types();
        if let Some(declared) = &declared {
            for (f, &i) in fixed.iter_mut().zip(cleaner.selection()) {
                if f.is_none() {
                    *f = declared.get(i).copied();
                }
            }
        }
        // Infer on the cleaned sample, keeping the cleaned fields for the run (and the
        // original text, should the record be rejected later).
        let mut inference = Inference::new(cleaner.names.len());
        for (_, item, cleaned) in buffer.iter_mut() {
            if let Item::Record(r) = item {
                let fields = match &r.fields {
                    Fields::Positional(f) => Ok(f.clone()),
                    Fields::Packed(f) => Ok(f.iter().map(|s| Some(s.to_string())).collect()),
                    Fields::Named(p) => position_named(p.clone(), &named_index),
                };
                if let Ok(f) = fields {
                    let text = cleaner.clean_text(f);
                    inference.observe(&text);
                    r.raw = Some(r.raw_text());
                    r.fields = Fields::Positional(text);
                    *cleaned = true;
                }
            }
        }
        let schema = inference.finish(&cleaner.names, &fixed);
        let key = options.key.clone().or_else(|| recipe.key.clone());
        let dedup = options.dedup.or(recipe.dedup).unwrap_or(if key.is_some() {
            Dedup::Key
        } else {
            Dedup::None
        });
        let typer = Typer::new(
            &cleaner,
            &schema,
            &recipe,
            dedup,
            key.as_deref(),
            options.pseudonym_key,
        )?;
        Ok(Self {
            inputs: src,
            buffer,
            named_index,
            cleaner,
            typer,
            schema,
            recipe_hash: recipe.hash.unwrap_or_else(|| recipe_hash(b"")),
            dedup,
            key,
            reject_path: options.reject_path.clone(),
            commitment: options.commitment.clone(),
            expected_records,
        })
    }

    /// The schema rows will have (nullability from the sample; see the module docs).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Streams every record through the recipe into `sink`.
    ///
    /// Three stages run at once on the cores (see [`run_stages`]): chunks are read,
    /// prepared in parallel ([`stage::prepare`]) and accepted in order
    /// ([`accept::Accept`]).
    pub fn run(self, sink: Sink<'_>, progress: ProgressFn<'_>) -> Result<IngestReport, DataError> {
        let Self {
            inputs,
            buffer,
            named_index,
            cleaner,
            typer,
            schema,
            recipe_hash,
            dedup,
            key,
            reject_path,
            commitment,
            expected_records,
        } = self;
        let salter = match commitment {
            RowCommitment::RowHash => None,
            RowCommitment::SaltedColumns(salter) => Some(salter),
        };
        let steps = stage::Steps {
            cleaner: &cleaner,
            typer: &typer,
            named_index: &named_index,
            commit_row_leaves: salter.is_none(),
            leaf_is_fingerprint: typer.fingerprint_is_leaf(),
        };
        let accept = Accept {
            paths: inputs.paths.clone(),
            rejects: Rejects {
                path: reject_path,
                out: None,
                count: 0,
                by_reason: BTreeMap::new(),
            },
            seen: FingerprintSet::with_capacity(if dedup == Dedup::None {
                0
            } else {
                expected_records
            }),
            commitment: Commitment::new(),
            nulls: vec![false; schema.columns.len()],
            null_mask: 0,
            fingerprints: Vec::new(),
            duplicate: Vec::new(),
            read: 0,
            kept: 0,
            dups: 0,
            batch: Vec::with_capacity(BATCH_ROWS),
        };
        let prepare = |chunk: Vec<(usize, Item, bool)>| {
            let prepared = chunk
                .par_iter()
                .map_init(stage::Scratch::default, |scratch, (src, item, cleaned)| {
                    (*src, stage::prepare(&steps, scratch, item, *cleaned))
                })
                .collect::<Vec<_>>();
            // Dropped here, on one thread: the records of a chunk share a few text blocks,
            // whose counts the workers would otherwise contend for.
            drop(chunk);
            prepared
        };
        let (mut inputs, accept, sealed) = run_stages(
            inputs,
            buffer,
            &prepare,
            accept,
            salter,
            &mut *sink,
            &mut *progress,
        )?;
        inputs.finish_current()?;
        let bytes_read = inputs.done_bytes;
        progress(bytes_read);
        let nulls = accept.nulls();
        let Accept {
            mut rejects,
            commitment,
            read,
            kept,
            dups,
            ..
        } = accept;
        if read == 0 {
            return Err(no_rows(bytes_read));
        }
        let reject_file = rejects.finish()?;
        let mut schema = schema;
        for (c, n) in schema.columns.iter_mut().zip(nulls) {
            c.nullable = n;
        }
        let input_hash = Hash(
            *inputs
                .hasher
                .take()
                .unwrap_or_default()
                .finalize()
                .as_bytes(),
        );
        Ok(IngestReport {
            schema,
            rows_read: read,
            rows_kept: kept,
            duplicates_removed: dups,
            rows_rejected: rejects.count,
            rejects_by_reason: rejects.by_reason,
            reject_file,
            commitment: sealed.unwrap_or(commitment).root(),
            input_hash,
            recipe_hash,
            bytes_read,
            dedup,
            key,
        })
    }
}

/// The acceptor's way to the sealer: its batches go there instead of to the sink.
struct SealForward(std::sync::mpsc::SyncSender<Vec<crate::value::Row>>);

/// Chunks that may wait between two stages: enough to ride out one stage's slow chunk,
/// few enough to bound memory.
const STAGE_QUEUE: usize = 2;

type Chunk = Vec<(usize, Item, bool)>;
type PreparedChunk = Vec<(usize, Prepared)>;

/// Runs the three stages as a pipeline: a reader thread reads chunks (CSV parsing and the
/// input hash, which are sequential), this thread prepares each on the rayon pool, and an
/// acceptor thread accepts them in order and feeds the sink. Bounded queues join them, so
/// no stage waits for the slowest of the others on every chunk, as a lockstep would.
///
/// A failing stage stops the others: the acceptor's error ends the preparing (its queue
/// closes), which ends the reading; a read error ends the preparing, and the acceptor
/// finishes what was prepared before it. The first error is returned.
///
/// With salted leaves a fourth stage, the sealer, sits between the acceptor and `sink`: it
/// hashes each batch's leaves in parallel (only once the acceptor has numbered the rows can
/// their salts be derived) and returns the commitment, so the acceptor never waits on it.
#[allow(clippy::too_many_arguments)]
fn run_stages(
    mut inputs: Inputs,
    mut buffer: VecDeque<(usize, Item, bool)>,
    prepare: &(dyn Fn(Chunk) -> PreparedChunk + Sync),
    mut accept: Accept,
    salter: Option<Arc<RowSalter>>,
    sink: Sink<'_>,
    progress: ProgressFn<'_>,
) -> Result<(Inputs, Accept, Option<Commitment>), DataError> {
    use std::sync::mpsc::sync_channel;
    let (chunk_tx, chunk_rx) = sync_channel::<Result<(Chunk, u64), DataError>>(STAGE_QUEUE);
    let (prepared_tx, prepared_rx) = sync_channel::<(PreparedChunk, u64)>(STAGE_QUEUE);
    let (batch_tx, batch_rx) = sync_channel::<Vec<crate::value::Row>>(STAGE_QUEUE);
    std::thread::scope(|scope| {
        let stage = |name: &str| std::thread::Builder::new().name(format!("consort-{name}"));
        let not_started = |name: &str, e: std::io::Error| {
            DataError::Invalid(format!("starting the ingest's {name} stage: {e}"))
        };
        let reader = stage("read")
            .spawn_scoped(scope, move || {
                loop {
                    match read_chunk(&mut inputs, &mut buffer) {
                        Ok(chunk) if chunk.is_empty() => break,
                        Ok(chunk) => {
                            if chunk_tx.send(Ok((chunk, inputs.bytes()))).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = chunk_tx.send(Err(e));
                            break;
                        }
                    }
                }
                inputs
            })
            .map_err(|e| not_started("read", e))?;
        let mut sink = Some(sink);
        let (sealer, mut forward): (_, Option<SealForward>) = match (salter, sink.take()) {
            (Some(salter), Some(to_sink)) => {
                let sealer = stage("seal")
                    .spawn_scoped(scope, move || seal::run(&salter, batch_rx, to_sink))
                    .map_err(|e| not_started("seal", e))?;
                (Some(sealer), Some(SealForward(batch_tx)))
            }
            (_, to_sink) => {
                sink = to_sink;
                (None, None)
            }
        };
        let acceptor = stage("accept")
            .spawn_scoped(scope, move || -> Result<Accept, DataError> {
                let mut to_sealer;
                let sink: Sink<'_> = match (forward.take(), sink) {
                    (Some(SealForward(tx)), _) => {
                        to_sealer = move |rows| {
                            tx.send(rows).map_err(|_| {
                                DataError::Invalid("the ingest's seal stage stopped".into())
                            })
                        };
                        &mut to_sealer
                    }
                    (None, Some(sink)) => sink,
                    (None, None) => {
                        return Err(DataError::Invalid("the ingest has no sink".into()))
                    }
                };
                for (prepared, bytes) in prepared_rx {
                    accept.chunk(prepared, bytes, &mut *sink, &mut *progress)?;
                }
                accept.flush(sink)?;
                Ok(accept)
            })
            .map_err(|e| not_started("accept", e))?;
        let mut read_error = None;
        for message in chunk_rx {
            match message {
                Ok((chunk, bytes)) => {
                    if prepared_tx.send((prepare(chunk), bytes)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        drop(prepared_tx);
        let stage_panicked =
            |stage: &str| DataError::Invalid(format!("the ingest's {stage} stage panicked"));
        let accepted = acceptor.join().map_err(|_| stage_panicked("accept"))?;
        let sealed = match sealer {
            Some(sealer) => Some(sealer.join().map_err(|_| stage_panicked("seal"))?),
            None => None,
        };
        let inputs = reader.join().map_err(|_| stage_panicked("read"))?;
        // The sealer's error is the cause of the acceptor's "stopped".
        let sealed = sealed.transpose()?;
        let accept = accepted?;
        match read_error {
            Some(e) => Err(e),
            None => Ok((inputs, accept, sealed)),
        }
    })
}

/// Items per parallel step: enough to amortise the fork and join, few enough that a chunk
/// of wide records stays small in memory.
const CHUNK_ITEMS: usize = 4096;

/// The next items in input order, sample first: `(input index, item, already cleaned)`.
fn read_chunk(
    inputs: &mut Inputs,
    buffer: &mut VecDeque<(usize, Item, bool)>,
) -> Result<Vec<(usize, Item, bool)>, DataError> {
    let mut chunk = Vec::with_capacity(CHUNK_ITEMS);
    while chunk.len() < CHUNK_ITEMS {
        if let Some(sampled) = buffer.pop_front() {
            chunk.push(sampled);
            continue;
        }
        match inputs.next_item()? {
            Some((src, item)) => chunk.push((src, item, false)),
            None => break,
        }
    }
    Ok(chunk)
}

/// Ingests `inputs`: see the module documentation. `sink` receives rows in row-number
/// order in batches; `progress` the bytes read so far.
pub fn ingest(
    inputs: &[PathBuf],
    options: &IngestOptions,
    sink: Sink<'_>,
    progress: ProgressFn<'_>,
) -> Result<IngestReport, DataError> {
    Ingest::open(inputs, options)?.run(sink, progress)
}
