//! Whatever a peer sends into a PSI (blinded points, double-blinded points, mode headers,
//! sizes) must end in an error, never a panic: the fuzzer scripts every message party 0
//! receives, in every mode.
#![no_main]

use std::collections::VecDeque;

use consort_mpc::psi::{psi, PsiKey, PsiMode, RevealTo};
use consort_mpc::transport::{PartyId, Transport};
use consort_mpc::MpcError;
use libfuzzer_sys::fuzz_target;

/// Replays scripted messages from the peer; drops what party 0 sends.
struct Scripted(VecDeque<Vec<u8>>, u64);

impl Transport for Scripted {
    fn me(&self) -> PartyId {
        0
    }
    fn send(&mut self, _to: PartyId, msg: Vec<u8>) -> consort_mpc::Result<()> {
        self.1 += msg.len() as u64;
        Ok(())
    }
    fn recv(&mut self, _from: PartyId) -> consort_mpc::Result<Vec<u8>> {
        self.0.pop_front().ok_or(MpcError::PeerGone {
            peer: "peer".into(),
        })
    }
    fn peer_name(&self, _p: PartyId) -> String {
        "peer".into()
    }
    fn bytes_sent(&self) -> u64 {
        self.1
    }
    fn messages_sent(&self) -> u64 {
        0
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut script = VecDeque::new();
    // Messages are u16-length-prefixed slices of the input.
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        script.push_back(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    let mode = match mode % 5 {
        0 => PsiMode::Reveal { to: RevealTo::Both },
        1 => PsiMode::Reveal { to: RevealTo::Me },
        2 => PsiMode::Reveal { to: RevealTo::Peer },
        3 => PsiMode::Cardinality,
        _ => PsiMode::JoinAlignment,
    };
    let keys = [
        PsiKey::Int(1),
        PsiKey::Text("a".into()),
        PsiKey::Null,
        PsiKey::Int(1),
    ];
    let mut t = Scripted(script, 0);
    let _ = psi(&mut t, 1, &keys, mode, &mut rand::rngs::OsRng);
});
