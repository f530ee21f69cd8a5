//! Footprint of a group as it grows: 1,000 and 10,000 operations (and 100,000 with
//! `--full`) of a realistic mix (60% adds, 12% removes, 8% re-adds, 20% rotations by the
//! members themselves; the owner and 10 admins add and remove). For each size it prints, from
//! a counting allocator and the clock of this machine:
//!
//! * the CBOR of an operation; the time to ingest the whole log in one batch (signature
//!   bound), and the live heap of the `Replica` holding it, per op;
//! * the live heap of a `Device` on SQLite holding the group, per op; the time to reopen it;
//!   the store's file size per op; the time it takes to receive one more operation, alone
//!   and once it knows a peer holds what it holds (then it writes its state of the peer
//!   again);
//! * the time to make and ingest one more add and then read the view's digest (the view
//!   after one change; the median of nine);
//! * the sync message a device sends a device that holds the same operations (its digest
//!   only), beside the whole summary it used to carry; and, for devices meeting for the
//!   first time that each hold rotations by d = 1, 10, 100 members the other lacks, the
//!   messages and bytes (besides the operations) until both fall silent, and the larger
//!   of the two peer states they then store;
//! * `Replica::load` of a snapshot: its peak heap over the live heap it leaves.
//!
//! Run: `cargo bench --bench footprint` (`-- --full` for 100,000 ops; minutes).

use rand_chacha::ChaCha20Rng;
use splitsafe::clock::Timestamp;
use splitsafe::device::{Device, DeviceConfig, Message, SqliteStore, Store, Welcome};
use splitsafe::group::{Replica, ReplicaConfig, SignedOp};
use splitsafe::keys::{EncryptionKey, Identity};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

const T0: u64 = 1_795_694_400_000;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(block, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn identity(i: u32) -> Identity {
    Identity::from_secret_bytes(*blake3::hash(&i.to_be_bytes()).as_bytes())
}

/// 256 valid X25519 public keys, reused across members (the engine does not care).
fn keys() -> Vec<EncryptionKey> {
    (0..=255u8)
        .map(|k| {
            let secret = x25519_dalek::StaticSecret::from([k.max(1); 32]);
            EncryptionKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
        })
        .collect()
}

/// The genesis and `n` operations of the mix, as their authors signed them.
fn history(n: u32) -> (SignedOp, Vec<SignedOp>) {
    let keys = keys();
    let owner = identity(0);
    let bundle = |who: &Identity, i: u32, at: u64| {
        who.bundle(keys[(i % 256) as usize], Timestamp::from_physical(at))
    };
    let (mut replica, genesis) = Replica::create(
        &owner,
        bundle(&owner, 0, T0),
        [0; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    let mut members: Vec<u32> = Vec::new();
    let mut removed: Vec<u32> = Vec::new();
    let mut ops = Vec::with_capacity(n as usize);
    let mut next = 1u32;
    let mut now = T0;
    // Ten admins first.
    for _ in 0..10 {
        now += 1;
        let admin = identity(next);
        ops.extend(
            replica
                .add(&owner, bundle(&admin, next, now), now)
                .map(|r| r.0),
        );
        now += 1;
        ops.extend(replica.promote(&owner, admin.id(), now).map(|r| r.0));
        next += 1;
    }
    let mut i = 0u32;
    while (ops.len() as u32) < n {
        i += 1;
        now += 1;
        let author = identity(i % 11); // the owner or an admin
        let op = match i % 25 {
            0..=14 => {
                let member = identity(next);
                members.push(next);
                next += 1;
                replica.add(&author, bundle(&member, next, now), now)
            }
            15..=17 if !members.is_empty() => {
                let k = members.swap_remove((i as usize * 7919) % members.len());
                removed.push(k);
                replica.remove(&author, identity(k).id(), now)
            }
            18..=19 if !removed.is_empty() => {
                let k = removed.swap_remove((i as usize * 104_729) % removed.len());
                members.push(k);
                replica.add(&author, bundle(&identity(k), i, now), now)
            }
            _ if !members.is_empty() => {
                let k = members[(i as usize * 31) % members.len()];
                let member = identity(k);
                replica.rotate(&member, bundle(&member, i, now), now)
            }
            _ => continue,
        };
        ops.extend(op.map(|r| r.0));
    }
    (genesis, ops)
}

fn live() -> usize {
    LIVE.load(Relaxed)
}

fn per_op(bytes: usize, n: usize) -> usize {
    bytes / n.max(1)
}

fn measure(n: u32, dir: &std::path::Path) {
    let (genesis, ops) = history(n);
    let count = ops.len();
    let cbor: usize = ops.iter().map(|op| op.to_cbor().len()).sum();
    let now = T0 + 10_000_000;

    // A replica holding the log. The batch is allocated after `before`: it is freed inside
    // `ingest_batch`, and counted before it, its release would hide as much of the replica.
    let before = live();
    let copy = ops.clone();
    let started = Instant::now();
    let mut replica = Replica::join(&genesis, ReplicaConfig::default(), now).unwrap();
    replica.ingest_batch(copy, now);
    let ingest = started.elapsed();
    let replica_heap = live().saturating_sub(before);

    // One more change, then the view's digest: the median of 9, after one to warm up (the
    // first change after a batch pays once for what the batch left to do).
    let owner = identity(0);
    let mut times: Vec<_> = (0..10u32)
        .map(|k| {
            let bundle = identity(9_999_999 - k).bundle(keys()[7], Timestamp::from_physical(now));
            let started = Instant::now();
            let _ = replica.add(&owner, bundle, now + 1);
            std::hint::black_box(replica.view().digest());
            started.elapsed()
        })
        .skip(1)
        .collect();
    times.sort();
    let one_change = times[times.len() / 2];

    // The whole summary, which sync messages between replicas in sync used to carry.
    let summary = replica.summary().to_cbor().len();

    // Rotations by distinct members, for two devices to differ on: 111 for each side.
    let mut extra = (11..).filter_map(|k: u32| {
        let member = identity(k);
        let bundle = member.bundle(keys()[3], Timestamp::from_physical(now + 2));
        replica.rotate(&member, bundle, now + 2).ok().map(|r| r.0)
    });
    let one_more: Vec<SignedOp> = extra.by_ref().take(3).collect();
    let extra: Vec<[Vec<SignedOp>; 2]> = [1, 10, 100]
        .map(|d| [0, 1].map(|_| extra.by_ref().take(d).collect()))
        .into();

    // A snapshot loaded: peak heap over the live heap it leaves.
    let saved = replica.save();
    let before = live();
    PEAK.store(before, Relaxed);
    let loaded = Replica::load(&saved, ReplicaConfig::default(), usize::MAX, now).unwrap();
    let load_live = live().saturating_sub(before);
    let load_peak = PEAK.load(Relaxed).saturating_sub(before);
    drop(loaded);
    drop(replica);

    // A device on SQLite holding the group (the first admin, added first).
    let path = dir.join(format!("footprint-{n}.db"));
    let _ = std::fs::remove_file(&path);
    let config = DeviceConfig {
        max_message_len: usize::MAX,
        max_invitation_bytes: usize::MAX,
        ..DeviceConfig::default()
    };
    let mut rng: ChaCha20Rng = rand_core::SeedableRng::seed_from_u64(1);
    let mut all = vec![genesis.clone()];
    all.extend(ops.iter().cloned());
    let group = replica_group(&genesis);
    let welcome = Message::Welcome(Welcome { group, ops: all }).to_bytes();
    let joining = Joining {
        config,
        welcome: &welcome,
        group,
        now,
    };
    let mut device = joining.device(SqliteStore::open(&path).unwrap(), identity(1), &mut rng);
    // Another admin's device holding the same operations: what sync says between them.
    let memory = splitsafe::device::MemoryStore::default;
    let mut peer = joining.device(memory(), identity(2), &mut rng);
    let in_sync = device
        .sync_message(group, peer.id())
        .unwrap()
        .map_or(0, |m| m.to_bytes().len());
    drop(device);
    // Two devices meeting for the first time, each holding rotations by d members the other
    // lacks: what sync costs besides the operations, until both fall silent.
    let differing: Vec<String> = extra
        .into_iter()
        .enumerate()
        .map(|(i, sides)| {
            let d = sides[0].len();
            let [mut a, mut b] = [0, 1]
                .map(|side| joining.device(memory(), identity(3 + 2 * i as u32 + side), &mut rng));
            for (device, ops) in [&mut a, &mut b].into_iter().zip(sides) {
                device
                    .receive(&Message::Operations(ops).to_bytes(), now + 3)
                    .unwrap();
            }
            let (messages, bytes) = sync_until_silent(&mut a, &mut b, group, now + 4);
            // What each then stores of the other: the peer state written at every message.
            let stored: usize = [a, b]
                .into_iter()
                .filter_map(|device| device.into_store().load().ok().flatten())
                .flat_map(|stored| stored.peers.into_values())
                .map(|state| state.len())
                .max()
                .unwrap_or(0);
            format!("d={d}: {messages} msgs {bytes} B (peer state stored {stored} B)")
        })
        .collect();
    let file = std::fs::metadata(&path)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let before = live();
    let started = Instant::now();
    let device = Device::open(SqliteStore::open(&path).unwrap(), config).unwrap();
    let open = started.elapsed();
    let device_heap = live().saturating_sub(before);
    assert!(device.groups().count() == 1);
    // Once it knows a peer holds what it holds, one more operation arrives: with it, the
    // device writes again its state of the peer (stored as a difference from its summary,
    // which the operation changes).
    let mut device = device;
    let receive = |device: &mut Device<SqliteStore>, op: &SignedOp| {
        let started = Instant::now();
        device
            .receive(&Message::Operations(vec![op.clone()]).to_bytes(), now + 3)
            .unwrap();
        started.elapsed()
    };
    // The first call after reopening prepares SQLite's statements: not counted.
    receive(&mut device, &one_more[0]);
    let no_peer = receive(&mut device, &one_more[1]);
    sync_until_silent(&mut device, &mut peer, group, now + 3);
    let one_op = receive(&mut device, &one_more[2]);
    drop((device, peer));
    let _ = std::fs::remove_file(&path);

    println!(
        "{count:>7} ops | op CBOR {:>4} B | batch ingest {:>8.1?} | Replica {:>5} B/op | Device on \
         SQLite {:>5} B/op, open {:>8.1?}, file {:>4} B/op, one op received {:>7.1?} ({:>7.1?} with a peer in sync) | one more add and view digest {:>9.1?} | in-sync sync \
         message {:>3} B (whole summary {:>9} B) | first sync, each holding ops of d authors the other \
         lacks (bytes besides the ops): {} | load peak {:.2}x live",
        per_op(cbor, count),
        ingest,
        per_op(replica_heap, count),
        per_op(device_heap, count),
        open,
        per_op(file, count),
        no_peer,
        one_op,
        one_change,
        in_sync,
        summary,
        differing.join(", "),
        load_peak as f64 / load_live.max(1) as f64,
    );
}

/// Syncs `a` and `b` until both fall silent: the messages sent, and their bytes besides the
/// operations they carry.
fn sync_until_silent<S: splitsafe::device::Store, T: splitsafe::device::Store>(
    a: &mut Device<S>,
    b: &mut Device<T>,
    group: splitsafe::group::GroupId,
    now: u64,
) -> (usize, usize) {
    let (mut messages, mut bytes) = (0, 0);
    loop {
        let to_b = a.sync_message(group, b.id()).unwrap();
        let to_a = b.sync_message(group, a.id()).unwrap();
        if to_a.is_none() && to_b.is_none() {
            return (messages, bytes);
        }
        assert!(messages < 100, "sync did not fall silent");
        for (message, a_to_b) in [(to_b, true), (to_a, false)] {
            let Some(message) = message else { continue };
            let Message::Sync(mut sync) = message.clone() else {
                panic!("a sync message")
            };
            sync.ops.clear();
            messages += 1;
            bytes += Message::Sync(sync).to_bytes().len();
            if a_to_b {
                b.receive(&message.to_bytes(), now).unwrap();
            } else {
                a.receive(&message.to_bytes(), now).unwrap();
            }
        }
    }
}

/// What a device needs to join the bench's group: its settings, and the welcome.
struct Joining<'a> {
    config: DeviceConfig,
    welcome: &'a [u8],
    group: splitsafe::group::GroupId,
    now: u64,
}

impl Joining<'_> {
    /// `who`'s device on `store`, welcomed into the group.
    fn device<S: Store>(&self, store: S, who: Identity, rng: &mut ChaCha20Rng) -> Device<S> {
        let mut device = Device::create(store, who, self.config, rng, T0).unwrap();
        device.receive(self.welcome, self.now).unwrap();
        device.accept(self.group, self.now).unwrap();
        device
    }
}

fn replica_group(genesis: &SignedOp) -> splitsafe::group::GroupId {
    splitsafe::group::GroupId(genesis.id().0)
}

fn main() {
    // `cargo bench` passes `--bench`; other arguments are ours.
    let full = std::env::args().any(|a| a == "--full");
    let dir = std::env::temp_dir().join(format!("splitsafe-footprint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sizes: &[u32] = if full {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000, 10_000]
    };
    for &n in sizes {
        measure(n, &dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
