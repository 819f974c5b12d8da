//! Transactions: payload types, the canonical encoding, signing messages and transaction ids.
//!
//! Encoding (see `docs/FORMAT.md` §3): `body = tag || signer || nonce || timestamp_ms ||
//! payload`; `tx = body || signature || approvals`. Signatures cover
//! `"consort/tx/v1" || 0x00 || chain_id || body`; the id is
//! `hash_domain("consort/txid/v1", [body])`.

use consort_crypto::encoding::{DecodeError, Reader, Writer};
use consort_crypto::{hash_domain, Hash, MemberId, PublicKey, SecretKey, Signature};
use serde::{Deserialize, Serialize};

use crate::dataset::DatasetRecord;
use crate::error::LedgerError;
use crate::policy::{DataTransfer, Grant, QueryDecision, QueryRequest, QueryResult, Revoke};

/// Domain prefix of a transaction signing message.
pub const TX_SIGNING_DOMAIN: &str = "consort/tx/v1";
/// Domain of the transaction id hash.
pub const TX_ID_DOMAIN: &str = "consort/txid/v1";

/// What a transaction does. The tag byte of each variant is fixed forever; later payload
/// kinds get new tags, and an unknown tag is a decode error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum TxPayload {
    /// Tag 0: founds the consortium; only ever the single transaction of block 0.
    Genesis(Genesis),
    /// Tag 1: records the hashes of files.
    Notarize(Notarization),
    /// Tag 2: admits a member; needs approvals from a majority of members.
    MemberAdd(MemberInfo),
    /// Tag 3: removes a member; needs approvals from a majority of members.
    MemberRemove { member: MemberId },
    /// Tag 4: registers a new dataset of the signer.
    DatasetRegister(DatasetRecord),
    /// Tag 5: registers the next version of one of the signer's datasets.
    DatasetUpdate(DatasetRecord),
    /// Tag 6: grants column permissions on one of the signer's datasets.
    Grant(Grant),
    /// Tag 7: ends one of the signer's grants.
    Revoke(Revoke),
    /// Tag 8: asks the owners of some datasets to run a joint query.
    QueryRequest(QueryRequest),
    /// Tag 9: one owner approves or refuses a query.
    QueryDecision(QueryDecision),
    /// Tag 10: how a query ended, attested by its compute nodes when revealed.
    QueryResult(QueryResult),
    /// Tag 11: the signer sent rows or files of one of its datasets to another member.
    DataTransfer(DataTransfer),
    /// Tag 13: moves the chain to a later rule version from the next transaction on; needs
    /// approvals from a majority of members (FORMAT.md §8.4).
    RulesUpgrade { version: u32 },
}

impl TxPayload {
    pub const TAG_GENESIS: u8 = 0;
    pub const TAG_NOTARIZE: u8 = 1;
    pub const TAG_MEMBER_ADD: u8 = 2;
    pub const TAG_MEMBER_REMOVE: u8 = 3;
    pub const TAG_DATASET_REGISTER: u8 = 4;
    pub const TAG_DATASET_UPDATE: u8 = 5;
    pub const TAG_GRANT: u8 = 6;
    pub const TAG_REVOKE: u8 = 7;
    pub const TAG_QUERY_REQUEST: u8 = 8;
    pub const TAG_QUERY_DECISION: u8 = 9;
    pub const TAG_QUERY_RESULT: u8 = 10;
    pub const TAG_DATA_TRANSFER: u8 = 11;
    /// A genesis that names its rule version (2 or later); tag 0 is a rule-version-1 genesis.
    pub const TAG_GENESIS_VERSIONED: u8 = 12;
    pub const TAG_RULES_UPGRADE: u8 = 13;

    pub fn tag(&self) -> u8 {
        match self {
            TxPayload::Genesis(g) if g.rules_version > 1 => Self::TAG_GENESIS_VERSIONED,
            TxPayload::Genesis(_) => Self::TAG_GENESIS,
            TxPayload::Notarize(_) => Self::TAG_NOTARIZE,
            TxPayload::MemberAdd(_) => Self::TAG_MEMBER_ADD,
            TxPayload::MemberRemove { .. } => Self::TAG_MEMBER_REMOVE,
            TxPayload::DatasetRegister(_) => Self::TAG_DATASET_REGISTER,
            TxPayload::DatasetUpdate(_) => Self::TAG_DATASET_UPDATE,
            TxPayload::Grant(_) => Self::TAG_GRANT,
            TxPayload::Revoke(_) => Self::TAG_REVOKE,
            TxPayload::QueryRequest(_) => Self::TAG_QUERY_REQUEST,
            TxPayload::QueryDecision(_) => Self::TAG_QUERY_DECISION,
            TxPayload::QueryResult(_) => Self::TAG_QUERY_RESULT,
            TxPayload::DataTransfer(_) => Self::TAG_DATA_TRANSFER,
            TxPayload::RulesUpgrade { .. } => Self::TAG_RULES_UPGRADE,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            TxPayload::Genesis(_) => "Genesis",
            TxPayload::Notarize(_) => "Notarize",
            TxPayload::MemberAdd(_) => "MemberAdd",
            TxPayload::MemberRemove { .. } => "MemberRemove",
            TxPayload::DatasetRegister(_) => "DatasetRegister",
            TxPayload::DatasetUpdate(_) => "DatasetUpdate",
            TxPayload::Grant(_) => "Grant",
            TxPayload::Revoke(_) => "Revoke",
            TxPayload::QueryRequest(_) => "QueryRequest",
            TxPayload::QueryDecision(_) => "QueryDecision",
            TxPayload::QueryResult(_) => "QueryResult",
            TxPayload::DataTransfer(_) => "DataTransfer",
            TxPayload::RulesUpgrade { .. } => "RulesUpgrade",
        }
    }

    /// Writes the payload fields (the tag is written separately, at the front of the body).
    fn encode_fields(&self, w: &mut Writer) {
        match self {
            TxPayload::Genesis(genesis) => genesis.encode_into(w),
            TxPayload::Notarize(notarization) => {
                w.list(&notarization.files, |w, file| {
                    w.string(&file.name).u64(file.size).hash(&file.blake3);
                });
                w.option(notarization.note.as_ref(), |w, note| {
                    w.string(note);
                });
            }
            TxPayload::MemberAdd(info) => info.encode_into(w),
            TxPayload::MemberRemove { member } => {
                w.member_id(member);
            }
            TxPayload::DatasetRegister(record) | TxPayload::DatasetUpdate(record) => {
                record.encode_into(w)
            }
            TxPayload::Grant(grant) => grant.encode_into(w),
            TxPayload::Revoke(revoke) => revoke.encode_into(w),
            TxPayload::QueryRequest(request) => request.encode_into(w),
            TxPayload::QueryDecision(decision) => decision.encode_into(w),
            TxPayload::QueryResult(result) => result.encode_into(w),
            TxPayload::DataTransfer(transfer) => transfer.encode_into(w),
            TxPayload::RulesUpgrade { version } => {
                w.u32(*version);
            }
        }
    }

    fn decode_fields(tag: u8, r: &mut Reader<'_>) -> Result<TxPayload, DecodeError> {
        match tag {
            Self::TAG_GENESIS => Genesis::decode_from(r).map(TxPayload::Genesis),
            Self::TAG_GENESIS_VERSIONED => {
                let mut genesis = Genesis::decode_from(r)?;
                genesis.rules_version = r.u32()?;
                // Version 1 has its own tag; one genesis has one encoding.
                if genesis.rules_version < 2 {
                    return Err(r.error("a versioned genesis names rule version 2 or later"));
                }
                Ok(TxPayload::Genesis(genesis))
            }
            Self::TAG_RULES_UPGRADE => Ok(TxPayload::RulesUpgrade { version: r.u32()? }),
            Self::TAG_NOTARIZE => {
                // A file is at least: name length (4) + size (8) + blake3 (32).
                let files = r.list(44, |r| {
                    Ok(NotarizedFile {
                        name: r.string()?,
                        size: r.u64()?,
                        blake3: r.hash()?,
                    })
                })?;
                let note = r.option(|r| r.string())?;
                Ok(TxPayload::Notarize(Notarization { files, note }))
            }
            Self::TAG_MEMBER_ADD => MemberInfo::decode_from(r).map(TxPayload::MemberAdd),
            Self::TAG_MEMBER_REMOVE => Ok(TxPayload::MemberRemove {
                member: r.member_id()?,
            }),
            Self::TAG_DATASET_REGISTER => {
                DatasetRecord::decode_from(r).map(TxPayload::DatasetRegister)
            }
            Self::TAG_DATASET_UPDATE => DatasetRecord::decode_from(r).map(TxPayload::DatasetUpdate),
            Self::TAG_GRANT => Grant::decode_from(r).map(TxPayload::Grant),
            Self::TAG_REVOKE => Revoke::decode_from(r).map(TxPayload::Revoke),
            Self::TAG_QUERY_REQUEST => QueryRequest::decode_from(r).map(TxPayload::QueryRequest),
            Self::TAG_QUERY_DECISION => QueryDecision::decode_from(r).map(TxPayload::QueryDecision),
            Self::TAG_QUERY_RESULT => QueryResult::decode_from(r).map(TxPayload::QueryResult),
            Self::TAG_DATA_TRANSFER => DataTransfer::decode_from(r).map(TxPayload::DataTransfer),
            other => Err(r.error(format!("unknown transaction payload tag {other}"))),
        }
    }
}

/// A set of files whose BLAKE3 hashes are recorded on the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notarization {
    pub files: Vec<NotarizedFile>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotarizedFile {
    pub name: String,
    pub size: u64,
    pub blake3: Hash,
}

/// A member's public card: what other members need to know to admit and reach it.
///
/// JSON (the `member.json` card and `genesis.json` entries) carries an extra `member_id`
/// field; on input it is optional, but if present it must match the public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MemberCard", into = "MemberCard")]
pub struct MemberInfo {
    pub name: String,
    pub public_key: PublicKey,
    pub peer_addr: String,
    pub api_addr: String,
}

/// The JSON shape of [`MemberInfo`].
#[derive(Serialize, Deserialize)]
struct MemberCard {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member_id: Option<MemberId>,
    public_key: PublicKey,
    peer_addr: String,
    api_addr: String,
}

impl TryFrom<MemberCard> for MemberInfo {
    type Error = String;

    fn try_from(card: MemberCard) -> Result<Self, String> {
        let info = MemberInfo {
            name: card.name,
            public_key: card.public_key,
            peer_addr: card.peer_addr,
            api_addr: card.api_addr,
        };
        match card.member_id {
            Some(id) if id != info.id() => Err(format!(
                "member_id {id} does not match public key {} (expected {})",
                info.public_key,
                info.id()
            )),
            _ => Ok(info),
        }
    }
}

impl From<MemberInfo> for MemberCard {
    fn from(info: MemberInfo) -> Self {
        MemberCard {
            member_id: Some(info.id()),
            name: info.name,
            public_key: info.public_key,
            peer_addr: info.peer_addr,
            api_addr: info.api_addr,
        }
    }
}

impl MemberInfo {
    pub fn id(&self) -> MemberId {
        MemberId::from_public_key(&self.public_key)
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.string(&self.name)
            .public_key(&self.public_key)
            .string(&self.peer_addr)
            .string(&self.api_addr);
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<MemberInfo, DecodeError> {
        Ok(MemberInfo {
            name: r.string()?,
            public_key: r.public_key()?,
            peer_addr: r.string()?,
            api_addr: r.string()?,
        })
    }
}

/// The founding description of a consortium (`genesis.json`). Its block 0 hash is the
/// chain id. Construction and validation live in `genesis.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub consortium: String,
    pub created_ms: u64,
    pub members: Vec<MemberInfo>,
    /// The rule version the chain starts under (FORMAT.md §8.4). Genesis files written
    /// before rule versions existed have none and start under version 1.
    #[serde(
        default = "rules_version_one",
        skip_serializing_if = "is_rules_version_one"
    )]
    pub rules_version: u32,
}

fn rules_version_one() -> u32 {
    1
}

fn is_rules_version_one(v: &u32) -> bool {
    *v == 1
}

impl Genesis {
    fn encode_into(&self, w: &mut Writer) {
        w.string(&self.consortium).u64(self.created_ms);
        w.list(&self.members, |w, m| m.encode_into(w));
        if self.rules_version > 1 {
            w.u32(self.rules_version);
        }
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Genesis, DecodeError> {
        Ok(Genesis {
            consortium: r.string()?,
            created_ms: r.u64()?,
            // A member is at least 3 length prefixes (12) + a public key (32).
            members: r.list(44, MemberInfo::decode_from)?,
            rules_version: 1,
        })
    }
}

/// A co-signature by another member over the same signing message (for membership changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub member: MemberId,
    pub signature: Signature,
}

/// A signed ledger transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub signer: MemberId,
    /// Any u64 the signer has not used in a valid transaction before (replay protection).
    pub nonce: u64,
    pub timestamp_ms: u64,
    pub payload: TxPayload,
    pub signature: Signature,
    #[serde(default)]
    pub approvals: Vec<Approval>,
}

/// Size of an encoded approval: member id (16) + signature (64).
const APPROVAL_LEN: usize = 80;

impl Transaction {
    /// The signed part: `tag || signer || nonce || timestamp_ms || payload`.
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        self.write_body(&mut w);
        w.into_bytes()
    }

    fn write_body(&self, w: &mut Writer) {
        w.u8(self.payload.tag())
            .member_id(&self.signer)
            .u64(self.nonce)
            .u64(self.timestamp_ms);
        self.payload.encode_fields(w);
    }

    /// `"consort/tx/v1" || 0x00 || chain_id || body` — what the signer and approvers sign.
    pub fn signing_message(&self, chain_id: &Hash) -> Vec<u8> {
        signing_message_for_body(chain_id, &self.body_bytes())
    }

    /// `hash_domain("consort/txid/v1", [body])`.
    pub fn id(&self) -> Hash {
        hash_domain(TX_ID_DOMAIN, &[&self.body_bytes()])
    }

    /// Builds and signs a transaction from `key`'s member.
    pub fn sign(
        payload: TxPayload,
        key: &SecretKey,
        chain_id: &Hash,
        nonce: u64,
        timestamp_ms: u64,
    ) -> Transaction {
        let mut tx = Transaction {
            signer: key.member_id(),
            nonce,
            timestamp_ms,
            payload,
            signature: Signature::ZERO,
            approvals: Vec::new(),
        };
        tx.signature = key.sign(&tx.signing_message(chain_id));
        tx
    }

    /// Adds `key`'s member's co-signature over the same signing message.
    pub fn add_approval(&mut self, key: &SecretKey, chain_id: &Hash) {
        let signature = key.sign(&self.signing_message(chain_id));
        self.approvals.push(Approval {
            member: key.member_id(),
            signature,
        });
    }

    /// `body || signature || u32 count || count * (member id || signature)`.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_body_len().0
    }

    /// The encoding and the length of its body prefix, so callers that need the encoding,
    /// the id and the signing message encode only once.
    pub(crate) fn encode_with_body_len(&self) -> (Vec<u8>, usize) {
        let mut w = Writer::with_capacity(192 + APPROVAL_LEN * self.approvals.len());
        self.write_body(&mut w);
        let body_len = w.as_bytes().len();
        w.signature(&self.signature);
        w.list(&self.approvals, |w, a| {
            w.member_id(&a.member).signature(&a.signature);
        });
        (w.into_bytes(), body_len)
    }

    pub fn decode(bytes: &[u8]) -> Result<Transaction, LedgerError> {
        let mut r = Reader::new(bytes);
        let tx = Self::decode_from(&mut r).map_err(LedgerError::decode("transaction"))?;
        r.finish().map_err(LedgerError::decode("transaction"))?;
        Ok(tx)
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Transaction, DecodeError> {
        let tag = r.u8()?;
        let signer = r.member_id()?;
        let nonce = r.u64()?;
        let timestamp_ms = r.u64()?;
        let payload = TxPayload::decode_fields(tag, r)?;
        let signature = r.signature()?;
        let approvals = r.list(APPROVAL_LEN, |r| {
            Ok(Approval {
                member: r.member_id()?,
                signature: r.signature()?,
            })
        })?;
        Ok(Transaction {
            signer,
            nonce,
            timestamp_ms,
            payload,
            signature,
            approvals,
        })
    }

    pub fn kind_name(&self) -> &'static str {
        self.payload.kind_name()
    }
}

/// `"consort/tx/v1" || 0x00 || chain_id || body`.
pub(crate) fn signing_message_for_body(chain_id: &Hash, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(TX_SIGNING_DOMAIN.len() + 1 + 32 + body.len());
    msg.extend_from_slice(TX_SIGNING_DOMAIN.as_bytes());
    msg.push(0);
    msg.extend_from_slice(&chain_id.0);
    msg.extend_from_slice(body);
    msg
}

/// A transaction together with its encoding, encoded once and reused for the Merkle leaf,
/// the id and the signing message.
pub(crate) struct EncodedTx<'a> {
    pub tx: &'a Transaction,
    pub bytes: Vec<u8>,
    body_len: usize,
}

impl<'a> EncodedTx<'a> {
    pub fn new(tx: &'a Transaction) -> Self {
        let (bytes, body_len) = tx.encode_with_body_len();
        EncodedTx {
            tx,
            bytes,
            body_len,
        }
    }

    pub fn body(&self) -> &[u8] {
        self.bytes.get(..self.body_len).unwrap_or(&self.bytes)
    }

    pub fn id(&self) -> Hash {
        hash_domain(TX_ID_DOMAIN, &[self.body()])
    }

    pub fn signing_message(&self, chain_id: &Hash) -> Vec<u8> {
        signing_message_for_body(chain_id, self.body())
    }
}
