//! Blocks: header, per-transaction outcomes, block hash, block signature message and the
//! canonical block encoding (`docs/FORMAT.md` §5).

use consort_crypto::encoding::{DecodeError, Reader, Writer};
use consort_crypto::{hash_domain, Hash, MemberId, Signature};
use serde::{Deserialize, Serialize};

use crate::error::LedgerError;
use crate::tx::Transaction;

/// Domain of the block hash.
pub const BLOCK_HASH_DOMAIN: &str = "consort/block/v1";
/// Domain prefix of the message a proposer signs under rule versions 1 and 2.
pub const BLOCK_SIGNING_DOMAIN: &str = "consort/block-sig/v1";
/// Domain prefix of the message a proposer signs from rule version 3 on; the message names
/// the chain id as well as the block hash.
pub const BLOCK_SIGNING_DOMAIN_V2: &str = "consort/block-sig/v2";

/// Encoded header size: 8 + 32 * 3 + 8 + 16 + 4.
pub const HEADER_LEN: usize = 132;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub height: u64,
    pub prev_hash: Hash,
    /// RFC 6962 Merkle root over the encodings of the block's transactions.
    pub tx_root: Hash,
    /// State commitment after applying this block (see `LedgerState`).
    pub state_root: Hash,
    pub timestamp_ms: u64,
    pub proposer: MemberId,
    pub tx_count: u32,
}

impl BlockHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEADER_LEN);
        self.encode_into(&mut w);
        w.into_bytes()
    }

    fn encode_into(&self, w: &mut Writer) {
        w.u64(self.height)
            .hash(&self.prev_hash)
            .hash(&self.tx_root)
            .hash(&self.state_root)
            .u64(self.timestamp_ms)
            .member_id(&self.proposer)
            .u32(self.tx_count);
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<BlockHeader, DecodeError> {
        Ok(BlockHeader {
            height: r.u64()?,
            prev_hash: r.hash()?,
            tx_root: r.hash()?,
            state_root: r.hash()?,
            timestamp_ms: r.u64()?,
            proposer: r.member_id()?,
            tx_count: r.u32()?,
        })
    }

    /// `hash_domain("consort/block/v1", [header encoding])`.
    pub fn hash(&self) -> Hash {
        hash_domain(BLOCK_HASH_DOMAIN, &[&self.encode()])
    }

    /// What the proposer signs when `rules_version` is in force at the start of the block
    /// (the version of the state the block follows; FORMAT.md §5.3).
    pub fn signing_message(&self, rules_version: u32, chain_id: &Hash) -> Vec<u8> {
        block_signing_message(rules_version, chain_id, &self.hash())
    }
}

/// Whether blocks sealed under `rules_version` are signed over the message that names the
/// chain (rule version 3 on).
pub fn block_signature_names_chain(rules_version: u32) -> bool {
    rules_version >= crate::rules_limits::RULES_V3
}

/// The block signing message under `rules_version`: `"consort/block-sig/v2" || 0x00 ||
/// chain_id || block_hash` from rule version 3 on, `"consort/block-sig/v1" || 0x00 ||
/// block_hash` before.
pub fn block_signing_message(rules_version: u32, chain_id: &Hash, block_hash: &Hash) -> Vec<u8> {
    if block_signature_names_chain(rules_version) {
        block_signing_message_v2(chain_id, block_hash)
    } else {
        block_signing_message_v1(block_hash)
    }
}

/// `"consort/block-sig/v1" || 0x00 || block_hash` (rule versions 1 and 2).
pub fn block_signing_message_v1(block_hash: &Hash) -> Vec<u8> {
    let mut msg = Vec::with_capacity(BLOCK_SIGNING_DOMAIN.len() + 33);
    msg.extend_from_slice(BLOCK_SIGNING_DOMAIN.as_bytes());
    msg.push(0);
    msg.extend_from_slice(&block_hash.0);
    msg
}

/// `"consort/block-sig/v2" || 0x00 || chain_id || block_hash` (rule version 3 on).
pub fn block_signing_message_v2(chain_id: &Hash, block_hash: &Hash) -> Vec<u8> {
    let mut msg = Vec::with_capacity(BLOCK_SIGNING_DOMAIN_V2.len() + 65);
    msg.extend_from_slice(BLOCK_SIGNING_DOMAIN_V2.as_bytes());
    msg.push(0);
    msg.extend_from_slice(&chain_id.0);
    msg.extend_from_slice(&block_hash.0);
    msg
}

/// Why a transaction was recorded as invalid. The numeric codes are part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InvalidCode {
    UnknownSigner = 1,
    BadSignature = 2,
    ReplayedNonce = 3,
    InsufficientApprovals = 4,
    MemberExists = 5,
    UnknownMember = 6,
    BadPayload = 7,
    DatasetExists = 8,
    UnknownDataset = 9,
    StaleVersion = 10,
    IncompatibleSchema = 11,
    UnknownGrant = 12,
    NotOwner = 13,
    UnknownQuery = 14,
    DuplicateDecision = 15,
    QueryClosed = 16,
    AlreadyRevoked = 17,
    UnknownColumn = 18,
    NotApproved = 19,
    NotParticipant = 20,
}

impl InvalidCode {
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(code: u8) -> Option<InvalidCode> {
        Some(match code {
            1 => InvalidCode::UnknownSigner,
            2 => InvalidCode::BadSignature,
            3 => InvalidCode::ReplayedNonce,
            4 => InvalidCode::InsufficientApprovals,
            5 => InvalidCode::MemberExists,
            6 => InvalidCode::UnknownMember,
            7 => InvalidCode::BadPayload,
            8 => InvalidCode::DatasetExists,
            9 => InvalidCode::UnknownDataset,
            10 => InvalidCode::StaleVersion,
            11 => InvalidCode::IncompatibleSchema,
            12 => InvalidCode::UnknownGrant,
            13 => InvalidCode::NotOwner,
            14 => InvalidCode::UnknownQuery,
            15 => InvalidCode::DuplicateDecision,
            16 => InvalidCode::QueryClosed,
            17 => InvalidCode::AlreadyRevoked,
            18 => InvalidCode::UnknownColumn,
            19 => InvalidCode::NotApproved,
            20 => InvalidCode::NotParticipant,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            InvalidCode::UnknownSigner => "UnknownSigner",
            InvalidCode::BadSignature => "BadSignature",
            InvalidCode::ReplayedNonce => "ReplayedNonce",
            InvalidCode::InsufficientApprovals => "InsufficientApprovals",
            InvalidCode::MemberExists => "MemberExists",
            InvalidCode::UnknownMember => "UnknownMember",
            InvalidCode::BadPayload => "BadPayload",
            InvalidCode::DatasetExists => "DatasetExists",
            InvalidCode::UnknownDataset => "UnknownDataset",
            InvalidCode::StaleVersion => "StaleVersion",
            InvalidCode::IncompatibleSchema => "IncompatibleSchema",
            InvalidCode::UnknownGrant => "UnknownGrant",
            InvalidCode::NotOwner => "NotOwner",
            InvalidCode::UnknownQuery => "UnknownQuery",
            InvalidCode::DuplicateDecision => "DuplicateDecision",
            InvalidCode::QueryClosed => "QueryClosed",
            InvalidCode::AlreadyRevoked => "AlreadyRevoked",
            InvalidCode::UnknownColumn => "UnknownColumn",
            InvalidCode::NotApproved => "NotApproved",
            InvalidCode::NotParticipant => "NotParticipant",
        }
    }
}

impl std::fmt::Display for InvalidCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The recorded result of validating one transaction. Invalid transactions stay in the block
/// (so every node reaches the same state) but have no effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxOutcome {
    Valid,
    Invalid { code: InvalidCode, detail: String },
}

impl TxOutcome {
    /// 0 for valid, else the [`InvalidCode`].
    pub fn code_byte(&self) -> u8 {
        match self {
            TxOutcome::Valid => 0,
            TxOutcome::Invalid { code, .. } => code.as_u8(),
        }
    }

    pub fn is_valid(&self) -> bool {
        matches!(self, TxOutcome::Valid)
    }

    pub(crate) fn invalid(code: InvalidCode, detail: impl Into<String>) -> TxOutcome {
        TxOutcome::Invalid {
            code,
            detail: detail.into(),
        }
    }

    fn encode_into(&self, w: &mut Writer) {
        match self {
            TxOutcome::Valid => w.u8(0).string(""),
            TxOutcome::Invalid { code, detail } => w.u8(code.as_u8()).string(detail),
        };
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<TxOutcome, DecodeError> {
        let at = r.position();
        let code = r.u8()?;
        let detail = r.string()?;
        match (code, InvalidCode::from_u8(code)) {
            (0, _) if detail.is_empty() => Ok(TxOutcome::Valid),
            (0, _) => Err(DecodeError {
                offset: at,
                reason: "valid outcome with a non-empty detail".into(),
            }),
            (_, Some(code)) => Ok(TxOutcome::Invalid { code, detail }),
            (other, None) => Err(DecodeError {
                offset: at,
                reason: format!("unknown outcome code {other}"),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    /// Proposer's signature over [`BlockHeader::signing_message`] under the rule version in
    /// force at the start of the block; all zero in block 0.
    pub signature: Signature,
    pub txs: Vec<Transaction>,
    /// One per transaction, in the same order.
    pub outcomes: Vec<TxOutcome>,
}

impl Block {
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// `header || signature || u32 n || n * bytes(tx) || n * outcome` (n = number of txs;
    /// outcomes are written for the first n transactions, so a well-formed block has
    /// `outcomes.len() == txs.len()`).
    pub fn encode(&self) -> Vec<u8> {
        let encoded: Vec<Vec<u8>> = self.txs.iter().map(Transaction::encode).collect();
        self.encode_with_txs(&encoded)
    }

    /// [`Block::encode`] with the transactions' encodings supplied by the caller.
    pub(crate) fn encode_with_txs(&self, encoded_txs: &[Vec<u8>]) -> Vec<u8> {
        let tx_bytes: usize = encoded_txs.iter().map(|t| t.len() + 4).sum();
        let mut w = Writer::with_capacity(HEADER_LEN + 68 + tx_bytes + 8 * encoded_txs.len());
        self.header.encode_into(&mut w);
        w.signature(&self.signature);
        w.length_prefix(encoded_txs.len());
        for tx in encoded_txs {
            w.bytes(tx);
        }
        for i in 0..encoded_txs.len() {
            match self.outcomes.get(i) {
                Some(outcome) => outcome.encode_into(&mut w),
                // A block missing outcomes cannot be encoded faithfully; mark the gap so the
                // bytes fail validation instead of silently claiming validity.
                None => TxOutcome::invalid(InvalidCode::BadPayload, "missing outcome")
                    .encode_into(&mut w),
            }
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Block, LedgerError> {
        let mut r = Reader::new(bytes);
        let block = Self::decode_from(&mut r).map_err(LedgerError::decode("block"))?;
        r.finish().map_err(LedgerError::decode("block"))?;
        Ok(block)
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Block, DecodeError> {
        let header = BlockHeader::decode_from(r)?;
        let signature = r.signature()?;
        // Each transaction needs its length prefix plus at least 33 body bytes, and an
        // outcome of at least 5 bytes follows for each.
        let count = r.count(4 + 33 + 5)?;
        let mut txs = Vec::with_capacity(count);
        for _ in 0..count {
            let at = r.position();
            let raw = r.bytes()?;
            let tx = Transaction::decode(raw).map_err(|e| DecodeError {
                offset: at,
                reason: format!("transaction {}: {e}", txs.len()),
            })?;
            txs.push(tx);
        }
        let mut outcomes = Vec::with_capacity(count);
        for _ in 0..count {
            outcomes.push(TxOutcome::decode_from(r)?);
        }
        Ok(Block {
            header,
            signature,
            txs,
            outcomes,
        })
    }
}
