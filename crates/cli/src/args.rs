//! Command-line syntax (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "consort",
    version,
    about = "Compute on a consortium's data without handing it over"
)]
pub struct Cli {
    /// The member directory (created by `consort init`); the CLI finds the node and its token there.
    #[arg(long, global = true, env = "CONSORT_DIR")]
    pub dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a member: key pair, API token, config and public member card.
    Init {
        #[arg(long)]
        name: String,
        /// Address other members' nodes connect to.
        #[arg(long, default_value = consort_node::config::DEFAULT_PEER_ADDR)]
        peer_addr: String,
        /// Address of this node's HTTP API (loopback by default).
        #[arg(long, default_value = consort_node::config::DEFAULT_API_ADDR)]
        api_addr: String,
        /// Where the member's datasets are stored: sqlite://PATH, postgres://… or mysql://…
        /// (default: SQLite in DIR/data/datasets.sqlite).
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every member's registered datasets (names, owners, schemas, counts, commitments; no rows).
    Catalog {
        #[arg(long)]
        json: bool,
    },
    /// Create a consortium.
    #[command(subcommand)]
    Consortium(ConsortiumCommand),
    /// Run the node daemon.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Record files' BLAKE3 hashes, sizes and names on the ledger.
    Notarize {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Inspect, export and verify the ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Take in, list, show, export and verify this member's datasets.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Propose, approve and submit membership changes.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Grant a member (or '*', everyone) permissions on columns of one of this member's
    /// datasets: `--columns 'col:perm[+perm],…'` with perm one of plain, group, filter,
    /// aggregate, join. A column name with `,` or `:` goes in double quotes, a quote in it
    /// doubled: `--columns '"a:b":plain,"x,y":aggregate'`.
    Grant {
        /// The dataset (this member's).
        dataset: String,
        /// Member name or id, or '*'.
        #[arg(long)]
        to: String,
        #[arg(long)]
        columns: String,
        /// Groups or results built from fewer rows are suppressed.
        #[arg(long, default_value_t = consort_ledger::policy::DEFAULT_MIN_GROUP_SIZE)]
        min_group_size: u32,
        /// RFC 3339 time, YYYY-MM-DD, or a duration from now (90s, 30m, 12h, 7d).
        #[arg(long)]
        expires: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke one of this member's grants.
    Revoke {
        grant_id: String,
        #[arg(long)]
        json: bool,
    },
    /// The grants this member gave and received.
    Grants {
        #[arg(long)]
        json: bool,
    },
    /// Run a joint SQL query over the members' datasets.
    Query {
        sql: String,
        #[arg(long)]
        json: bool,
        /// Also write the answer as CSV.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up (and record the failure) after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// Past joint queries with their status.
    Queries {
        #[arg(long)]
        json: bool,
    },
    /// One query's ledger record, with each owner's decision.
    QueryShow {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Run three members on loopback, notarise files, and verify the ledger.
    Demo {
        #[arg(long)]
        json: bool,
        /// Leave the nodes running (until Ctrl-C) and print their API addresses.
        #[arg(long)]
        keep_running: bool,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum ConsortiumCommand {
    /// Write a genesis file from member cards.
    Create {
        #[arg(long)]
        out: PathBuf,
        /// The consortium's name.
        #[arg(long, default_value = "consortium")]
        name: String,
        #[arg(required = true)]
        cards: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Run the daemon until SIGINT or SIGTERM.
    Run {
        #[arg(long)]
        genesis: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Height, head hash, leader, members, this node's role.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// One block.
    Show {
        height: u64,
        #[arg(long)]
        json: bool,
    },
    /// One transaction.
    Tx {
        txid: String,
        #[arg(long)]
        json: bool,
    },
    /// Write the whole chain in the export format of docs/FORMAT.md.
    Export {
        #[arg(long)]
        out: PathBuf,
    },
    /// Replay from genesis, checking every hash, signature, Merkle root and state transition.
    Verify {
        /// Verify an export file instead of the node's chain.
        #[arg(long)]
        export: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write an inclusion proof for a transaction.
    Proof {
        txid: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an inclusion proof file.
    VerifyProof {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Copy another member's table dataset (OWNER/NAME) over the TLS link, if its grants
    /// give `plain` on every column asked for; verified against the ledger, recorded as a
    /// DataTransfer. The output format follows the extension of --out.
    Fetch {
        /// OWNER/NAME (owner by member name or id).
        source: String,
        /// Comma-separated columns (default: all).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Read, clean, store and register a new dataset.
    Add(DatasetInput),
    /// Register the next version of a dataset (refused if the schema changed incompatibly).
    Update(DatasetInput),
    /// This member's datasets.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One dataset: schema, counts, commitment, ledger reference.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a dataset in another format.
    Export {
        name: String,
        #[arg(long)]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Recompute the commitment from the stored rows and compare with the ledger (exit 1 on a mismatch).
    Verify {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct DatasetInput {
    pub name: String,
    /// Files or directories to read.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// csv, json, ndjson, parquet or files (default: detected from the input).
    #[arg(long)]
    pub format: Option<String>,
    /// A TOML preprocessing recipe.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Key columns, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub key: Option<Vec<String>>,
    /// all, key or none.
    #[arg(long)]
    pub dedup: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Start a proposal to add the member of CARD (signed by this member).
    ProposeAdd {
        card: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Start a proposal to remove a member (signed by this member).
    ProposeRemove {
        member_id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Start a proposal to move the ledger to a later rule version (docs/FORMAT.md §8.4),
    /// signed by this member; it takes effect once a majority has approved and it commits.
    ProposeRules {
        /// The rule version to move to (this build knows up to
        /// consort_ledger::rules_limits::LATEST_RULES).
        #[arg(long, default_value_t = consort_ledger::rules_limits::LATEST_RULES)]
        version: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Add this member's approval to a proposal file (in place).
    Approve { proposal: PathBuf },
    /// Submit a proposal once it carries a majority of approvals.
    Submit {
        proposal: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Committed transactions per second and commit latency on real nodes over loopback.
    Ledger(BenchLedgerArgs),
    /// Ingest a generated CSV into SQLite (clean, dedup, commit) and compare with sqlite3's `.import`.
    Ingest(BenchIngestArgs),
    /// One MPC operation by three node processes over TLS on loopback, checked against the
    /// plaintext answer.
    Mpc(BenchMpcArgs),
    /// A grouped joint query over three member processes end to end, against plain SQLite
    /// over all their rows.
    Query(BenchQueryArgs),
    /// Private set intersection between two member processes over TLS.
    Psi(BenchPsiArgs),
    /// Query planning with the hostile-SQL bounds against the unbounded planner before them.
    Plan(BenchPlanArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchPlanArgs {
    /// Plans per timed run.
    #[arg(long, default_value_t = 2_000)]
    pub iterations: u32,
    /// Timed runs of each side, interleaved; medians are reported.
    #[arg(long, default_value_t = 7)]
    pub runs: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct BenchPsiArgs {
    /// Keys per member (half of them shared).
    #[arg(long, default_value_t = 1_048_576)]
    pub n: usize,
    /// Seconds either party may wait on the other before the session fails.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct BenchQueryArgs {
    /// Visits per member (with --join: visits of the first member, and as many follow-ups
    /// of the second, three in four of them about the first one's patients).
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Time a JOIN of two members' datasets (PSI, then MPC over the joined rows) instead
    /// of the grouped query over the union.
    #[arg(long)]
    pub join: bool,
    /// Timed runs of the joint query (the best is reported; with --query expr, the
    /// median of interleaved runs of both queries).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Which query: `grouped` (the default); `expr`, the same query with three row
    /// expressions pushed down to the owners, timed against it; `distinct`,
    /// `COUNT(DISTINCT x)` (and `COUNT(DISTINCT person)`) over integers below 2^40 shared
    /// by several members; `median`, `MEDIAN(x)` over the same.
    #[arg(long, default_value = "grouped", value_parser = ["grouped", "expr", "distinct", "median"])]
    pub query: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct BenchMpcArgs {
    /// mul, lt, min, sort or sum.
    #[arg(long)]
    pub op: String,
    /// Number of elements.
    #[arg(long, default_value_t = 1_000_000)]
    pub n: usize,
    /// Seconds any party may wait on a peer before the session fails.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct BenchIngestArgs {
    /// Rows to generate (10,000,000 makes about 1 GB).
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Also time the pipeline alone (parse, clean, dedup, commitment) with no database.
    #[arg(long)]
    pub stages: bool,
    /// Runs of each side, interleaved (consort, `.import`, consort, …); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Also run consort with the old row-hash commitment each time, to show what the
    /// hiding (salted-columns) commitment costs.
    #[arg(long)]
    pub row_hash: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct BenchLedgerArgs {
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    #[arg(long, default_value_t = 100_000)]
    pub txs: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Transactions per client request.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long)]
    pub json: bool,
}

// The benchmarks take plain options; clap's structs stay here.

impl From<BenchLedgerArgs> for consort_bench::ledger::Options {
    fn from(a: BenchLedgerArgs) -> Self {
        Self {
            nodes: a.nodes,
            txs: a.txs,
            clients: a.clients,
            batch: a.batch,
            json: a.json,
        }
    }
}

impl From<BenchIngestArgs> for consort_bench::ingest::Options {
    fn from(a: BenchIngestArgs) -> Self {
        Self {
            rows: a.rows,
            stages: a.stages,
            runs: a.runs,
            row_hash: a.row_hash,
            json: a.json,
        }
    }
}

impl From<BenchMpcArgs> for consort_bench::mpc::Options {
    fn from(a: BenchMpcArgs) -> Self {
        Self {
            op: a.op,
            n: a.n,
            timeout: a.timeout,
            json: a.json,
        }
    }
}

impl From<BenchQueryArgs> for consort_bench::query::Options {
    fn from(a: BenchQueryArgs) -> Self {
        Self {
            rows: a.rows,
            join: a.join,
            runs: a.runs,
            expressions: a.query == "expr",
            json: a.json,
        }
    }
}

impl From<BenchPsiArgs> for consort_bench::psi::Options {
    fn from(a: BenchPsiArgs) -> Self {
        Self {
            n: a.n,
            timeout: a.timeout,
            json: a.json,
        }
    }
}

impl From<BenchPlanArgs> for consort_bench::plan::Options {
    fn from(a: BenchPlanArgs) -> Self {
        Self {
            iterations: a.iterations,
            runs: a.runs,
            json: a.json,
        }
    }
}
