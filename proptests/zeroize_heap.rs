//! No secret outlives its use in freed heap memory (review finding F8).
//!
//! A scanning global allocator looks at every block handed back to the allocator for the
//! bytes of known secrets: an X25519 secret, the pairwise keys derived from it, and the
//! secret that replaces it at rotation, and the identity's signing secret. Sealing, opening,
//! rotating, exporting and importing, erasing and finally dropping the keyrings must free no
//! block that still holds any of them. Then the same for sender keys, through two devices:
//! a chain key, the next one, a skipped message key and the chain's signing secret, through
//! handing out, sealing, opening out of order, a restart from the store, and drop. (This file
//! is its own test binary, with one test, because the allocator is global.)

mod support;

use rand_core::{Rng as _, SeedableRng};
use splitsafe::crypto::{Keyring, KeyringConfig, PairwiseKey, SealOptions};
use splitsafe::device::{Device as Member, DeviceConfig, MemoryStore, MessageMode};
use splitsafe::keys::Identity;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
use support::crypto::{world, Device};
use support::group::{identity, T0};

const NEEDLES: usize = 9;

struct Scanning;
static ARMED: AtomicBool = AtomicBool::new(false);
static NEEDLE_BYTES: [AtomicU8; 32 * NEEDLES] = [const { AtomicU8::new(0) }; 32 * NEEDLES];
/// Needles are kept XORed with this, so the scanner never holds one in clear.
const MASK: u8 = 0xA5;
static HITS: [AtomicUsize; NEEDLES] = [const { AtomicUsize::new(0) }; NEEDLES];
/// Bit i is set once needle i holds a secret: an unset needle is all zeros, which every
/// properly zeroized block matches (masked, all `MASK`).
static WATCHED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator (allocations zeroed); `dealloc`
// only reads the block it is given, which is valid for `layout.size()` bytes until it is
// released.
unsafe impl GlobalAlloc for Scanning {
    // Blocks are handed out zeroed: what a block held in an earlier life (freed before a
    // needle was watched) must not be taken, at its next free, for a secret it held now.
    // Parts of a block never written (spare capacity, an enum's padding) would otherwise
    // carry it.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if ARMED.load(Relaxed) && layout.size() >= 32 {
            let freed = unsafe { std::slice::from_raw_parts(block, layout.size()) };
            let watched = WATCHED.load(Relaxed);
            for (i, hits) in HITS.iter().enumerate() {
                if watched & (1 << i) == 0 {
                    continue;
                }
                // Compared masked, byte by byte: a needle built on this stack would be found
                // later, copied into some enum's padding.
                let needle = |j: usize| NEEDLE_BYTES[32 * i + j].load(Relaxed);
                let matches = |w: &[u8]| w.iter().enumerate().all(|(j, b)| b ^ MASK == needle(j));
                if freed.windows(32).any(matches) {
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
        NEEDLE_BYTES[32 * i + j].store(byte ^ MASK, Relaxed);
    }
    WATCHED.fetch_or(1 << i, Relaxed);
}

fn hits() -> [usize; NEEDLES] {
    std::array::from_fn(|i| HITS[i].swap(0, Relaxed))
}

/// The next `N` bytes `rng` will produce, without consuming them.
fn peek<const N: usize>(rng: &rand_chacha::ChaCha20Rng) -> [u8; N] {
    let mut bytes = [0; N];
    rng.clone().fill_bytes(&mut bytes);
    bytes
}

#[test]
fn no_secret_survives_in_freed_heap_blocks() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let config = KeyringConfig::default();
    // `world` draws device 0's X25519 secret first: Alice's, watched below.
    let first_secret = peek(&rng);
    let (devices, _) = world(2, config, &mut rng);
    let [alice, bob, _outsider]: [Device; 3] = devices.try_into().ok().unwrap();
    let (mut alice, mut bob) = (alice, bob);
    {
        let secret = x25519_dalek::StaticSecret::from(first_secret);
        let peer = bob.keyring.bundle().encryption_key;
        let (out, back) = PairwiseKey::between(&alice.replica.group(), &secret, &peer).unwrap();
        watch(0, &first_secret);
        watch(1, out.as_bytes());
        watch(2, back.as_bytes());
        // `world`'s identities are `identity(i)`, whose secret is `[i + 1; 32]`.
        watch(4, &[1; 32]);
    }
    ARMED.store(true, Relaxed);

    // Alice seals, Bob opens: both fill and move their pairwise caches.
    for i in 0..20u64 {
        let now = T0 + 200 + i;
        let envelope = alice
            .keyring
            .seal(
                &mut alice.replica,
                now,
                b"m",
                SealOptions::default(),
                &mut rng,
            )
            .unwrap();
        bob.keyring.open(&envelope, &mut bob.replica, now).unwrap();
    }
    watch(3, &peek(&rng));
    alice
        .keyring
        .rotate(&mut rng, &mut alice.replica, T0 + 1_000)
        .unwrap();
    assert_eq!(hits(), [0; NEEDLES], "seal, open and rotate");

    let exported = alice.keyring.export();
    let imported = Keyring::import(&exported, config).unwrap();
    assert_eq!(imported.bundle(), alice.keyring.bundle());
    drop((exported, imported));
    let identity = alice.keyring.identity().export();
    drop(Identity::import(&identity).unwrap());
    drop(identity);
    assert_eq!(hits(), [0; NEEDLES], "export, import and drop");

    assert_eq!(alice.keyring.erase_expired(T0 + 1_000 + config.grace_ms), 1);
    assert_eq!(hits(), [0; NEEDLES], "erasing the retired secret");

    drop((alice.keyring, bob.keyring));
    assert_eq!(hits(), [0; NEEDLES], "dropping the keyrings");

    scrub_stack();
    sender_keys(&mut rng);
    ARMED.store(false, Relaxed);
}

/// Overwrites the stack below the caller with zeros. Secrets passed by value (an identity's
/// seed, say) leave copies in stack frames, which this test does not watch; but a small
/// enum variant moved into a heap buffer carries its padding along, stale stack bytes
/// included, and the scan would take those for a heap copy of the secret.
#[inline(never)]
fn scrub_stack() {
    std::hint::black_box([0u8; 256 * 1024]);
}

/// Carol sends to Dave in sender-key mode; Dave opens out of order and restarts.
fn sender_keys(rng: &mut rand_chacha::ChaCha20Rng) {
    let config = DeviceConfig::default();
    let mut carol = Member::create(MemoryStore::default(), identity(5), config, rng, T0).unwrap();
    let mut dave = Member::create(MemoryStore::default(), identity(6), config, rng, T0).unwrap();
    let group = carol.create_group(rng, T0).unwrap();
    let invitation = carol.invite(group, dave.bundle(), T0 + 1).unwrap();
    support::device::join(&mut dave, &invitation.welcome, T0 + 2);
    carol.set_mode(group, MessageMode::SenderKeys).unwrap();
    // A new chain draws its id (16 bytes), its key (32), then its signing secret (32).
    let drawn: [u8; 80] = peek(rng);
    let chain_key: [u8; 32] = drawn[16..48].try_into().unwrap();
    let next_key = *blake3::keyed_hash(&chain_key, b"splitsafe v1 chain step").as_bytes();
    let skipped = *blake3::keyed_hash(&next_key, b"splitsafe v1 chain message key").as_bytes();
    watch(5, &chain_key);
    watch(6, &next_key);
    watch(7, &skipped);
    watch(8, &drawn[48..80].try_into().unwrap());

    let sent: Vec<_> = (0..3u64)
        .map(|i| carol.send(group, b"chained", rng, T0 + 10 + i).unwrap())
        .collect();
    // Message 2 before 1: the key of 1 is kept as skipped, then used.
    for i in [0, 2, 1] {
        dave.receive(&sent[i].to_bytes(), T0 + 20).unwrap();
    }
    let mut dave = Member::open(dave.into_store(), config).unwrap();
    let more = carol.send(group, b"after", rng, T0 + 30).unwrap();
    dave.receive(&more.to_bytes(), T0 + 31).unwrap();
    assert_eq!(
        hits(),
        [0; NEEDLES],
        "sender keys: seal, open, skip, restart"
    );
    drop((carol, dave));
    assert_eq!(hits(), [0; NEEDLES], "sender keys: drop");
}
