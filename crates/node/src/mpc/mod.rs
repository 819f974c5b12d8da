//! MPC sessions between members' nodes: the chunk format on the peer links ([`wire`]), the
//! router that hands incoming chunks to sessions ([`router`]), the protocol transport over
//! the links ([`link`]), and the benchmark/self-test session ([`bench`]). The protocols
//! themselves live in `consort-mpc` and know nothing of sockets.
//!
//! A session may only run between current ledger members: the links only connect members,
//! and [`start_session`] checks every party against the ledger before it begins.

pub mod bench;
pub mod link;
pub mod psi_bench;
pub mod router;
pub mod wire;

use std::time::Duration;

use consort_crypto::MemberId;

pub use link::PeerMpcTransport;
pub use router::MpcRouter;
pub use wire::SessionId;

use crate::core::NodeShared;
use crate::error::NodeError;

/// Opens this node's end of `session` with `parties` (at least two distinct current
/// members, this node among them, in party order): for an MPC computation the three
/// compute parties first, then any input owners and result parties outside them; for a
/// PSI, the two parties.
pub fn start_session(
    node: &NodeShared,
    session: SessionId,
    parties: &[MemberId],
    timeout: Duration,
) -> Result<PeerMpcTransport, NodeError> {
    if parties.len() < 2 {
        return Err(NodeError::Rejected(format!(
            "a session needs at least two parties, got {}",
            parties.len()
        )));
    }
    let mut distinct = parties.to_vec();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != parties.len() {
        return Err(NodeError::Rejected(
            "the parties of an MPC session must be distinct members".into(),
        ));
    }
    let names = node.chain.read(|state| {
        parties
            .iter()
            .map(|p| state.members().get(p).map(|m| m.name.clone()))
            .collect::<Vec<_>>()
    });
    let mut labels = Vec::with_capacity(parties.len());
    for (p, name) in parties.iter().zip(names) {
        match name {
            Some(name) => labels.push(format!("{name} ({p})")),
            None => {
                return Err(NodeError::Rejected(format!(
                    "{p} is not a current member, so it cannot take part in an MPC session"
                )))
            }
        }
    }
    PeerMpcTransport::open(
        node.mpc.clone(),
        node.links.clone(),
        session,
        parties.to_vec(),
        labels,
        node.me,
        timeout,
    )
}

/// Time allowed for any one wait on a peer, unless a request says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
