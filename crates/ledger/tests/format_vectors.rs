//! The worked example of `docs/FORMAT.md` §13. The hex values below are copied into that
//! document; this test keeps the two from drifting apart.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use consort_crypto::{merkle, Hash, SecretKey};
use consort_ledger::{
    Genesis, LedgerState, MemberInfo, Notarization, NotarizedFile, Transaction, TxPayload,
};

fn example() -> (SecretKey, Genesis, Transaction) {
    let key = SecretKey::from_seed(&[0x01; 32]);
    let genesis = Genesis {
        consortium: "example".into(),
        created_ms: 1_700_000_000_000,
        members: vec![MemberInfo {
            name: "alice".into(),
            public_key: key.public_key(),
            peer_addr: "127.0.0.1:7000".into(),
            api_addr: "127.0.0.1:8080".into(),
        }],
        rules_version: 1,
    };
    let payload = TxPayload::Notarize(Notarization {
        files: vec![NotarizedFile {
            name: "data.csv".into(),
            size: 1234,
            blake3: Hash(*blake3::hash(b"hello").as_bytes()),
        }],
        note: Some("example".into()),
    });
    let tx = Transaction::sign(payload, &key, &genesis.chain_id(), 1, 1_700_000_001_000);
    (key, genesis, tx)
}

#[test]
fn worked_example_matches_format_md() {
    let (key, genesis, tx) = example();
    let block0 = genesis.block();
    let values = [
        ("public_key", key.public_key().to_string()),
        ("member_id", key.member_id().to_string()),
        ("raft_node_id", key.member_id().raft_node_id().to_string()),
        ("genesis_tx", hex::encode(block0.txs[0].encode())),
        ("genesis_tx_id", block0.txs[0].id().to_string()),
        ("genesis_header", hex::encode(block0.header.encode())),
        ("genesis_block", hex::encode(block0.encode())),
        ("chain_id", genesis.chain_id().to_string()),
        (
            "notarize_signing_message",
            hex::encode(tx.signing_message(&genesis.chain_id())),
        ),
        ("notarize_tx", hex::encode(tx.encode())),
        ("notarize_tx_id", tx.id().to_string()),
    ];
    for (name, value) in &values {
        println!("{name} = {value}");
    }
    let expected = EXPECTED;
    for ((name, value), (expected_name, expected_value)) in values.iter().zip(expected) {
        assert_eq!(*name, expected_name);
        assert_eq!(
            value.as_str(),
            expected_value,
            "{name} differs from docs/FORMAT.md"
        );
    }
    assert_eq!(values.len(), expected.len());

    // The genesis block's parts follow the documented rules.
    assert_eq!(
        block0.header.tx_root,
        merkle::root(&[block0.txs[0].encode()])
    );
    let state = LedgerState::from_genesis(&genesis).unwrap();
    assert_eq!(state.chain_id(), block0.hash());
    state.check_submission(&tx).unwrap();

    // And FORMAT.md itself contains every value.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md"))
        .expect("docs/FORMAT.md exists");
    let doc_hex: String = doc.chars().filter(|c| !c.is_whitespace()).collect();
    for (name, value) in &values {
        assert!(
            doc_hex.contains(value.as_str()),
            "docs/FORMAT.md lacks {name} = {value}"
        );
    }
}

const EXPECTED: [(&str, &str); 11] = [
    (
        "public_key",
        "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    ),
    ("member_id", "1887e83097f9eeeed46d79a4026fd334"),
    ("raft_node_id", "1767636674172022510"),
    (
        "genesis_tx",
        concat!(
            "000000000000000000000000000000000000000000000000000000018bcfe5680000000007657861",
            "6d706c650000018bcfe568000000000100000005616c6963658a88e3dd7409f195fd52db2d3cba5d",
            "72ca6709bf1d94121bf3748801b40f6f5c0000000e3132372e302e302e313a373030300000000e31",
            "32372e302e302e313a38303830000000000000000000000000000000000000000000000000000000",
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "00",
        ),
    ),
    (
        "genesis_tx_id",
        "7af4f0b5fb99e5eb3cd994c55fc7caf708e8a270d6f918673de25a9931e8cbcb",
    ),
    (
        "genesis_header",
        concat!(
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "efe56b2db98a6eb7380bc283887732e5337d5949f69823fa8cafa36cafecfecfe8996ca2b80509f0",
            "ada4bfae822898e1c5345cb27728cfb50d0b91a81d26c5170000018bcfe568000000000000000000",
            "000000000000000000000001",
        ),
    ),
    (
        "genesis_block",
        concat!(
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "efe56b2db98a6eb7380bc283887732e5337d5949f69823fa8cafa36cafecfecfe8996ca2b80509f0",
            "ada4bfae822898e1c5345cb27728cfb50d0b91a81d26c5170000018bcfe568000000000000000000",
            "00000000000000000000000100000000000000000000000000000000000000000000000000000000",
            "00000000000000000000000000000000000000000000000000000000000000000000000000000001",
            "000000c9000000000000000000000000000000000000000000000000000000018bcfe56800000000",
            "076578616d706c650000018bcfe568000000000100000005616c6963658a88e3dd7409f195fd52db",
            "2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c0000000e3132372e302e302e313a3730303000",
            "00000e3132372e302e302e313a383038300000000000000000000000000000000000000000000000",
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "00000000000000000000",
        ),
    ),
    (
        "chain_id",
        "a527295135e627b233de6cce60b5209df23cf884ac34b6e48d2a3a31de09e91f",
    ),
    (
        "notarize_signing_message",
        concat!(
            "636f6e736f72742f74782f763100a527295135e627b233de6cce60b5209df23cf884ac34b6e48d2a",
            "3a31de09e91f011887e83097f9eeeed46d79a4026fd33400000000000000010000018bcfe56be800",
            "00000100000008646174612e63737600000000000004d2ea8f163db38682925e4491c5e58d4bb350",
            "6ef8c14eb78a86e908c5624a67200f01000000076578616d706c65",
        ),
    ),
    (
        "notarize_tx",
        concat!(
            "011887e83097f9eeeed46d79a4026fd33400000000000000010000018bcfe56be800000001000000",
            "08646174612e63737600000000000004d2ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a",
            "86e908c5624a67200f01000000076578616d706c65ef76e4ef7ab329f2ea5f2f7b5b753b080878b6",
            "ecdc418ffd87dace2db6e917b023ab349acbc9429febcd2d95fa10ff7496136808ff0949c8fe5231",
            "867ed0090f00000000",
        ),
    ),
    (
        "notarize_tx_id",
        "bd92d51ba0d2e73e649bac869d4b3950cc573f5994754abd88a9dd0cff366b72",
    ),
];

/// The encoding `y + p` (for the first `y < 19` whose point is valid for membership) of the
/// §13 rule-version vectors: a key rule version 1 admits and rule version 2 refuses.
fn non_canonical_key() -> consort_crypto::PublicKey {
    (0..19u8)
        .map(|y| {
            let mut b = [0xffu8; 32];
            b[31] = 0x7f;
            b[0] = 0xed + y;
            consort_crypto::PublicKey(b)
        })
        .find(|k| k.is_valid())
        .expect("such a key exists")
}

/// The rule-version vectors of `docs/FORMAT.md` §13: the example genesis under rule
/// versions 2 and 3 (tag 12), block 1 of the version-3 chain and the message its proposer
/// signs, and the non-canonical key that version 2 refuses.
#[test]
fn rule_version_vectors_match_format_md() {
    let (key, mut genesis, _) = example();
    genesis.rules_version = 2;
    let v2_genesis_tx = genesis.block().txs[0].encode();
    let v2_chain_id = genesis.chain_id();
    genesis.rules_version = 3;
    let v3_genesis_tx = genesis.block().txs[0].encode();
    let v3_chain_id = genesis.chain_id();
    assert_eq!(v3_genesis_tx[0], TxPayload::TAG_GENESIS_VERSIONED);

    // Block 1 of the version-3 chain: the example Notarize, re-signed for this chain.
    let payload = example().2.payload;
    let tx = Transaction::sign(payload, &key, &v3_chain_id, 1, 1_700_000_001_000);
    let state = LedgerState::from_genesis(&genesis).unwrap();
    let block1 = state.build_block(vec![tx.clone()], &key, 1_700_000_002_000, &[false]);
    let message = consort_ledger::block::block_signing_message_v2(&v3_chain_id, &block1.hash());
    assert_eq!(message, state.block_signing_message(&block1.header));
    consort_crypto::verify(&key.public_key(), &message, &block1.signature).unwrap();
    let mut follower = state.clone();
    follower.apply_block(&block1, true).unwrap();

    let bad_key = non_canonical_key();
    assert!(bad_key.is_valid() && !bad_key.is_canonical());
    let mut with_bad = genesis.clone();
    with_bad.members.push(MemberInfo {
        name: "bob".into(),
        public_key: bad_key,
        peer_addr: "127.0.0.1:7001".into(),
        api_addr: "127.0.0.1:8081".into(),
    });
    with_bad.rules_version = 1;
    with_bad.validate().unwrap();
    with_bad.rules_version = 2;
    assert!(with_bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("canonically"));

    let values = [
        ("v2_genesis_tx", hex::encode(&v2_genesis_tx)),
        ("v2_chain_id", v2_chain_id.to_string()),
        ("v3_genesis_tx", hex::encode(&v3_genesis_tx)),
        ("v3_chain_id", v3_chain_id.to_string()),
        ("v3_notarize_tx", hex::encode(tx.encode())),
        ("v3_block1_header", hex::encode(block1.header.encode())),
        ("v3_block1_hash", block1.hash().to_string()),
        ("v3_block1_signing_message", hex::encode(&message)),
        ("v3_block1_signature", block1.signature.to_string()),
        ("non_canonical_key", bad_key.to_string()),
    ];
    for (name, value) in &values {
        println!("{name} = {value}");
    }
    for ((name, value), (expected_name, expected_value)) in values.iter().zip(RULE_VECTORS) {
        assert_eq!(*name, expected_name);
        assert_eq!(
            value.as_str(),
            expected_value,
            "{name} differs from docs/FORMAT.md"
        );
    }
    assert_eq!(values.len(), RULE_VECTORS.len());
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md"))
        .expect("docs/FORMAT.md exists");
    let doc_hex: String = doc.chars().filter(|c| !c.is_whitespace()).collect();
    for (name, value) in &values {
        assert!(
            doc_hex.contains(value.as_str()),
            "docs/FORMAT.md lacks {name} = {value}"
        );
    }
}

const RULE_VECTORS: [(&str, &str); 10] = [
    (
        "v2_genesis_tx",
        concat!(
            "0c0000000000000000000000000000000000000000000000000000018bcfe5680000000007657861",
            "6d706c650000018bcfe568000000000100000005616c6963658a88e3dd7409f195fd52db2d3cba5d",
            "72ca6709bf1d94121bf3748801b40f6f5c0000000e3132372e302e302e313a373030300000000e31",
            "32372e302e302e313a38303830000000020000000000000000000000000000000000000000000000",
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "0000000000",
        ),
    ),
    (
        "v2_chain_id",
        "cdb844332cd9939adf73661289f5bd0258da5305965ba5e7839fdc2030d365d2",
    ),
    (
        "v3_genesis_tx",
        concat!(
            "0c0000000000000000000000000000000000000000000000000000018bcfe5680000000007657861",
            "6d706c650000018bcfe568000000000100000005616c6963658a88e3dd7409f195fd52db2d3cba5d",
            "72ca6709bf1d94121bf3748801b40f6f5c0000000e3132372e302e302e313a373030300000000e31",
            "32372e302e302e313a38303830000000030000000000000000000000000000000000000000000000",
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "0000000000",
        ),
    ),
    (
        "v3_chain_id",
        "f05dea7c546a3f9bc3d5fbde9a9e6bdb0888e37f2cc9f07cb6719438aa6cff03",
    ),
    (
        "v3_notarize_tx",
        concat!(
            "011887e83097f9eeeed46d79a4026fd33400000000000000010000018bcfe56be800000001000000",
            "08646174612e63737600000000000004d2ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a",
            "86e908c5624a67200f01000000076578616d706c65501503089cd08f0b6abc7584d828bc7d4ef0af",
            "97dc46d84b104cce65b8f84809be3871ddf835969af5b91264dff8e23078ed082a749d7a3fe7e076",
            "935d03b60b00000000",
        ),
    ),
    (
        "v3_block1_header",
        concat!(
            "0000000000000001f05dea7c546a3f9bc3d5fbde9a9e6bdb0888e37f2cc9f07cb6719438aa6cff03",
            "3caf466adee80a293d48f2a279ced23506854a4139c46f55191c402723ed6c274543281350c0dfe2",
            "aed3eeed34542380073456f2fb7d75852998d05d85968a5f0000018bcfe56fd01887e83097f9eeee",
            "d46d79a4026fd33400000001",
        ),
    ),
    (
        "v3_block1_hash",
        "8b0f4cfc93037f38d90eb15afe888ed84e7c5ae5b32cf8225a9c75572d111398",
    ),
    (
        "v3_block1_signing_message",
        concat!(
            "636f6e736f72742f626c6f636b2d7369672f763200f05dea7c546a3f9bc3d5fbde9a9e6bdb0888e3",
            "7f2cc9f07cb6719438aa6cff038b0f4cfc93037f38d90eb15afe888ed84e7c5ae5b32cf8225a9c75",
            "572d111398",
        ),
    ),
    (
        "v3_block1_signature",
        concat!(
            "3fb2c1cb80aa20ab4b4528b30634aa7c124538e50fd36994b514dfbc2c4fa150e6385ea7bf830ca0",
            "1c7ea27bb39fd8882df4a90a9f69f07099fb01a451985e06",
        ),
    ),
    (
        "non_canonical_key",
        "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ),
];
