//! The compute nodes' attestation of a query's result: one `QueryResult` transaction signed
//! by compute party 0 and approved by parties 1 and 2, each of which rebuilds the identical
//! transaction from its own outcome, so it approves only a result equal to what it
//! computed. Also the session-wide minimum group size that the owners' decisions set.
//!
//! Runs over the session's [`Transport`] with the one data framing of
//! `consort_mpc::transport`; the caller passes the nonce and the clock in.

use consort_crypto::{Hash, MemberId, SecretKey, Signature};
use consort_ledger::policy::{QueryDecision, QueryOutcome, QueryResult, DEFAULT_MIN_GROUP_SIZE};
use consort_ledger::{Approval, Transaction, TxPayload};
use consort_mpc::transport::{recv_data, send_data, Transport};

use crate::error::QueryError;
use crate::exec::PartyOutcome;

/// The minimum group size a session enforces: the largest any approving owner asked for
/// (the default when no decision names one), and never below 1.
pub fn session_min_group_size<'a>(decisions: impl IntoIterator<Item = &'a QueryDecision>) -> u32 {
    decisions
        .into_iter()
        .map(|d| d.min_group_size)
        .max()
        .unwrap_or(DEFAULT_MIN_GROUP_SIZE)
        .max(1)
}

/// The `QueryResult` a compute party attests for `outcome`.
pub fn result_payload(query: Hash, outcome: &PartyOutcome) -> Result<TxPayload, QueryError> {
    let result_hash = outcome
        .result_hash
        .ok_or_else(|| QueryError::arg("the requester did not send the result hash"))?;
    Ok(TxPayload::QueryResult(QueryResult {
        query,
        outcome: QueryOutcome::Revealed {
            result_hash,
            columns: outcome.columns.clone(),
            rows: outcome.rows,
            suppressed_groups: outcome.suppressed_groups,
            share_digests: outcome.share_digests.clone(),
        },
    }))
}

/// Who signs what in an attestation.
pub struct Attestation<'a> {
    /// This party's index among the compute nodes (0, 1 or 2).
    pub index: usize,
    pub compute: &'a [MemberId; 3],
    pub key: &'a SecretKey,
    pub chain_id: &'a Hash,
    /// Party 0's choice of nonce and timestamp (ignored at parties 1 and 2, which take
    /// party 0's).
    pub nonce: u64,
    pub timestamp_ms: u64,
}

/// Co-signs `payload`. Party 0 returns the transaction carrying all three signatures;
/// parties 1 and 2 return `None` after sending their approval.
pub fn cosign(
    t: &mut dyn Transport,
    who: &Attestation<'_>,
    payload: TxPayload,
) -> Result<Option<Transaction>, QueryError> {
    if who.index == 0 {
        let mut tx = Transaction::sign(payload, who.key, who.chain_id, who.nonce, who.timestamp_ms);
        let mut header = who.nonce.to_le_bytes().to_vec();
        header.extend_from_slice(&who.timestamp_ms.to_le_bytes());
        for party in 1..3 {
            send_data(t, party, header.clone())?;
        }
        for (party, member) in who.compute.iter().enumerate().skip(1) {
            let sig = recv_data(t, party)?;
            let sig: [u8; 64] = sig
                .as_slice()
                .try_into()
                .map_err(|_| QueryError::Malformed {
                    peer: t.peer_name(party),
                    reason: format!("an attestation signature of {} bytes", sig.len()),
                })?;
            tx.approvals.push(Approval {
                member: *member,
                signature: Signature(sig),
            });
        }
        return Ok(Some(tx));
    }
    let header = recv_data(t, 0)?;
    let word = |range: std::ops::Range<usize>| -> Option<u64> {
        header.get(range)?.try_into().ok().map(u64::from_le_bytes)
    };
    let (Some(nonce), Some(timestamp_ms), 16) = (word(0..8), word(8..16), header.len()) else {
        return Err(QueryError::Malformed {
            peer: t.peer_name(0),
            reason: format!("an attestation header of {} bytes", header.len()),
        });
    };
    let tx = Transaction {
        signer: who.compute[0],
        nonce,
        timestamp_ms,
        payload,
        signature: Signature([0; 64]),
        approvals: Vec::new(),
    };
    let signature = who.key.sign(&tx.signing_message(who.chain_id));
    send_data(t, 0, signature.0.to_vec())?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use consort_crypto::identity::verify;
    use consort_mpc::mem::mem_network;

    fn decision(min_group_size: u32) -> QueryDecision {
        QueryDecision {
            query: Hash([0; 32]),
            approve: true,
            reason: String::new(),
            min_group_size,
        }
    }

    #[test]
    fn the_session_takes_the_strictest_owner() {
        assert_eq!(session_min_group_size([&decision(3), &decision(7)]), 7);
        assert_eq!(session_min_group_size([&decision(0)]), 1);
        assert_eq!(session_min_group_size([]), DEFAULT_MIN_GROUP_SIZE.max(1));
    }

    #[test]
    fn three_compute_parties_cosign_one_transaction() {
        let keys: Vec<SecretKey> = (0..3u8)
            .map(|i| SecretKey::from_seed(&[i + 1; 32]))
            .collect();
        let compute: [MemberId; 3] = [
            keys[0].member_id(),
            keys[1].member_id(),
            keys[2].member_id(),
        ];
        let chain_id = Hash([9; 32]);
        let payload = TxPayload::QueryDecision(decision(5));
        let transports = mem_network(3, std::time::Duration::from_secs(5));
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = transports
                .into_iter()
                .enumerate()
                .map(|(index, mut t)| {
                    let (keys, compute, payload) = (&keys, &compute, payload.clone());
                    s.spawn(move || {
                        let who = Attestation {
                            index,
                            compute,
                            key: &keys[index],
                            chain_id: &chain_id,
                            nonce: 42 + index as u64,
                            timestamp_ms: 1_000 + index as u64,
                        };
                        cosign(&mut t, &who, payload)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        let tx = results[0].clone().expect("party 0 holds the transaction");
        assert!(results[1].is_none() && results[2].is_none());
        assert_eq!((tx.nonce, tx.timestamp_ms), (42, 1_000), "party 0's choice");
        let message = tx.signing_message(&chain_id);
        assert_eq!(tx.approvals.len(), 2);
        for (approval, key) in tx.approvals.iter().zip(&keys[1..]) {
            assert_eq!(approval.member, key.member_id());
            verify(&key.public_key(), &message, &approval.signature).unwrap();
        }
    }

    #[test]
    fn a_short_header_is_refused_by_name() {
        let mut transports = mem_network(3, std::time::Duration::from_secs(1));
        let key = SecretKey::from_seed(&[1; 32]);
        let compute = [key.member_id(); 3];
        send_data(&mut transports[0], 1, vec![0; 7]).unwrap();
        let who = Attestation {
            index: 1,
            compute: &compute,
            key: &key,
            chain_id: &Hash([0; 32]),
            nonce: 0,
            timestamp_ms: 0,
        };
        let err = cosign(
            &mut transports[1],
            &who,
            TxPayload::QueryDecision(decision(1)),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("attestation header of 7 bytes"), "{err}");
    }
}
