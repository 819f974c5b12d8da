//! Two-party PSI against a plaintext intersection: every mode, sizes from 0 to a few
//! thousand, duplicates, NULLs, unicode and mixed types, and the failure paths
//! (malformed points, wrong lengths, a mode mismatch, a vanished peer).

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use consort_mpc::psi::{psi, psi_chunked, MAX_CHUNK};
use consort_mpc::{
    mem_network_named, MemTransport, MpcError, PartyId, PsiKey, PsiMode, PsiOutput, Result,
    RevealTo, Transport,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

const TIMEOUT: Duration = Duration::from_secs(20);
const SHORT: Duration = Duration::from_secs(2);

/// Runs alice (party 0) and bob (party 1); `wrap` may replace a party's transport.
fn run_pair_with(
    a: &[PsiKey],
    b: &[PsiKey],
    mode_a: PsiMode,
    mode_b: PsiMode,
    chunks: (usize, usize),
    timeout: Duration,
    wrap: impl Fn(MemTransport) -> Box<dyn Transport> + Sync,
) -> (Result<PsiOutput>, Result<PsiOutput>) {
    let nets = mem_network_named(vec!["alice".into(), "bob".into()], timeout);
    let wrap = &wrap;
    thread::scope(|s| {
        let hs: Vec<_> = nets
            .into_iter()
            .zip([(a, mode_a, chunks.0), (b, mode_b, chunks.1)])
            .enumerate()
            .map(|(i, (t, (keys, mode, chunk)))| {
                s.spawn(move || {
                    let mut t = wrap(t);
                    let mut rng = StdRng::seed_from_u64(100 + i as u64);
                    psi_chunked(&mut *t, 1 - i, keys, mode, chunk, &mut rng)
                })
            })
            .collect();
        let mut rs = hs.into_iter().map(|h| h.join().unwrap());
        (rs.next().unwrap(), rs.next().unwrap())
    })
}

fn run_pair(a: &[PsiKey], b: &[PsiKey], mode: PsiMode) -> (PsiOutput, PsiOutput) {
    let (ra, rb) = run_pair_with(
        a,
        b,
        mode,
        mode.mirror(),
        (MAX_CHUNK, MAX_CHUNK),
        TIMEOUT,
        |t| Box::new(t),
    );
    (ra.expect("alice failed"), rb.expect("bob failed"))
}

/// Plaintext reference: rows of `mine` whose key occurs in `theirs`.
fn plain_rows(mine: &[PsiKey], theirs: &[PsiKey]) -> Vec<usize> {
    let set: HashSet<Vec<u8>> = theirs.iter().filter_map(|k| k.canonical()).collect();
    (0..mine.len())
        .filter(|&i| mine[i].canonical().is_some_and(|c| set.contains(&c)))
        .collect()
}

fn distinct(keys: &[PsiKey]) -> HashSet<Vec<u8>> {
    keys.iter().filter_map(|k| k.canonical()).collect()
}

/// Checks both outputs of a run in `mode` (alice's view) against the plaintext reference.
fn check(a: &[PsiKey], b: &[PsiKey], mode: PsiMode, oa: &PsiOutput, ob: &PsiOutput) {
    let (da, db) = (distinct(a), distinct(b));
    let card = da.intersection(&db).count();
    assert_eq!((oa.my_set_size, oa.peer_set_size), (da.len(), db.len()));
    assert_eq!((ob.my_set_size, ob.peer_set_size), (db.len(), da.len()));
    for (o, learns, mine, theirs) in [
        (
            oa,
            mode.mirror() != (PsiMode::Reveal { to: RevealTo::Me }),
            a,
            b,
        ),
        (ob, mode != (PsiMode::Reveal { to: RevealTo::Me }), b, a),
    ] {
        assert_eq!(o.cardinality, learns.then_some(card), "{mode:?}");
        let rows = matches!(mode, PsiMode::Reveal { .. } | PsiMode::JoinAlignment) && learns;
        assert_eq!(
            o.matched_rows,
            rows.then(|| plain_rows(mine, theirs)),
            "{mode:?}"
        );
        assert_eq!(o.alignment.is_some(), mode == PsiMode::JoinAlignment);
    }
    if mode == PsiMode::JoinAlignment {
        let (la, lb) = (
            oa.alignment.as_ref().unwrap(),
            ob.alignment.as_ref().unwrap(),
        );
        assert_eq!(la.len(), lb.len());
        // Every aligned row pairs equal keys, and the pairs are exactly the cross product
        // of the rows holding each common key.
        let pairs: HashSet<(usize, usize)> = la.iter().copied().zip(lb.iter().copied()).collect();
        assert_eq!(pairs.len(), la.len(), "a pair is repeated");
        let mut expect = HashSet::new();
        for (i, ka) in a.iter().enumerate() {
            for (j, kb) in b.iter().enumerate() {
                if ka.canonical().is_some() && ka.canonical() == kb.canonical() {
                    expect.insert((i, j));
                }
            }
        }
        assert_eq!(pairs, expect);
    }
}

const ALL_MODES: [PsiMode; 5] = [
    PsiMode::Reveal { to: RevealTo::Both },
    PsiMode::Reveal { to: RevealTo::Me },
    PsiMode::Reveal { to: RevealTo::Peer },
    PsiMode::Cardinality,
    PsiMode::JoinAlignment,
];

fn ints(r: std::ops::Range<i64>) -> Vec<PsiKey> {
    r.map(PsiKey::Int).collect()
}

fn key_strategy() -> impl Strategy<Value = PsiKey> {
    prop_oneof![
        4 => (0i64..24).prop_map(PsiKey::Int),
        1 => Just(PsiKey::Null),
        1 => any::<bool>().prop_map(PsiKey::Bool),
        1 => prop::sample::select(vec![0.0, -0.0, 1.5, 42.0, f64::NAN, f64::INFINITY])
            .prop_map(PsiKey::Float),
        2 => prop::sample::select(vec!["", "a", "42", "é", "e\u{301}", "日本", "🦀", "A"])
            .prop_map(|s| PsiKey::Text(s.to_string())),
        1 => (-2i32..3).prop_map(PsiKey::Date),
        1 => (-2i64..3).prop_map(PsiKey::Timestamp),
    ]
}

fn mode_strategy() -> impl Strategy<Value = PsiMode> {
    prop::sample::select(ALL_MODES.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_every_mode_matches_plaintext(
        a in prop::collection::vec(key_strategy(), 0..40),
        b in prop::collection::vec(key_strategy(), 0..40),
        mode in mode_strategy(),
        ca in 1usize..6,
        cb in 1usize..6,
    ) {
        let (ra, rb) = run_pair_with(&a, &b, mode, mode.mirror(), (ca, cb), TIMEOUT, |t| Box::new(t));
        check(&a, &b, mode, &ra.unwrap(), &rb.unwrap());
    }
}

#[test]
fn empty_and_single_sets_in_every_mode() {
    let cases: Vec<(Vec<PsiKey>, Vec<PsiKey>)> = vec![
        (vec![], vec![]),
        (vec![], ints(0..5)),
        (ints(0..5), vec![]),
        (vec![PsiKey::Int(1)], vec![PsiKey::Int(1)]),
        (vec![PsiKey::Int(1)], vec![PsiKey::Int(2)]),
        (vec![PsiKey::Null], vec![PsiKey::Null]),
    ];
    for (a, b) in &cases {
        for mode in ALL_MODES {
            let (oa, ob) = run_pair(a, b, mode);
            check(a, b, mode, &oa, &ob);
        }
    }
}

#[test]
fn few_thousand_full_empty_and_partial_overlap() {
    let a = ints(0..3000);
    let full: Vec<PsiKey> = (0..3000).rev().map(PsiKey::Int).collect();
    let none = ints(3000..5500);
    let part = ints(2000..4500);
    for (b, mode) in [
        (&full, PsiMode::Reveal { to: RevealTo::Both }),
        (&none, PsiMode::Cardinality),
        (&part, PsiMode::JoinAlignment),
        (&part, PsiMode::Reveal { to: RevealTo::Me }),
    ] {
        let (oa, ob) = run_pair(&a, b, mode);
        check(&a, b, mode, &oa, &ob);
    }
    let (oa, _) = run_pair(&a, &part, PsiMode::Cardinality);
    assert_eq!(oa.cardinality, Some(1000));
}

#[test]
fn chunked_answers_keep_their_order() {
    // Uneven chunk sizes on both sides: answers mirror the chunks they answer.
    let a = ints(0..700);
    let b = ints(350..1200);
    for mode in [PsiMode::JoinAlignment, PsiMode::Cardinality] {
        let (ra, rb) = run_pair_with(&a, &b, mode, mode, (97, 256), TIMEOUT, |t| Box::new(t));
        check(&a, &b, mode, &ra.unwrap(), &rb.unwrap());
    }
}

#[test]
fn duplicates_match_every_row_and_count_once() {
    let a = vec![
        PsiKey::Int(1),
        PsiKey::Int(1),
        PsiKey::Int(2),
        PsiKey::Int(3),
    ];
    let b = vec![
        PsiKey::Int(1),
        PsiKey::Int(3),
        PsiKey::Int(3),
        PsiKey::Int(3),
    ];
    let (oa, ob) = run_pair(&a, &b, PsiMode::Reveal { to: RevealTo::Both });
    assert_eq!(oa.matched_rows, Some(vec![0, 1, 3]));
    assert_eq!(ob.matched_rows, Some(vec![0, 1, 2, 3]));
    // Distinct keys only: the peer never learns how often a key occurs.
    assert_eq!(
        (oa.my_set_size, oa.peer_set_size, oa.cardinality),
        (3, 2, Some(2))
    );
    check(&a, &b, PsiMode::Reveal { to: RevealTo::Both }, &oa, &ob);
}

#[test]
fn join_alignment_is_the_cross_product_of_duplicates() {
    let a = vec![
        PsiKey::Int(7),
        PsiKey::Int(5),
        PsiKey::Int(7),
        PsiKey::Int(9),
    ];
    let b = vec![
        PsiKey::Int(7),
        PsiKey::Int(7),
        PsiKey::Int(7),
        PsiKey::Int(5),
        PsiKey::Int(8),
    ];
    let (oa, ob) = run_pair(&a, &b, PsiMode::JoinAlignment);
    check(&a, &b, PsiMode::JoinAlignment, &oa, &ob);
    let (la, lb) = (oa.alignment.unwrap(), ob.alignment.unwrap());
    assert_eq!(la.len(), 2 * 3 + 1);
    // Alice (lower party id) is outer: each of her rows of a key is repeated once per
    // row of bob's; bob cycles through his rows.
    let ka: HashMap<usize, Vec<usize>> =
        la.iter().zip(&lb).fold(HashMap::new(), |mut m, (&x, &y)| {
            m.entry(x).or_default().push(y);
            m
        });
    assert_eq!(ka[&0], vec![0, 1, 2]);
    assert_eq!(ka[&2], vec![0, 1, 2]);
    assert_eq!(ka[&1], vec![3]);
}

#[test]
fn nulls_and_nan_never_match() {
    let a = vec![
        PsiKey::Null,
        PsiKey::Float(f64::NAN),
        PsiKey::Int(1),
        PsiKey::Null,
    ];
    let b = vec![PsiKey::Null, PsiKey::Float(f64::NAN), PsiKey::Int(1)];
    for mode in ALL_MODES {
        let (oa, ob) = run_pair(&a, &b, mode);
        check(&a, &b, mode, &oa, &ob);
        assert_eq!(oa.my_set_size, 1, "NULL and NaN are not sent");
    }
    let (oa, _) = run_pair(&a, &b, PsiMode::Reveal { to: RevealTo::Both });
    assert_eq!(oa.matched_rows, Some(vec![2]));
}

#[test]
fn unicode_text_matches_by_exact_bytes() {
    let t = |s: &str| PsiKey::Text(s.to_string());
    let a = vec![t("café"), t("Zürich"), t("東京"), t("🦀 crab"), t("x")];
    // NFD "café", a different case, and the same strings.
    let b = vec![
        t("cafe\u{301}"),
        t("zürich"),
        t("東京"),
        t("🦀 crab"),
        t("x "),
    ];
    let (oa, ob) = run_pair(&a, &b, PsiMode::Reveal { to: RevealTo::Both });
    assert_eq!(oa.matched_rows, Some(vec![2, 3]));
    assert_eq!(ob.matched_rows, Some(vec![2, 3]));
}

#[test]
fn mixed_types_do_not_match_each_other() {
    let a = vec![
        PsiKey::Int(42),
        PsiKey::Float(42.0),
        PsiKey::Text("42".into()),
        PsiKey::Date(42),
        PsiKey::Timestamp(42),
        PsiKey::Bool(true),
        PsiKey::Float(0.0),
    ];
    // One of each on bob's side, each in a different position; -0.0 equals 0.0.
    for (i, k) in a.iter().enumerate() {
        let k = if i == 6 {
            PsiKey::Float(-0.0)
        } else {
            k.clone()
        };
        let b = vec![PsiKey::Int(1), k, PsiKey::Int(1i64 << 40)];
        let (oa, ob) = run_pair(&a, &b, PsiMode::Reveal { to: RevealTo::Both });
        assert_eq!(oa.matched_rows, Some(vec![i]), "key {i}");
        assert_eq!(ob.matched_rows, Some(vec![1]), "key {i}");
    }
    assert_eq!(PsiKey::Bool(true).canonical(), Some(vec![1, 1]));
    assert_ne!(PsiKey::Int(1).canonical(), PsiKey::Timestamp(1).canonical());
}

#[test]
fn one_sided_reveal_tells_the_other_side_nothing() {
    let (a, b) = (ints(0..10), ints(5..20));
    let (oa, ob) = run_pair(&a, &b, PsiMode::Reveal { to: RevealTo::Me });
    assert_eq!(oa.matched_rows, Some((5..10).collect()));
    assert_eq!(
        (ob.cardinality, ob.matched_rows, ob.alignment),
        (None, None, None)
    );
    assert_eq!(ob.peer_set_size, 10);
    let (oa, ob) = run_pair(&a, &b, PsiMode::Cardinality);
    assert_eq!((oa.cardinality, ob.cardinality), (Some(5), Some(5)));
    assert_eq!((oa.matched_rows, ob.matched_rows), (None, None));
}

#[test]
fn mode_mismatch_fails_on_both_sides() {
    let a = ints(0..10);
    let (ra, rb) = run_pair_with(
        &a,
        &a,
        PsiMode::Cardinality,
        PsiMode::Reveal { to: RevealTo::Both },
        (MAX_CHUNK, MAX_CHUNK),
        SHORT,
        |t| Box::new(t),
    );
    assert!(
        matches!(&ra, Err(MpcError::Malformed { peer, .. }) if peer == "bob"),
        "{ra:?}"
    );
    assert!(
        matches!(&rb, Err(MpcError::Malformed { peer, .. }) if peer == "alice"),
        "{rb:?}"
    );
}

#[test]
fn bad_arguments_are_rejected() {
    let mut nets = mem_network_named(vec!["alice".into(), "bob".into()], SHORT);
    let mut rng = StdRng::seed_from_u64(1);
    let t: &mut dyn Transport = &mut nets[0];
    let r = psi(t, 0, &[], PsiMode::Cardinality, &mut rng);
    assert!(matches!(r, Err(MpcError::InvalidArgument(_))), "{r:?}");
    let r = psi_chunked(t, 1, &[], PsiMode::Cardinality, 0, &mut rng);
    assert!(matches!(r, Err(MpcError::InvalidArgument(_))), "{r:?}");
}

/// Rewrites alice's `at`-th message (1-based) with `f`, or vanishes before sending it.
struct Faulty {
    inner: MemTransport,
    sent: u64,
    at: u64,
    f: Option<fn(&mut Vec<u8>)>,
}

impl Transport for Faulty {
    fn me(&self) -> PartyId {
        self.inner.me()
    }
    fn send(&mut self, to: PartyId, mut msg: Vec<u8>) -> Result<()> {
        self.sent += 1;
        if self.sent == self.at {
            match self.f {
                Some(f) => f(&mut msg),
                None => {
                    self.inner.vanish();
                    return Err(MpcError::InvalidArgument("simulated crash".into()));
                }
            }
        }
        self.inner.send(to, msg)
    }
    fn recv(&mut self, from: PartyId) -> Result<Vec<u8>> {
        self.inner.recv(from)
    }
    fn peer_name(&self, p: PartyId) -> String {
        self.inner.peer_name(p)
    }
    fn bytes_sent(&self) -> u64 {
        self.inner.bytes_sent()
    }
    fn messages_sent(&self) -> u64 {
        self.inner.messages_sent()
    }
}

/// Runs a JoinAlignment PSI in which alice's `at`-th message is faulty; returns both
/// results and checks that nobody hangs.
fn run_faulty(at: u64, f: Option<fn(&mut Vec<u8>)>) -> (Result<PsiOutput>, Result<PsiOutput>) {
    let (a, b) = (ints(0..300), ints(100..400));
    let start = Instant::now();
    let r = run_pair_with(
        &a,
        &b,
        PsiMode::JoinAlignment,
        PsiMode::JoinAlignment,
        (100, 100),
        SHORT,
        |t| {
            if t.me() == 0 {
                Box::new(Faulty {
                    inner: t,
                    sent: 0,
                    at,
                    f,
                })
            } else {
                Box::new(t)
            }
        },
    );
    assert!(start.elapsed() < SHORT * 3, "a party hung");
    r
}

fn assert_malformed_by_alice(r: &(Result<PsiOutput>, Result<PsiOutput>), what: &str) {
    match &r.1 {
        Err(MpcError::Malformed { peer, reason }) => {
            assert_eq!(peer, "alice");
            assert!(reason.contains(what), "{reason}");
        }
        other => panic!("bob: {other:?}"),
    }
    // Alice hears why at once (bob's abort notice), naming her.
    match &r.0 {
        Err(MpcError::Aborted { peer, reason }) => {
            assert_eq!(peer, "bob");
            assert!(reason.contains("alice"), "{reason}");
        }
        other => panic!("alice: {other:?}"),
    }
}

#[test]
fn invalid_point_is_malformed_not_a_panic() {
    // Message 2 is alice's first chunk of blinded points; 0xff… is not a field element.
    let r = run_faulty(2, Some(|m| m[32..64].fill(0xff)));
    assert_malformed_by_alice(&r, "point 1 of a chunk is not a valid ristretto255");
    // Message 5 is her first answer (double-blinded points, compared as given): corrupt
    // values there simply do not match, so stretch it instead.
    let r = run_faulty(5, Some(|m| m.splice(0..0, [0u8; 7]).for_each(drop)));
    assert_malformed_by_alice(&r, "double-blinded points");
}

#[test]
fn wrong_length_messages_are_malformed() {
    // Header one word short (the frame byte survives at the end).
    let r = run_faulty(1, Some(|m| m.drain(0..8).for_each(drop)));
    assert_malformed_by_alice(&r, "too short");
    // A chunk of points with a ragged tail.
    let r = run_faulty(3, Some(|m| m.splice(0..0, [1u8; 5]).for_each(drop)));
    assert_malformed_by_alice(&r, "blinded points: message of 3205 bytes");
    // Row counts of the join alignment: one count too many.
    let r = run_faulty(8, Some(|m| m.splice(0..0, [1u8; 8]).for_each(drop)));
    assert!(
        matches!(&r.1, Err(MpcError::Malformed { peer, .. }) if peer == "alice"),
        "{:?}",
        r.1
    );
}

#[test]
fn peer_vanishing_mid_psi_is_named() {
    // Alice crashes before each of her messages in turn: header, points, answers, counts.
    for at in 1..=8 {
        let r = run_faulty(at, None);
        match &r.1 {
            Err(MpcError::PeerGone { peer }) => assert_eq!(peer, "alice", "at {at}"),
            other => panic!("bob, alice gone before message {at}: {other:?}"),
        }
    }
}
