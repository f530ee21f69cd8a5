//! Sender-key messages from untrusted bytes, opened by a member holding the sender's chain:
//! arbitrary bytes, and genuine messages with bytes changed. Never panics; a refused message
//! leaves the member's chains and clock as they were (the genuine next message still
//! opens); and held-chain exports and envelope payloads decode without panicking.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

use group::{identity, T0};
use libfuzzer_sys::fuzz_target;
use splitsafe::crypto::{
    ChainConfig, ChainMessage, Keyring, KeyringConfig, Payload, SenderKeys, SenderPolicy,
};
use splitsafe::group::{Replica, ReplicaConfig};
use std::sync::OnceLock;
use zeroize::Zeroizing;

const GRACE: u64 = 24 * 60 * 60 * 1000;
const NOW: u64 = T0 + 100;

struct Fixture {
    bob_replica: Replica,
    /// Bob's chains, holding Alice's chain at index 0.
    held: Zeroizing<Vec<u8>>,
    alice: splitsafe::keys::MemberId,
    genuine: Vec<ChainMessage>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng: rand_chacha::ChaCha20Rng = rand_core::SeedableRng::from_seed([7; 32]);
        let config = KeyringConfig::default();
        let mut alice = Keyring::new(identity(0), config, &mut rng, T0);
        let mut bob = Keyring::new(identity(1), config, &mut rng, T0);
        let (mut replica, genesis) = Replica::create(
            alice.identity(),
            alice.bundle(),
            [0; 16],
            ReplicaConfig::default(),
            T0,
        )
        .unwrap();
        replica.add(alice.identity(), bob.bundle(), T0 + 1).unwrap();
        let mut bob_replica = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
        bob_replica.ingest_batch(replica.ops().cloned().collect(), T0 + 2);
        let mut keys = SenderKeys::new(replica.group());
        let chains = ChainConfig::default();
        let genuine: Vec<_> = (0..3)
            .map(|i| {
                keys.seal(&mut alice, &mut replica, T0 + 3, &[i; 40], chains, &mut rng)
                    .unwrap()
            })
            .collect();
        let handoff = genuine[0].handoff.clone().unwrap();
        let opened = bob.open(&handoff, &mut bob_replica, T0 + 4).unwrap();
        let Ok(Payload::Chain(chain)) = Payload::from_bytes(&opened.plaintext) else {
            panic!("a handoff")
        };
        let mut held = SenderKeys::new(replica.group());
        held.install(&opened, handoff.header.view, &chain, chains, T0 + 4)
            .unwrap();
        let alice_id = alice.identity().id();
        Fixture {
            bob_replica,
            held: held.export_held(&alice_id).unwrap(),
            alice: alice_id,
            genuine: genuine.into_iter().map(|s| s.message).collect(),
        }
    })
}

fn held(f: &Fixture) -> SenderKeys {
    let group = f.bob_replica.group();
    SenderKeys::import(group, [(f.alice, f.held.as_slice())]).unwrap()
}

fuzz_target!(|bytes: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = bytes.split_first() else {
        return;
    };
    let message = match mode % 4 {
        // Arbitrary bytes as a chain message.
        0 => ChainMessage::from_cbor(rest, 1 << 16).ok(),
        // A genuine message with bytes changed: (position, xor) pairs over its CBOR.
        1 => {
            let which = rest.first().copied().unwrap_or(0) as usize % f.genuine.len();
            let mut cbor = f.genuine[which].to_cbor();
            for pair in rest.get(1..).unwrap_or_default().chunks_exact(3) {
                let at = usize::from(u16::from_be_bytes([pair[0], pair[1]])) % cbor.len();
                cbor[at] ^= pair[2];
            }
            ChainMessage::from_cbor(&cbor, 1 << 16).ok()
        }
        2 => {
            let group = f.bob_replica.group();
            let _ = SenderKeys::import(group, [(f.alice, rest)]);
            None
        }
        _ => {
            let _ = Payload::from_bytes(rest);
            None
        }
    };
    let Some(message) = message else {
        return;
    };
    let mut keys = held(f);
    let mut replica = f.bob_replica.clone();
    let policy = SenderPolicy::default();
    match keys.open(&mut replica, policy, &message, NOW, GRACE) {
        Ok(opened) => {
            // Only a genuine message opens.
            assert!(f.genuine.contains(&message));
            assert_eq!(opened.sender, f.alice);
        }
        Err(_) => {
            assert_eq!(replica.clock().last(), f.bob_replica.clock().last());
            for genuine in &f.genuine {
                let opened = keys
                    .open(&mut replica, policy, genuine, NOW, GRACE)
                    .expect("state unchanged");
                assert_eq!(opened.plaintext, vec![genuine.header.index as u8; 40]);
            }
        }
    }
});
