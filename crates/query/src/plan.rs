//! The federated plan of a joint query and its canonical hash.
//!
//! A plan says which datasets are read (at which ledger version), what every owner runs
//! locally (identical for all owners), and how the compute parties combine the owners'
//! partial results: which aggregates, HAVING, ORDER BY and LIMIT. Every owner recomputes
//! the plan from the SQL and its own ledger view and checks the hash in the request.

use std::collections::{BTreeMap, BTreeSet};

use consort_crypto::encoding::Writer;
use consort_crypto::{hash_domain, Hash, MemberId};
use consort_ledger::dataset::DatasetEntry;
use consort_ledger::policy::{DatasetRef, Permission};
use consort_model::local_query::{
    CmpOp, LocalAggregate, LocalAggregateQuery, LocalSelect, Predicate,
};
use consort_model::{ColumnType, Schema};

use crate::canon::{cmp_code, put_derived, put_predicate};
use crate::error::QueryError;

/// Fractional bits of the fixed-point encoding of sums, means, variances, min and max.
pub const FRAC_BITS: u32 = consort_mpc::DEFAULT_FRAC_BITS;

/// What the planner knows about the consortium: member names and registered datasets
/// (built by the node from its ledger state).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub members: Vec<(MemberId, String)>,
    pub datasets: Vec<DatasetEntry>,
}

/// The owner-local part of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalWork {
    /// Filter, group and compute partial aggregates (always `CountRows` first).
    Aggregate(LocalAggregateQuery),
    /// Filter and select plain columns.
    Select(LocalSelect),
}

/// An aggregate function of the SQL subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AggFunc {
    CountRows,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    VarPop,
    StddevPop,
    VarSamp,
    StddevSamp,
    /// `COUNT(DISTINCT x)` over the union of the owners' values.
    CountDistinct,
    /// `SUM(DISTINCT x)` over the union of the owners' values.
    SumDistinct,
    /// `PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY x)`; `MEDIAN(x)` is p = 0.5.
    PercentileCont,
    /// `PERCENTILE_DISC(p) WITHIN GROUP (ORDER BY x)`.
    PercentileDisc,
}

impl AggFunc {
    pub fn sql_name(self) -> &'static str {
        match self {
            AggFunc::CountRows | AggFunc::Count => "COUNT",
            AggFunc::Sum => "SUM",
            AggFunc::Avg => "AVG",
            AggFunc::Min => "MIN",
            AggFunc::Max => "MAX",
            AggFunc::VarPop => "VAR_POP",
            AggFunc::StddevPop => "STDDEV_POP",
            AggFunc::VarSamp => "VAR_SAMP",
            AggFunc::StddevSamp => "STDDEV_SAMP",
            AggFunc::CountDistinct => "COUNT(DISTINCT)",
            AggFunc::SumDistinct => "SUM(DISTINCT)",
            AggFunc::PercentileCont => "PERCENTILE_CONT",
            AggFunc::PercentileDisc => "PERCENTILE_DISC",
        }
    }

    /// Computed from a list of the owners' values, sorted in MPC, rather than from the
    /// owners' partial aggregates (see [`ValueList`]).
    pub fn needs_value_list(self) -> bool {
        matches!(
            self,
            AggFunc::CountDistinct
                | AggFunc::SumDistinct
                | AggFunc::PercentileCont
                | AggFunc::PercentileDisc
        )
    }
    fn code(self) -> u8 {
        self as u8
    }
}

/// One aggregate the compute parties evaluate (in the output, or only in HAVING /
/// ORDER BY).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggSpec {
    pub func: AggFunc,
    /// The column (None for `COUNT(*)`).
    pub column: Option<String>,
    /// The column's type (Integer for `COUNT(*)`).
    pub column_type: ColumnType,
    /// The fraction p of `PERCENTILE_CONT(p)` / `PERCENTILE_DISC(p)` (0.5 for `MEDIAN`).
    pub fraction: Option<Fraction>,
}

/// A fraction in [0, 1], compared by its bits so that plans stay `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction(u64);

impl Fraction {
    /// `p` if it is a number in [0, 1].
    pub fn new(p: f64) -> Option<Fraction> {
        // Adding 0.0 turns −0.0 into 0.0: one encoding per value.
        (0.0..=1.0)
            .contains(&p)
            .then(|| Fraction((p + 0.0).to_bits()))
    }
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// One column's values that every owner sends value by value, secret-shared, for the
/// aggregates that partial sums cannot give: `COUNT`/`SUM(DISTINCT x)` (each owner's
/// distinct values) and percentiles (every non-NULL value). Each value travels with a
/// secret label of its group; the compute parties sort the values within groups in MPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueList {
    pub column: String,
    pub column_type: ColumnType,
    /// Each owner sends each (group, value) pair once.
    pub distinct: bool,
}

impl AggSpec {
    /// The partial aggregates the owners must compute for this aggregate.
    pub fn partials(&self) -> Vec<LocalAggregate> {
        let c = self.column.clone().unwrap_or_default();
        if self.ordered_extreme() {
            return Vec::new();
        }
        match self.func {
            AggFunc::CountRows => vec![LocalAggregate::CountRows],
            AggFunc::Count => vec![LocalAggregate::Count(c)],
            AggFunc::Sum | AggFunc::Avg => {
                vec![LocalAggregate::Count(c.clone()), LocalAggregate::Sum(c)]
            }
            AggFunc::Min => vec![LocalAggregate::Count(c.clone()), LocalAggregate::Min(c)],
            AggFunc::Max => vec![LocalAggregate::Count(c.clone()), LocalAggregate::Max(c)],
            AggFunc::VarPop | AggFunc::StddevPop | AggFunc::VarSamp | AggFunc::StddevSamp => vec![
                LocalAggregate::Count(c.clone()),
                LocalAggregate::Sum(c.clone()),
                LocalAggregate::SumSquares(c),
            ],
            // Value lists, not partials.
            AggFunc::CountDistinct
            | AggFunc::SumDistinct
            | AggFunc::PercentileCont
            | AggFunc::PercentileDisc => Vec::new(),
        }
    }

    /// MIN/MAX of dates and timestamps: read from a sorted value list (its first or last
    /// value) rather than combined as partials.
    fn ordered_extreme(&self) -> bool {
        matches!(self.func, AggFunc::Min | AggFunc::Max)
            && matches!(self.column_type, ColumnType::Date | ColumnType::Timestamp)
    }

    /// The value list this aggregate is computed from, if any.
    pub fn value_list(&self) -> Option<ValueList> {
        (self.func.needs_value_list() || self.ordered_extreme()).then(|| ValueList {
            column: self.column.clone().unwrap_or_default(),
            column_type: self.column_type,
            distinct: matches!(self.func, AggFunc::CountDistinct | AggFunc::SumDistinct),
        })
    }

    /// The type of the revealed value.
    pub fn output_type(&self) -> ColumnType {
        match self.func {
            AggFunc::CountRows | AggFunc::Count | AggFunc::CountDistinct => ColumnType::Integer,
            AggFunc::Sum
            | AggFunc::Min
            | AggFunc::Max
            | AggFunc::SumDistinct
            | AggFunc::PercentileDisc => self.column_type,
            AggFunc::Avg
            | AggFunc::VarPop
            | AggFunc::StddevPop
            | AggFunc::VarSamp
            | AggFunc::StddevSamp
            | AggFunc::PercentileCont => ColumnType::Float,
        }
    }
}

/// What an output column shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputExpr {
    /// The i-th GROUP BY key.
    Key(usize),
    /// The i-th entry of [`Plan::aggregates`].
    Agg(usize),
    /// The i-th column of the raw selection ([`LocalSelect::columns`]).
    Column(usize),
    /// The i-th entry of [`Plan::computed`]: arithmetic over aggregates.
    Computed(usize),
}

/// Arithmetic over aggregates (`SUM(a) / SUM(b)`, `MAX(x) - MIN(x)`,
/// `100.0 * COUNT(*) FILTER (WHERE c) / COUNT(*)`), evaluated by the compute parties in
/// MPC, so an operand aggregate is revealed only if it is selected itself.
#[derive(Debug, Clone, PartialEq)]
pub enum AggExpr {
    /// The i-th entry of [`Plan::aggregates`].
    Agg(usize),
    /// An integer literal (`100`).
    Integer(i64),
    /// A float literal (`100.0`, `1e3`).
    Float(f64),
    Arith {
        op: consort_model::scalar::ArithOp,
        left: Box<AggExpr>,
        right: Box<AggExpr>,
    },
    Negate(Box<AggExpr>),
    /// `CAST(… AS DOUBLE)`: the value as a float, so `/` divides exactly.
    ToFloat(Box<AggExpr>),
    /// The value, or exactly 0 where its magnitude is below `ulps` units of 2^−16: a
    /// variance that is 0 up to the fixed-point rounding divides as 0 (giving NULL).
    ZeroBelow(Box<AggExpr>, u32),
    /// The square root of a float (0 for a negative value).
    Sqrt(Box<AggExpr>),
}

impl AggExpr {
    /// Integer or Float, by SQL's rules: integers stay integers under `+ - * / %`
    /// (`/` truncates toward zero); a float operand makes the result a float.
    pub fn result_type(&self, aggs: &[AggSpec]) -> ColumnType {
        match self {
            AggExpr::Agg(i) => match aggs.get(*i).map(AggSpec::output_type) {
                Some(ColumnType::Integer) => ColumnType::Integer,
                _ => ColumnType::Float,
            },
            AggExpr::Integer(_) => ColumnType::Integer,
            AggExpr::Float(_) | AggExpr::ToFloat(_) | AggExpr::Sqrt(_) => ColumnType::Float,
            AggExpr::Negate(x) | AggExpr::ZeroBelow(x, _) => x.result_type(aggs),
            AggExpr::Arith { left, right, .. } => {
                match (left.result_type(aggs), right.result_type(aggs)) {
                    (ColumnType::Integer, ColumnType::Integer) => ColumnType::Integer,
                    _ => ColumnType::Float,
                }
            }
        }
    }

    /// The aggregates it reads, by index.
    pub fn operands(&self, out: &mut Vec<usize>) {
        match self {
            AggExpr::Agg(i) => out.push(*i),
            AggExpr::Integer(_) | AggExpr::Float(_) => {}
            AggExpr::Arith { left, right, .. } => {
                left.operands(out);
                right.operands(out);
            }
            AggExpr::Negate(x)
            | AggExpr::ToFloat(x)
            | AggExpr::ZeroBelow(x, _)
            | AggExpr::Sqrt(x) => x.operands(out),
        }
    }
}

/// One column of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    /// As the user wrote it: the alias, the column name, or the aggregate's SQL text.
    pub name: String,
    pub expr: OutputExpr,
}

/// What ORDER BY sorts on (same indices as [`OutputExpr`]).
pub type OrderTarget = OutputExpr;

/// One ORDER BY key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderKey {
    pub target: OrderTarget,
    pub descending: bool,
}

/// A HAVING condition over aggregates, with SQL's three-valued logic (a comparison of a
/// NULL aggregate is unknown, and a group is kept only when the condition is true).
#[derive(Debug, Clone, PartialEq)]
pub enum HavingExpr {
    /// `aggregate op value` (value in real units).
    Compare {
        agg: usize,
        op: CmpOp,
        value: f64,
    },
    And(Box<HavingExpr>, Box<HavingExpr>),
    Or(Box<HavingExpr>, Box<HavingExpr>),
    Not(Box<HavingExpr>),
    /// `expr op value` for arithmetic over aggregates (`SUM(a) / COUNT(*) > 0.1`).
    CompareComputed {
        expr: AggExpr,
        op: CmpOp,
        value: f64,
    },
}

/// One side of a cross-member JOIN (`FROM a JOIN b ON a.k = b.k`).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinSide {
    /// The table alias (or the dataset name when there is none); the plan's virtual
    /// column names are `alias.column`.
    pub alias: String,
    /// The dataset name.
    pub dataset: String,
    /// The members holding it, sorted (several when `FROM name` is a union).
    pub owners: Vec<MemberId>,
    /// The dataset's schema (plain column names).
    pub schema: Schema,
    /// The join key column.
    pub key: String,
    /// This side's part of WHERE (plain names), evaluated by each owner into a secret 0/1
    /// mask per row; rows are never dropped before the intersection.
    pub filter: Option<Predicate>,
    /// The payload columns the compute parties need from this side (group keys and
    /// aggregate arguments, plain names), in first-use order.
    pub columns: Vec<String>,
}

impl JoinSide {
    /// What each owner of this side runs on its own table: the key, the payload columns
    /// and (with a WHERE part) the mask, for every row.
    pub fn local_select(&self) -> LocalSelect {
        let mut columns = vec![self.key.clone()];
        columns.extend(self.columns.iter().cloned());
        LocalSelect {
            derived: Vec::new(),
            columns,
            filter: None,
            mask: self.filter.clone(),
        }
    }

    /// The virtual (plan) name of one of this side's columns.
    pub fn qualified(&self, column: &str) -> String {
        format!("{}.{column}", self.alias)
    }

    /// The plain column of a virtual name, if it belongs to this side.
    pub fn plain<'a>(&self, qualified: &'a str) -> Option<&'a str> {
        qualified
            .strip_prefix(self.alias.as_str())
            .and_then(|r| r.strip_prefix('.'))
    }
}

/// A JOIN of two datasets (see docs/QUERY.md, "Joins"). The pairs of owners
/// (left owner, right owner) are aligned one by one: by PSI between two members, or
/// locally when one member holds both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinSpec {
    pub left: JoinSide,
    pub right: JoinSide,
}

impl JoinSpec {
    pub fn sides(&self) -> [&JoinSide; 2] {
        [&self.left, &self.right]
    }

    /// Every (left owner, right owner) pair, in the order they are aligned and input.
    pub fn pairs(&self) -> Vec<(MemberId, MemberId)> {
        let mut out = Vec::new();
        for l in &self.left.owners {
            for r in &self.right.owners {
                out.push((*l, *r));
            }
        }
        out
    }
}

/// The federated plan of one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub sql: String,
    /// Sorted by (owner, name).
    pub datasets: Vec<DatasetRef>,
    /// The dataset name (the same for every owner).
    pub dataset: String,
    pub schema: Schema,
    pub local: LocalWork,
    pub output: Vec<OutputColumn>,
    /// Aggregates evaluated by MPC (empty for a raw selection).
    pub aggregates: Vec<AggSpec>,
    pub having: Option<HavingExpr>,
    pub order_by: Vec<OrderKey>,
    pub limit: Option<u64>,
    /// Each column the query touches and how (virtual `alias.column` names for a join).
    pub uses: BTreeMap<String, BTreeSet<Permission>>,
    /// Arithmetic over aggregates that the output or ORDER BY shows
    /// ([`OutputExpr::Computed`]).
    pub computed: Vec<AggExpr>,
    /// The JOIN, if any. For a join `dataset` and `schema` describe the virtual joined
    /// relation, `local` holds no filter (each side's WHERE is in its [`JoinSide`]) and
    /// the owners run [`JoinSide::local_select`] instead.
    pub join: Option<JoinSpec>,
}

/// Plans `sql` against the catalog (see the crate docs for the subset).
///
/// Hostile SQL is refused, never a crash: the text is checked against the lexical limits
/// first, and the parse and the walk run on their own thread under a depth bound
/// ([`crate::bounds`]).
pub fn plan(sql: &str, catalog: &Catalog) -> Result<Plan, QueryError> {
    crate::bounds::check_lexical(sql)?;
    crate::bounds::plan_on_planner_stack(sql, catalog)
}

impl Plan {
    /// The output column names.
    pub fn columns(&self) -> Vec<String> {
        self.output.iter().map(|c| c.name.clone()).collect()
    }

    /// The distinct owners, sorted.
    pub fn owners(&self) -> Vec<MemberId> {
        let mut o: Vec<MemberId> = self.datasets.iter().map(|d| d.owner).collect();
        o.dedup();
        o
    }

    /// The owners' partial aggregates (empty for a raw selection).
    pub fn local_aggregates(&self) -> &[LocalAggregate] {
        match &self.local {
            LocalWork::Aggregate(q) => &q.aggregates,
            LocalWork::Select(_) => &[],
        }
    }

    /// The value lists the aggregates need, in first-use order (empty for most queries).
    pub fn value_lists(&self) -> Vec<ValueList> {
        let mut out: Vec<ValueList> = Vec::new();
        for l in self.aggregates.iter().filter_map(AggSpec::value_list) {
            if !out.contains(&l) {
                out.push(l);
            }
        }
        out
    }

    /// What each owner runs for one value list: the group keys and the value of every
    /// row that passes WHERE and whose value is not NULL. The owner drops repeated pairs
    /// itself for a DISTINCT list.
    pub fn value_list_select(&self, list: &ValueList) -> LocalSelect {
        let (derived, filter, mut columns) = match &self.local {
            LocalWork::Aggregate(q) => (q.derived.clone(), q.filter.clone(), q.group_by.clone()),
            LocalWork::Select(s) => (s.derived.clone(), s.filter.clone(), Vec::new()),
        };
        columns.push(list.column.clone());
        let not_null = Predicate::IsNull {
            column: list.column.clone(),
            negated: true,
        };
        let filter = Some(match filter {
            Some(Predicate::And(mut ps)) => {
                ps.push(not_null);
                Predicate::And(ps)
            }
            Some(f) => Predicate::And(vec![f, not_null]),
            None => not_null,
        });
        LocalSelect {
            derived,
            columns,
            filter,
            mask: None,
        }
    }

    /// Domain-separated BLAKE3 of the canonical encoding of the whole plan.
    pub fn hash(&self) -> Hash {
        hash_domain("consort/plan/v2", &[&self.canonical_bytes()])
    }

    /// The canonical encoding hashed by [`Plan::hash`] (crypto `Writer` conventions).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.string(&self.sql);
        w.list(&self.datasets, |w, d| {
            w.member_id(&d.owner).string(&d.name).hash(&d.version_tx);
        });
        w.string(&self.dataset);
        w.list(&self.schema.columns, |w, c| {
            w.string(&c.name).string(c.ty.as_str()).bool(c.nullable);
        });
        match &self.local {
            LocalWork::Aggregate(q) => {
                // Tags 2 and 3 mark local work with derived columns, so a plan without
                // expressions keeps the bytes (and hash) it had before they existed.
                if q.derived.is_empty() {
                    w.u8(0);
                } else {
                    w.u8(2);
                    w.list(&q.derived, put_derived);
                }
                w.option(q.filter.as_ref(), put_predicate);
                w.list(&q.group_by, |w, g| {
                    w.string(g);
                });
                w.list(&q.aggregates, |w, a| {
                    let (tag, col) = match a {
                        LocalAggregate::CountRows => (0, ""),
                        LocalAggregate::Count(c) => (1, c.as_str()),
                        LocalAggregate::Sum(c) => (2, c.as_str()),
                        LocalAggregate::SumSquares(c) => (3, c.as_str()),
                        LocalAggregate::Min(c) => (4, c.as_str()),
                        LocalAggregate::Max(c) => (5, c.as_str()),
                    };
                    w.u8(tag).string(col);
                });
            }
            LocalWork::Select(s) => {
                if s.derived.is_empty() {
                    w.u8(1);
                } else {
                    w.u8(3);
                    w.list(&s.derived, put_derived);
                }
                w.option(s.filter.as_ref(), put_predicate);
                w.list(&s.columns, |w, c| {
                    w.string(c);
                });
            }
        }
        fn put_expr(w: &mut Writer, e: &OutputExpr) {
            let (tag, i) = match e {
                OutputExpr::Key(i) => (0, i),
                OutputExpr::Agg(i) => (1, i),
                OutputExpr::Column(i) => (2, i),
                OutputExpr::Computed(i) => (3, i),
            };
            w.u8(tag).u64(*i as u64);
        }
        w.list(&self.output, |w, c| {
            w.string(&c.name);
            put_expr(w, &c.expr);
        });
        w.list(&self.aggregates, |w, a| {
            w.u8(a.func.code())
                .option(a.column.as_ref(), |w, c| {
                    w.string(c);
                })
                .string(a.column_type.as_str());
            // Only percentiles carry a fraction, so older plans keep their bytes.
            if let Some(f) = a.fraction {
                w.u64(f.0);
            }
        });
        fn put_having(w: &mut Writer, h: &HavingExpr) {
            match h {
                HavingExpr::Compare { agg, op, value } => {
                    w.u8(0)
                        .u64(*agg as u64)
                        .u8(cmp_code(*op))
                        .u64(value.to_bits());
                }
                HavingExpr::And(a, b) | HavingExpr::Or(a, b) => {
                    w.u8(if matches!(h, HavingExpr::And(..)) {
                        1
                    } else {
                        2
                    });
                    put_having(w, a);
                    put_having(w, b);
                }
                HavingExpr::Not(a) => {
                    w.u8(3);
                    put_having(w, a);
                }
                HavingExpr::CompareComputed { expr, op, value } => {
                    w.u8(4).u8(cmp_code(*op)).u64(value.to_bits());
                    put_agg_expr(w, expr);
                }
            }
        }
        w.option(self.having.as_ref(), put_having);
        w.list(&self.order_by, |w, k| {
            put_expr(w, &k.target);
            w.bool(k.descending);
        });
        w.option(self.limit.as_ref(), |w, l| {
            w.u64(*l);
        });
        let uses: Vec<(&String, &BTreeSet<Permission>)> = self.uses.iter().collect();
        w.list(&uses, |w, (c, ps)| {
            w.string(c);
            let ps: Vec<u8> = ps.iter().map(|p| p.code()).collect();
            w.bytes(&ps);
        });
        w.option(self.join.as_ref(), |w, j| {
            for side in j.sides() {
                w.string(&side.alias).string(&side.dataset);
                w.list(&side.owners, |w, o| {
                    w.member_id(o);
                });
                w.list(&side.schema.columns, |w, c| {
                    w.string(&c.name).string(c.ty.as_str()).bool(c.nullable);
                });
                w.string(&side.key);
                w.option(side.filter.as_ref(), put_predicate);
                w.list(&side.columns, |w, c| {
                    w.string(c);
                });
            }
        });
        // Only plans with arithmetic over aggregates carry it, so older plans keep their
        // bytes.
        if !self.computed.is_empty() {
            w.u8(0xA6);
            w.list(&self.computed, put_agg_expr);
        }
        w.into_bytes()
    }
}

fn put_agg_expr(w: &mut Writer, e: &AggExpr) {
    match e {
        AggExpr::Agg(i) => {
            w.u8(0).u64(*i as u64);
        }
        AggExpr::Integer(v) => {
            w.u8(1).u64(*v as u64);
        }
        AggExpr::Float(v) => {
            w.u8(5).u64(v.to_bits());
        }
        AggExpr::Arith { op, left, right } => {
            w.u8(2).string(op.symbol());
            put_agg_expr(w, left);
            put_agg_expr(w, right);
        }
        AggExpr::Negate(x) => {
            w.u8(3);
            put_agg_expr(w, x);
        }
        AggExpr::ToFloat(x) => {
            w.u8(4);
            put_agg_expr(w, x);
        }
        AggExpr::ZeroBelow(x, ulps) => {
            w.u8(6).u64(u64::from(*ulps));
            put_agg_expr(w, x);
        }
        AggExpr::Sqrt(x) => {
            w.u8(7);
            put_agg_expr(w, x);
        }
    }
}
