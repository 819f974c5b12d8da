//! Executing a plan: the roles of a query, the single entry point every party calls
//! ([`run_party`]), the raw-selection protocol and the final attestation step (share
//! digests and the result hash). The aggregate protocol is in `exec_agg`.
//!
//! Public (non-secret) messages of the query protocol travel on the same MPC transport as
//! the protocol's own messages, framed the same way (payload + one data tag byte), so an
//! abort notice from a failing party is recognised wherever a party is waiting.

use std::sync::{Arc, Mutex, MutexGuard};

use consort_crypto::{hash_domain, Hash, MemberId};
use consort_model::Row;
use consort_mpc::transport::{frame_abort, frame_data, unframe, PartyId, Transport};
use consort_mpc::{MpcError, Session};
use rand_core::{CryptoRng, RngCore};

use crate::canon::{cmp_values, put_rows};
use crate::error::QueryError;
use crate::plan::{LocalWork, OutputExpr, Plan};
use crate::table::{decode_rows, ResultTable};

/// Who does what in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    /// The three compute nodes, in party order (0, 1, 2); distinct.
    pub compute: [MemberId; 3],
    /// The input owners (the plan's owners).
    pub owners: Vec<MemberId>,
    /// The member that receives the result.
    pub requester: MemberId,
}

impl Roles {
    /// The MPC session's party list (party id = position): the compute nodes, then the
    /// owners that are not compute nodes (sorted), then the requester if not yet listed.
    pub fn parties(&self) -> Vec<MemberId> {
        let mut out: Vec<MemberId> = self.compute.to_vec();
        let mut owners = self.owners.clone();
        owners.sort();
        owners.dedup();
        for o in owners {
            if !out.contains(&o) {
                out.push(o);
            }
        }
        if !out.contains(&self.requester) {
            out.push(self.requester);
        }
        out
    }

    pub(crate) fn party_of(&self, m: &MemberId) -> Option<PartyId> {
        self.parties().iter().position(|p| p == m)
    }
}

/// An owner's own data for [`run_party`]. Its rows are private: `Debug` shows counts only.
#[derive(Clone, PartialEq)]
pub enum LocalInput {
    /// The rows of [`Plan::local`] over this owner's datasets of the plan.
    Rows(Vec<Row>),
    /// An aggregate plan with value lists ([`Plan::value_lists`]): the rows of
    /// [`Plan::local`], and the rows of [`Plan::value_list_select`] for each list.
    Aggregate {
        partials: Vec<Row>,
        lists: Vec<Vec<Row>>,
    },
    /// A JOIN: the rows of [`crate::JoinSide::local_select`] for each side whose
    /// owners include this member (`None` for a side it does not hold).
    Join {
        left: Option<Vec<Row>>,
        right: Option<Vec<Row>>,
    },
}

impl std::fmt::Debug for LocalInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |rows: &Option<Vec<Row>>| rows.as_ref().map(Vec::len);
        match self {
            LocalInput::Rows(rows) => write!(f, "LocalInput::Rows({} rows, ..)", rows.len()),
            LocalInput::Aggregate { partials, lists } => write!(
                f,
                "LocalInput::Aggregate {{ partials: {} rows, lists: {:?} rows, .. }}",
                partials.len(),
                lists.iter().map(Vec::len).collect::<Vec<_>>()
            ),
            LocalInput::Join { left, right } => write!(
                f,
                "LocalInput::Join {{ left: {:?} rows, right: {:?} rows, .. }}",
                count(left),
                count(right)
            ),
        }
    }
}

impl From<Vec<Row>> for LocalInput {
    fn from(rows: Vec<Row>) -> Self {
        LocalInput::Rows(rows)
    }
}

/// What one party takes away from a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartyOutcome {
    /// The revealed table (requester only).
    pub table: Option<ResultTable>,
    /// Hash of the output shares this compute party sent (compute parties, aggregates).
    pub share_digest: Option<Hash>,
    /// The three compute parties' share digests in party order (compute parties and the
    /// requester; empty for a raw selection, which has no shares).
    pub share_digests: Vec<Hash>,
    /// Hash of the revealed table (compute parties and the requester).
    pub result_hash: Option<Hash>,
    pub suppressed_groups: u64,
    /// Rows of the revealed table.
    pub rows: u64,
    pub columns: Vec<String>,
}

/// The transport shared between the MPC session and the query layer's public messages.
pub(crate) type SharedT = Arc<Mutex<Box<dyn Transport>>>;

fn lock(t: &SharedT) -> MutexGuard<'_, Box<dyn Transport>> {
    // A poisoned lock only means another thread panicked while holding it; the transport
    // itself is still usable (and its own errors report any broken link).
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lends the shared transport to a [`Session`].
struct Lent(SharedT);

impl Transport for Lent {
    fn me(&self) -> PartyId {
        lock(&self.0).me()
    }
    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> consort_mpc::Result<()> {
        lock(&self.0).send(to, msg)
    }
    fn recv(&mut self, from: PartyId) -> consort_mpc::Result<Vec<u8>> {
        lock(&self.0).recv(from)
    }
    fn peer_name(&self, p: PartyId) -> String {
        lock(&self.0).peer_name(p)
    }
    fn bytes_sent(&self) -> u64 {
        lock(&self.0).bytes_sent()
    }
    fn messages_sent(&self) -> u64 {
        lock(&self.0).messages_sent()
    }
}

/// Placeholder left in the caller's slot while the transport is lent out.
struct Taken(PartyId);

impl Transport for Taken {
    fn me(&self) -> PartyId {
        self.0
    }
    fn send(&mut self, to: PartyId, _: Vec<u8>) -> consort_mpc::Result<()> {
        Err(MpcError::Transport {
            peer: format!("party {to}"),
            reason: "transport unavailable".into(),
        })
    }
    fn recv(&mut self, from: PartyId) -> consort_mpc::Result<Vec<u8>> {
        Err(MpcError::Transport {
            peer: format!("party {from}"),
            reason: "transport unavailable".into(),
        })
    }
    fn peer_name(&self, p: PartyId) -> String {
        format!("party {p}")
    }
    fn bytes_sent(&self) -> u64 {
        0
    }
    fn messages_sent(&self) -> u64 {
        0
    }
}

/// Public messages of the query protocol.
pub(crate) struct Net {
    pub t: SharedT,
}

impl Net {
    pub fn name(&self, p: PartyId) -> String {
        lock(&self.t).peer_name(p)
    }
    pub fn send(&self, to: PartyId, mut msg: Vec<u8>) -> Result<(), QueryError> {
        frame_data(&mut msg);
        Ok(lock(&self.t).send(to, msg)?)
    }
    pub fn recv(&self, from: PartyId) -> Result<Vec<u8>, QueryError> {
        let m = lock(&self.t).recv(from)?;
        Ok(unframe(m, self.name(from))?)
    }
    pub fn recv_hash(&self, from: PartyId) -> Result<Hash, QueryError> {
        let m = self.recv(from)?;
        let h: [u8; 32] = m.as_slice().try_into().map_err(|_| QueryError::Malformed {
            peer: self.name(from),
            reason: format!("expected a 32-byte hash, got {} bytes", m.len()),
        })?;
        Ok(Hash(h))
    }
    pub fn malformed(&self, from: PartyId, reason: impl Into<String>) -> QueryError {
        QueryError::Malformed {
            peer: self.name(from),
            reason: reason.into(),
        }
    }
    pub fn with<R>(&self, f: impl FnOnce(&mut dyn Transport) -> R) -> R {
        let mut g = lock(&self.t);
        f(&mut **g)
    }
}

/// Everything the protocol steps need to know about the parties.
pub(crate) struct Ctx<'a> {
    pub plan: &'a Plan,
    pub me: PartyId,
    /// Party ids of the owners, in the plan's (sorted) owner order.
    pub owners: Vec<PartyId>,
    pub requester: PartyId,
    /// Every party's member id, by party id.
    pub parties: Vec<MemberId>,
}

impl Ctx<'_> {
    pub fn is_compute(&self) -> bool {
        self.me < 3
    }
    pub fn is_requester(&self) -> bool {
        self.me == self.requester
    }
    pub fn party_of(&self, m: &MemberId) -> Result<PartyId, QueryError> {
        self.parties
            .iter()
            .position(|p| p == m)
            .ok_or_else(|| QueryError::arg(format!("member {m} has no role in this query")))
    }
}

/// Runs this party's part of `plan`. Every party of [`Roles::parties`] calls it with the
/// session transport whose `me()` is its position in that list; `local` is this member's
/// owner-local result (rows of [`Plan::local`]) if it is an owner. The transport is given
/// back in `t` whatever happens (a failed session leaves it unusable for another session
/// but still the caller's to close). On an error the other parties are sent an abort
/// notice, so they fail promptly naming this party.
pub fn run_party(
    t: &mut Box<dyn Transport>,
    plan: &Plan,
    roles: &Roles,
    me: &MemberId,
    local: Option<LocalInput>,
    min_group_size: u32,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PartyOutcome, QueryError> {
    let parties = roles.parties();
    let my_id = roles
        .party_of(me)
        .ok_or_else(|| QueryError::arg(format!("member {me} has no role in this query")))?;
    if t.me() != my_id {
        return Err(QueryError::arg(format!(
            "transport is party {}, member {me} is party {my_id}",
            t.me()
        )));
    }
    let inner = std::mem::replace(t, Box::new(Taken(my_id)));
    let shared: SharedT = Arc::new(Mutex::new(inner));
    let net = Net { t: shared.clone() };
    let res = run_inner(&net, plan, roles, my_id, local, min_group_size, rng);
    if let Err(e) = &res {
        let reason = format!("{} failed: {e}", net.name(my_id));
        net.with(|t| {
            for p in (0..parties.len()).filter(|&p| p != my_id) {
                // Best effort: the peer may be the one that is gone.
                let _ = t.send(p, frame_abort(&reason));
            }
        });
    }
    drop(net);
    *t = match Arc::try_unwrap(shared) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(_) => Box::new(Taken(my_id)),
    };
    res
}

fn run_inner(
    net: &Net,
    plan: &Plan,
    roles: &Roles,
    me: PartyId,
    local: Option<LocalInput>,
    min_group_size: u32,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PartyOutcome, QueryError> {
    let mut distinct = roles.compute.to_vec();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != 3 {
        return Err(QueryError::arg("the three compute nodes must be distinct"));
    }
    let mut role_owners = roles.owners.clone();
    role_owners.sort();
    role_owners.dedup();
    let plan_owners = plan.owners();
    if role_owners != plan_owners {
        return Err(QueryError::arg(
            "the roles' owners are not the plan's owners",
        ));
    }
    let owners: Vec<PartyId> = plan_owners
        .iter()
        .map(|o| roles.party_of(o).unwrap_or(usize::MAX))
        .collect();
    let requester = roles.party_of(&roles.requester).unwrap_or(usize::MAX);
    let cx = Ctx {
        plan,
        me,
        owners,
        requester,
        parties: roles.parties(),
    };
    let is_owner = cx.owners.contains(&me);
    if is_owner != local.is_some() {
        return Err(QueryError::arg(if is_owner {
            "an owner must pass its local result"
        } else {
            "only owners pass a local result"
        }));
    }
    let mut out = PartyOutcome {
        columns: plan.columns(),
        ..Default::default()
    };
    let (rows_in, join_in) = match local {
        None => (None, None),
        Some(LocalInput::Rows(r)) if plan.join.is_none() => (Some((r, Vec::new())), None),
        Some(LocalInput::Aggregate { partials, lists }) if plan.join.is_none() => {
            (Some((partials, lists)), None)
        }
        Some(LocalInput::Join { left, right }) if plan.join.is_some() => {
            (None, Some((left, right)))
        }
        Some(_) => {
            return Err(QueryError::arg(
                "local input of the wrong kind for this plan (rows vs join sides)",
            ))
        }
    };
    let digest = match &plan.local {
        LocalWork::Select(_) => {
            let (table, rows) = run_select(net, &cx, rows_in.map(|r| r.0))?;
            out.rows = rows;
            out.table = table;
            None
        }
        LocalWork::Aggregate(_) => {
            let session = if cx.is_compute() {
                let lent: Box<dyn Transport> = Box::new(Lent(net.t.clone()));
                Some(Session::setup(lent, rng)?)
            } else {
                None
            };
            let r = if plan.join.is_some() {
                crate::exec_join::run_join(net, &cx, session, join_in, min_group_size, rng)?
            } else {
                crate::exec_agg::run_aggregate(net, &cx, session, rows_in, min_group_size, rng)?
            };
            out.rows = r.rows;
            out.suppressed_groups = r.suppressed;
            out.table = r.table;
            r.digest
        }
    };
    attest(net, &cx, digest, &mut out)?;
    Ok(out)
}

/// Share digests are exchanged among the compute parties (and sent to the requester); the
/// requester sends the hash of the table it got to the compute parties.
fn attest(
    net: &Net,
    cx: &Ctx<'_>,
    digest: Option<Hash>,
    out: &mut PartyOutcome,
) -> Result<(), QueryError> {
    let aggregate = matches!(cx.plan.local, LocalWork::Aggregate(_));
    if aggregate {
        if cx.is_compute() {
            let d = digest.ok_or_else(|| QueryError::arg("missing share digest"))?;
            for p in 0..3 {
                if p != cx.me {
                    net.send(p, d.0.to_vec())?;
                }
            }
            if cx.requester >= 3 {
                net.send(cx.requester, d.0.to_vec())?;
            }
            let mut all = Vec::with_capacity(3);
            for p in 0..3 {
                all.push(if p == cx.me { d } else { net.recv_hash(p)? });
            }
            out.share_digest = Some(d);
            out.share_digests = all;
        } else if cx.is_requester() {
            out.share_digests = (0..3).map(|p| net.recv_hash(p)).collect::<Result<_, _>>()?;
        }
    }
    if cx.is_requester() {
        let h = out
            .table
            .as_ref()
            .map(|t| t.hash())
            .ok_or_else(|| QueryError::arg("requester without a table"))?;
        let mut m = h.0.to_vec();
        m.extend_from_slice(&out.rows.to_be_bytes());
        m.extend_from_slice(&out.suppressed_groups.to_be_bytes());
        for p in 0..3 {
            if p != cx.me {
                net.send(p, m.clone())?;
            }
        }
        out.result_hash = Some(h);
    } else if cx.is_compute() {
        // The requester's attestation: result hash, rows and suppressed groups. For an
        // aggregate the compute parties know the last two already and check them.
        let from = cx.requester;
        let m = net.recv(from)?;
        if m.len() != 48 {
            return Err(net.malformed(from, format!("attestation of {} bytes", m.len())));
        }
        let mut h = [0u8; 32];
        h.copy_from_slice(&m[..32]);
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&m[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let (rows, suppressed) = (word(32), word(40));
        if aggregate && (rows, suppressed) != (out.rows, out.suppressed_groups) {
            return Err(net.malformed(
                from,
                format!(
                    "reports {rows} rows and {suppressed} suppressed groups, expected {} and {}",
                    out.rows, out.suppressed_groups
                ),
            ));
        }
        out.rows = rows;
        out.suppressed_groups = suppressed;
        out.result_hash = Some(Hash(h));
    }
    Ok(())
}

/// Raw selection: owners send their selected rows in the clear to the requester only;
/// the requester concatenates them in owner order and applies ORDER BY and LIMIT.
fn run_select(
    net: &Net,
    cx: &Ctx<'_>,
    local: Option<Vec<Row>>,
) -> Result<(Option<ResultTable>, u64), QueryError> {
    let LocalWork::Select(sel) = &cx.plan.local else {
        return Err(QueryError::arg("not a selection plan"));
    };
    let width = sel.columns.len();
    let mut local = local;
    if let Some(rows) = &local {
        if let Some(r) = rows.iter().find(|r| r.len() != width) {
            return Err(QueryError::arg(format!(
                "local row of {} values, the selection has {width} columns",
                r.len()
            )));
        }
        if !cx.is_requester() {
            let mut w = consort_crypto::encoding::Writer::new();
            put_rows(&mut w, rows);
            net.send(cx.requester, w.into_bytes())?;
        }
    }
    if !cx.is_requester() {
        return Ok((None, 0));
    }
    let mut all: Vec<Row> = Vec::new();
    for &o in &cx.owners {
        let rows = if o == cx.me {
            local.take().unwrap_or_default()
        } else {
            let m = net.recv(o)?;
            let rows = decode_rows(&m).map_err(|e| net.malformed(o, e))?;
            if rows.iter().any(|r| r.len() != width) {
                return Err(net.malformed(o, format!("rows must have {width} values")));
            }
            rows
        };
        all.extend(rows);
    }
    let plan = cx.plan;
    let pick = |row: &Row, e: &OutputExpr| match e {
        OutputExpr::Column(k) => row.get(*k).cloned().unwrap_or(consort_model::Value::Null),
        _ => consort_model::Value::Null,
    };
    // Stable sort: rows equal on every key keep their owner-then-row order.
    all.sort_by(|x, y| {
        for k in &plan.order_by {
            let o = cmp_values(&pick(x, &k.target), &pick(y, &k.target));
            let o = if k.descending { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    if let Some(l) = plan.limit {
        all.truncate(usize::try_from(l).unwrap_or(usize::MAX));
    }
    let rows: Vec<Row> = all
        .iter()
        .map(|r| plan.output.iter().map(|c| pick(r, &c.expr)).collect())
        .collect();
    let n = rows.len() as u64;
    Ok((
        Some(ResultTable {
            columns: plan.columns(),
            rows,
            suppressed_groups: 0,
        }),
        n,
    ))
}

/// Digest of the output shares a compute party sent: its two components of every
/// revealed value and bit, in order.
pub(crate) fn share_digest(words: &[&[u64]]) -> Hash {
    let mut bytes = Vec::new();
    for w in words {
        bytes.extend_from_slice(&(w.len() as u64).to_le_bytes());
        for x in *w {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    hash_domain("consort/query-output-shares/v1", &[&bytes])
}

#[cfg(test)]
mod redaction_tests {
    use super::*;
    use consort_model::Value;

    #[test]
    fn local_input_debug_shows_counts_not_rows() {
        let rows = vec![vec![
            Value::Text("alice-secret".into()),
            Value::Integer(4242),
        ]];
        let printed = format!("{:?}", LocalInput::Rows(rows.clone()));
        assert_eq!(printed, "LocalInput::Rows(1 rows, ..)");
        let join = LocalInput::Join {
            left: Some(rows),
            right: None,
        };
        let printed = format!("{join:?}");
        assert!(
            !printed.contains("alice") && !printed.contains("4242"),
            "{printed}"
        );
    }
}
