//! The node's view of the ledger: the pure [`LedgerState`], the durable block store under it,
//! and the waiters of submitted transactions.
//!
//! Raft's state machine calls [`Chain::apply_block`]; the API reads through the query methods.
//! A block that fails re-validation halts the chain: the node stops applying, reports the
//! reason in its status, and never forks silently (DESIGN §2).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use consort_crypto::{Hash, MemberId, PublicKey};
use consort_ledger::proof::governance_entries;
use consort_ledger::{
    Block, BlockStore, GovernanceEntry, InclusionProof, LedgerState, ProofSources, TxOutcome,
};
use serde::Serialize;
use tokio::sync::{oneshot, watch};

use crate::error::NodeError;

/// Where a committed transaction landed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Committed {
    pub tx_id: Hash,
    pub height: u64,
    pub index: u32,
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Transactions and, for each, the result of checking it.
pub type CheckedBatch = (
    Vec<consort_ledger::Transaction>,
    Vec<Result<(), consort_ledger::LedgerError>>,
);

/// Shared ledger core of one node.
pub struct Chain {
    state: RwLock<LedgerState>,
    store: Arc<dyn BlockStore>,
    waiters: Mutex<HashMap<Hash, Vec<oneshot::Sender<Committed>>>>,
    /// Hashes of blocks this node built as leader: their signatures were checked at build
    /// time, so applying them need not check again.
    built_here: Mutex<HashSet<Hash>>,
    halted: Mutex<Option<String>>,
    /// Bumped whenever a block changes the member set.
    members_version: watch::Sender<u64>,
    /// The height of the last applied block.
    height_tx: watch::Sender<u64>,
    /// Every valid membership change and rule upgrade of the applied blocks, in chain order:
    /// what an inclusion proof replays (FORMAT.md §12). Rare, so kept whole; appended under
    /// the state's write lock.
    governance: RwLock<Vec<GovernanceEntry>>,
}

impl Chain {
    /// Rebuilds the in-memory state from the stored blocks. Blocks were fully validated when
    /// they were stored; signatures are not re-checked here (`ledger verify` does that).
    pub fn open(
        genesis: &consort_ledger::Genesis,
        store: Arc<dyn BlockStore>,
    ) -> Result<Self, NodeError> {
        let mut state = LedgerState::from_genesis(genesis)?;
        let mut governance = Vec::new();
        match store.height()? {
            None => {
                store.append(&genesis.block(), &[])?;
            }
            Some(top) => {
                let stored_genesis = store
                    .block(0)?
                    .ok_or_else(|| NodeError::Corrupt("block 0 missing from the store".into()))?;
                if stored_genesis.hash() != state.chain_id() {
                    return Err(NodeError::Config(format!(
                        "the data directory holds a different consortium (chain id {}) than the genesis file ({})",
                        stored_genesis.hash(),
                        state.chain_id()
                    )));
                }
                for height in 1..=top {
                    let block = store.block(height)?.ok_or_else(|| {
                        NodeError::Corrupt(format!("block {height} missing from the store"))
                    })?;
                    state.apply_block(&block, false).map_err(|e| {
                        NodeError::Corrupt(format!("stored block {height} does not replay: {e}"))
                    })?;
                    governance.extend(governance_entries(&block));
                }
            }
        }
        let height = state.height();
        Ok(Self {
            state: RwLock::new(state),
            store,
            waiters: Mutex::new(HashMap::new()),
            built_here: Mutex::new(HashSet::new()),
            halted: Mutex::new(None),
            members_version: watch::channel(0).0,
            height_tx: watch::channel(height).0,
            governance: RwLock::new(governance),
        })
    }

    pub fn store(&self) -> &Arc<dyn BlockStore> {
        &self.store
    }

    /// Runs `f` with a shared borrow of the current state.
    pub fn read<T>(&self, f: impl FnOnce(&LedgerState) -> T) -> T {
        let guard = self.state.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    pub fn height(&self) -> u64 {
        self.read(|s| s.height())
    }

    pub fn halted(&self) -> Option<String> {
        self.halted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn subscribe_members(&self) -> watch::Receiver<u64> {
        self.members_version.subscribe()
    }

    pub fn subscribe_height(&self) -> watch::Receiver<u64> {
        self.height_tx.subscribe()
    }

    pub fn note_built_here(&self, block_hash: Hash) {
        self.built_here
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(block_hash);
    }

    /// Registers interest in a transaction's commit. The receiver fires when a block
    /// holding it is applied on this node.
    pub fn wait_for(&self, tx_id: Hash) -> oneshot::Receiver<Committed> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tx_id)
            .or_default()
            .push(tx);
        rx
    }

    pub fn forget_waiter(&self, tx_id: &Hash) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = waiters.get_mut(tx_id) {
            list.retain(|s| !s.is_closed());
            if list.is_empty() {
                waiters.remove(tx_id);
            }
        }
    }

    /// Validates and stores a block delivered by Raft. `meta` is stored atomically with it
    /// (the Raft applied-log id), so a crash can neither lose nor double-apply a block.
    pub fn apply_block(&self, block: &Block, meta: &[(&str, &[u8])]) -> Result<(), NodeError> {
        if let Some(reason) = self.halted() {
            return Err(NodeError::Halted(reason));
        }
        let block_hash = block.hash();
        let built_here = self
            .built_here
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&block_hash);
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let height = block.header.height;
        if height <= state.height() {
            // Raft re-delivers entries applied before a restart whose applied-id was not yet
            // recorded; the stored block must be the same one.
            let stored = self.store.block(height)?;
            if stored.map(|b| b.hash()) == Some(block_hash) {
                return Ok(());
            }
            return self.halt(format!(
                "block {height} from the Raft log differs from the stored block {height}"
            ));
        }
        let members_before: Vec<MemberId> = state.members().keys().copied().collect();
        // `apply_block` changes nothing unless the whole block is valid.
        if let Err(e) = state.apply_block(block, !built_here) {
            drop(state);
            return self.halt(format!("block {height} failed validation: {e}"));
        }
        // The write lock is held until the block is durable, so no reader ever sees state
        // that a crash could take back.
        if let Err(e) = self.store.append(block, meta) {
            drop(state);
            return self.halt(format!("block {height} could not be stored: {e}"));
        }
        let membership_changed =
            state.members().keys().copied().collect::<Vec<_>>() != members_before;
        let changes = governance_entries(block);
        if !changes.is_empty() {
            self.governance
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .extend(changes);
        }
        drop(state);
        self.notify(block);
        self.height_tx.send_replace(height);
        if membership_changed {
            self.members_version.send_modify(|v| *v += 1);
        }
        Ok(())
    }

    fn halt(&self, reason: String) -> Result<(), NodeError> {
        tracing::error!("ledger halted: {reason}");
        *self.halted.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
        Err(NodeError::Halted(reason))
    }

    fn notify(&self, block: &Block) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if waiters.is_empty() {
            return;
        }
        for (index, (tx, outcome)) in block.txs.iter().zip(&block.outcomes).enumerate() {
            let tx_id = tx.id();
            if let Some(list) = waiters.remove(&tx_id) {
                let committed = Committed {
                    tx_id,
                    height: block.header.height,
                    index: index as u32,
                    valid: matches!(outcome, TxOutcome::Valid),
                    reason: match outcome {
                        TxOutcome::Valid => None,
                        TxOutcome::Invalid { code, detail } => Some(format!("{code:?}: {detail}")),
                    },
                };
                for sender in list {
                    let _ = sender.send(committed.clone());
                }
            }
        }
    }
}

impl Chain {
    /// The member whose Raft node id is `node`.
    pub fn member_for_node(&self, node: crate::raft::NodeId) -> Option<MemberId> {
        self.read(|s| {
            s.members()
                .keys()
                .find(|id| id.raft_node_id() == node)
                .copied()
        })
    }

    /// Checks submissions against the current state on the blocking pool: signature checks
    /// are CPU-bound, and the async workers must stay free for Raft's heartbeats.
    /// `verify_signatures: false` runs only the cheap checks (a follower's pre-check).
    pub async fn check_off_runtime(
        self: &Arc<Self>,
        txs: Vec<consort_ledger::Transaction>,
        verify_signatures: bool,
    ) -> Result<CheckedBatch, NodeError> {
        let chain = self.clone();
        tokio::task::spawn_blocking(move || {
            let checks = chain.read(|state| {
                if verify_signatures {
                    state.check_submissions(&txs)
                } else {
                    state.precheck_submissions(&txs)
                }
            });
            (txs, checks)
        })
        .await
        .map_err(|e| NodeError::Internal(format!("submission check failed: {e}")))
    }

    /// The key of `id` as a current member, or else as it was admitted (by the genesis or a
    /// valid `MemberAdd`) before its removal. Ids are derived from keys, so the key is
    /// unambiguous. Reads the governance index, not the chain.
    pub fn member_key_ever(&self, id: &MemberId) -> Result<Option<PublicKey>, NodeError> {
        if let Some(key) = self.read(|s| s.member_key(id)) {
            return Ok(Some(key));
        }
        let admitted = self
            .governance
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|e| match &e.tx.payload {
                consort_ledger::TxPayload::MemberAdd(info) if info.id() == *id => {
                    Some(info.public_key)
                }
                _ => None,
            });
        if admitted.is_some() {
            return Ok(admitted);
        }
        let genesis = self.block_at(0)?;
        Ok(genesis.txs.first().and_then(|tx| match &tx.payload {
            consort_ledger::TxPayload::Genesis(g) => g
                .members
                .iter()
                .find(|m| m.id() == *id)
                .map(|m| m.public_key),
            _ => None,
        }))
    }

    fn block_at(&self, height: u64) -> Result<Block, NodeError> {
        self.store
            .block(height)?
            .ok_or_else(|| NodeError::Corrupt(format!("block {height} is missing from the store")))
    }

    /// The inclusion proof (FORMAT.md §12) of transaction `index` of the stored `block`:
    /// reads block 0, the block's parent and grandparent, and the governance index, so its
    /// cost does not grow with the chain.
    pub fn proof(&self, block: &Block, index: usize) -> Result<InclusionProof, NodeError> {
        let height = block.header.height;
        let genesis = self.block_at(0)?;
        let previous = match height {
            0 => None,
            1 => Some(genesis.clone()),
            h => Some(self.block_at(h - 1)?),
        };
        let state_root_2back = if height >= 2 {
            self.block_at(height - 2)?.header.state_root
        } else {
            Hash::ZERO
        };
        let governance: Vec<GovernanceEntry> = {
            let all = self.governance.read().unwrap_or_else(|p| p.into_inner());
            let end = all.partition_point(|e| e.height <= height);
            all.get(..end).unwrap_or_default().to_vec()
        };
        Ok(InclusionProof::build(
            block,
            index,
            &ProofSources {
                genesis: &genesis,
                previous: previous.as_ref(),
                state_root_2back,
                governance: &governance,
            },
        )?)
    }

    /// The whole stored chain in the export format of docs/FORMAT.md.
    pub fn export_bytes(&self) -> Result<Vec<u8>, NodeError> {
        let top = self.store.height()?.unwrap_or(0);
        let mut bytes = Vec::new();
        consort_ledger::write_export(&mut bytes, (0..=top).map(|h| self.raw_block(h)))?;
        Ok(bytes)
    }

    fn raw_block(&self, height: u64) -> Result<Vec<u8>, consort_ledger::LedgerError> {
        self.store.raw_block(height)?.ok_or_else(|| {
            consort_ledger::LedgerError::Store(format!("block {height} is missing from the store"))
        })
    }

    /// Replays the stored bytes from genesis, checking everything (`ledger verify`).
    pub fn verify_stored(&self) -> Result<serde_json::Value, NodeError> {
        let top = self.store.height()?.unwrap_or(0);
        Ok(verify_json(consort_ledger::verify_chain(
            (0..=top).map(|h| self.raw_block(h)),
        )))
    }
}

/// The JSON both the API and the CLI print for a verification.
pub fn verify_json(
    result: Result<consort_ledger::VerifyReport, consort_ledger::VerifyFailure>,
) -> serde_json::Value {
    match result {
        Ok(report) => serde_json::json!({
            "ok": true,
            "chain_id": report.chain_id.to_string(),
            "height": report.height,
            "head_hash": report.head_hash.to_string(),
            "state_root": report.state_root.to_string(),
            "tx_count": report.tx_count,
        }),
        Err(failure) => serde_json::json!({
            "ok": false,
            "height": failure.height,
            "reason": failure.reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_ledger::conformance::{sample_genesis, sample_keys, sample_notarize};
    use consort_ledger::{MemBlockStore, TxPayload};

    fn chain_with(keys: &[consort_crypto::SecretKey]) -> (Chain, consort_ledger::Genesis) {
        let genesis = sample_genesis(keys);
        let chain = Chain::open(&genesis, Arc::new(MemBlockStore::new())).unwrap();
        (chain, genesis)
    }

    #[test]
    fn applies_valid_blocks_and_notifies_waiters() {
        let keys = sample_keys(3);
        let (chain, genesis) = chain_with(&keys);
        let tx = sample_notarize(&keys[1], &genesis.chain_id(), 1);
        let waiter = chain.wait_for(tx.id());
        let block = chain.read(|s| s.build_block(vec![tx.clone()], &keys[0], 5, &[false]));
        chain.apply_block(&block, &[("k", b"v")]).unwrap();
        assert_eq!(chain.height(), 1);
        assert_eq!(chain.store().meta("k").unwrap().as_deref(), Some(&b"v"[..]));
        let committed = waiter.blocking_recv().unwrap();
        assert_eq!(
            (committed.height, committed.index, committed.valid),
            (1, 0, true)
        );
        // Raft re-delivering the same block after a restart is harmless.
        chain.apply_block(&block, &[]).unwrap();
        assert_eq!(chain.height(), 1);
    }

    #[test]
    fn a_block_that_does_not_revalidate_halts_the_chain() {
        let keys = sample_keys(3);
        let (chain, genesis) = chain_with(&keys);
        let tx = sample_notarize(&keys[1], &genesis.chain_id(), 1);
        let mut block = chain.read(|s| s.build_block(vec![tx], &keys[0], 5, &[false]));
        block.header.state_root = consort_crypto::Hash([7; 32]);
        let err = chain.apply_block(&block, &[]).unwrap_err();
        assert!(matches!(err, NodeError::Halted(_)), "{err}");
        assert!(chain.halted().unwrap().contains("block 1"));
        assert_eq!(chain.height(), 0, "nothing of the bad block is applied");
        assert_eq!(
            chain.store().height().unwrap(),
            Some(0),
            "nothing of it is stored"
        );
        // Once halted, even a good block is refused: the operator must look first.
        let good = chain.read(|s| {
            s.build_block(
                vec![sample_notarize(&keys[2], &genesis.chain_id(), 2)],
                &keys[0],
                6,
                &[false],
            )
        });
        assert!(matches!(
            chain.apply_block(&good, &[]),
            Err(NodeError::Halted(_))
        ));
    }

    #[test]
    fn a_different_block_at_an_applied_height_halts() {
        let keys = sample_keys(3);
        let (chain, genesis) = chain_with(&keys);
        let a = chain.read(|s| {
            s.build_block(
                vec![sample_notarize(&keys[1], &genesis.chain_id(), 1)],
                &keys[0],
                5,
                &[false],
            )
        });
        let b = chain.read(|s| {
            s.build_block(
                vec![sample_notarize(&keys[1], &genesis.chain_id(), 2)],
                &keys[0],
                5,
                &[false],
            )
        });
        chain.apply_block(&a, &[]).unwrap();
        assert!(matches!(
            chain.apply_block(&b, &[]),
            Err(NodeError::Halted(_))
        ));
    }

    #[test]
    fn proofs_read_the_governance_index_which_a_reopen_rebuilds() {
        let keys = sample_keys(3);
        let genesis = sample_genesis(&keys);
        let chain_id = genesis.chain_id();
        let store: Arc<dyn BlockStore> = Arc::new(MemBlockStore::new());
        let chain = Chain::open(&genesis, store.clone()).unwrap();
        let newcomer = consort_crypto::SecretKey::from_seed(&[50; 32]);
        let info = consort_ledger::MemberInfo {
            name: "newcomer".into(),
            public_key: newcomer.public_key(),
            peer_addr: "127.0.0.1:9".into(),
            api_addr: "127.0.0.1:10".into(),
        };
        let mut add = consort_ledger::Transaction::sign(
            TxPayload::MemberAdd(info),
            &keys[0],
            &chain_id,
            1,
            5,
        );
        add.add_approval(&keys[1], &chain_id);
        let batches = vec![
            vec![add],
            vec![sample_notarize(&newcomer, &chain_id, 2)],
            vec![sample_notarize(&keys[2], &chain_id, 3)],
        ];
        for (i, txs) in batches.into_iter().enumerate() {
            let flags = vec![false; txs.len()];
            let block = chain.read(|s| s.build_block(txs, &keys[i % 3], 5 + i as u64, &flags));
            assert!(block.outcomes.iter().all(TxOutcome::is_valid));
            chain.apply_block(&block, &[]).unwrap();
        }
        assert_eq!(
            chain.member_key_ever(&newcomer.member_id()).unwrap(),
            Some(newcomer.public_key())
        );
        let proofs: Vec<InclusionProof> = (0..=3)
            .map(|h| chain.proof(&store.block(h).unwrap().unwrap(), 0).unwrap())
            .collect();
        for proof in &proofs {
            proof.verify().unwrap();
        }
        assert_eq!(proofs[3].governance.len(), 1);
        let reopened = Chain::open(&genesis, store.clone()).unwrap();
        for (h, proof) in proofs.iter().enumerate() {
            let again = reopened
                .proof(&store.block(h as u64).unwrap().unwrap(), 0)
                .unwrap();
            assert_eq!(&again, proof);
        }
    }

    /// `ledger proof` on a long chain: making a proof reads three blocks and the governance
    /// index, so its time does not grow with the chain. Run with
    /// `cargo test --release -p consort-node --lib long_chain -- --ignored --nocapture`
    /// (`CONSORT_PROOF_BLOCKS`, default 100,000 blocks of one transaction, on redb).
    #[test]
    #[ignore]
    fn proof_time_on_a_long_chain() {
        let blocks: u64 = std::env::var("CONSORT_PROOF_BLOCKS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let keys = sample_keys(3);
        let genesis = sample_genesis(&keys);
        let chain_id = genesis.chain_id();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks.redb");
        let store: Arc<dyn BlockStore> =
            Arc::new(crate::block_store::RedbBlockStore::open(&path).unwrap());
        let chain = Chain::open(&genesis, store.clone()).unwrap();
        let started = std::time::Instant::now();
        for n in 1..=blocks {
            let tx = sample_notarize(&keys[(n % 3) as usize], &chain_id, n);
            let block = chain.read(|s| s.build_block(vec![tx], &keys[0], n, &[true]));
            chain.note_built_here(block.hash());
            chain.apply_block(&block, &[]).unwrap();
        }
        eprintln!("built {blocks} blocks in {:?}", started.elapsed());
        drop(chain);
        let started = std::time::Instant::now();
        let chain = Chain::open(&genesis, store.clone()).unwrap();
        eprintln!("reopened (replay) in {:?}", started.elapsed());
        for height in [1, blocks / 2, blocks] {
            let started = std::time::Instant::now();
            let block = store.block(height).unwrap().unwrap();
            let proof = chain.proof(&block, 0).unwrap();
            let json = serde_json::to_string_pretty(&proof).unwrap();
            let made = started.elapsed();
            let started = std::time::Instant::now();
            consort_ledger::InclusionProof::from_json(&json)
                .unwrap()
                .verify()
                .unwrap();
            eprintln!(
                "block {height}: proof made in {made:?} ({} bytes), verified in {:?}",
                json.len(),
                started.elapsed()
            );
        }
    }

    #[test]
    fn reopening_replays_the_store_and_refuses_another_consortium() {
        let keys = sample_keys(3);
        let genesis = sample_genesis(&keys);
        let store: Arc<dyn BlockStore> = Arc::new(MemBlockStore::new());
        let chain = Chain::open(&genesis, store.clone()).unwrap();
        let block = chain.read(|s| {
            s.build_block(
                vec![sample_notarize(&keys[1], &genesis.chain_id(), 1)],
                &keys[0],
                5,
                &[false],
            )
        });
        chain.apply_block(&block, &[]).unwrap();
        let head = chain.read(|s| s.head_hash());
        let reopened = Chain::open(&genesis, store.clone()).unwrap();
        assert_eq!(reopened.read(|s| (s.height(), s.head_hash())), (1, head));
        let other = sample_genesis(&sample_keys(2));
        assert!(matches!(
            Chain::open(&other, store),
            Err(NodeError::Config(_))
        ));
    }
}
