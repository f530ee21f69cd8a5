//! No secret outlives its use in freed heap memory (review finding F8).
//!
//! A scanning global allocator looks at every block handed back to the allocator for the
//! bytes of known secrets: an X25519 secret, the pairwise keys derived from it, and the
//! secret that replaces it at rotation. Sealing, opening, rotating, erasing and finally
//! dropping the keyrings must free no block that still holds any of them. (This file is its
//! own test binary, with one test, because the allocator is global.)

mod support;

use rand_core::{Rng as _, SeedableRng};
use splitsafe::crypto::{Keyring, KeyringConfig, PairwiseKey, SealOptions};
use splitsafe::group::{Replica, ReplicaConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
use support::group::{identity, T0};

const NEEDLES: usize = 4;

struct Scanning;
static ARMED: AtomicBool = AtomicBool::new(false);
static NEEDLE_BYTES: [AtomicU8; 32 * NEEDLES] = [const { AtomicU8::new(0) }; 32 * NEEDLES];
static HITS: [AtomicUsize; NEEDLES] = [const { AtomicUsize::new(0) }; NEEDLES];

// SAFETY: every call is forwarded unchanged to the system allocator; `dealloc` only reads
// the block it is given, which is valid for `layout.size()` bytes until it is released.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if ARMED.load(Relaxed) && layout.size() >= 32 {
            let freed = unsafe { std::slice::from_raw_parts(block, layout.size()) };
            for (i, hits) in HITS.iter().enumerate() {
                let needle: [u8; 32] =
                    std::array::from_fn(|j| NEEDLE_BYTES[32 * i + j].load(Relaxed));
                if freed.windows(32).any(|w| w == needle) {
                    hits.fetch_add(1, Relaxed);
                }
            }
        }
        unsafe { System.dealloc(block, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

fn watch(i: usize, secret: &[u8; 32]) {
    for (j, byte) in secret.iter().enumerate() {
        NEEDLE_BYTES[32 * i + j].store(*byte, Relaxed);
    }
}

fn hits() -> [usize; NEEDLES] {
    std::array::from_fn(|i| HITS[i].swap(0, Relaxed))
}

/// The next 32 bytes `rng` will produce, without consuming them.
fn peek(rng: &rand_chacha::ChaCha20Rng) -> [u8; 32] {
    let mut bytes = [0; 32];
    rng.clone().fill_bytes(&mut bytes);
    bytes
}

#[test]
fn no_secret_survives_in_freed_heap_blocks() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let config = KeyringConfig::default();
    let first_secret = peek(&rng);
    let mut alice = Keyring::new(identity(0), config, &mut rng, T0);
    let mut bob = Keyring::new(identity(1), config, &mut rng, T0);
    let (mut at_alice, genesis) = Replica::create(
        alice.identity(),
        alice.bundle(),
        [0; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    at_alice
        .add(alice.identity(), bob.bundle(), T0 + 1)
        .unwrap();
    let mut at_bob = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    at_bob.ingest_batch(at_alice.ops().cloned().collect(), T0 + 2);
    {
        let secret = x25519_dalek::StaticSecret::from(first_secret);
        let (out, back) =
            PairwiseKey::between(&at_alice.group(), &secret, &bob.bundle().encryption_key).unwrap();
        watch(0, &first_secret);
        watch(1, out.as_bytes());
        watch(2, back.as_bytes());
    }
    ARMED.store(true, Relaxed);

    // Traffic in both directions fills and moves the pairwise caches.
    for i in 0..20u64 {
        let stamp = at_alice.stamp(T0 + 10 + i);
        let envelope = alice
            .seal(
                at_alice.view(),
                stamp,
                b"m",
                SealOptions::default(),
                &mut rng,
            )
            .unwrap();
        bob.open(&envelope, &mut at_bob, T0 + 10 + i).unwrap();
    }
    watch(3, &peek(&rng));
    alice.rotate(&mut rng, &mut at_alice, T0 + 1_000).unwrap();
    assert_eq!(hits(), [0; NEEDLES], "seal, open and rotate");

    assert_eq!(alice.erase_expired(T0 + 1_000 + config.grace_ms), 1);
    assert_eq!(hits(), [0; NEEDLES], "erasing the retired secret");

    drop((alice, bob));
    let at_end = hits();
    ARMED.store(false, Relaxed);
    assert_eq!(at_end, [0; NEEDLES], "dropping the keyrings");
}
