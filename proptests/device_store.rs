//! The SQLite store as a thief and a second process see it: one process at a time has a
//! store open (a second `open` fails with a typed error), and key material a commit erased
//! is in no file of the store afterwards (main file, write-ahead log, shared memory, free
//! pages), even when the process is killed right after the erasure.

use crate::support;

use rand_core::Rng as _;
use splitsafe::device::{
    Device, DeviceConfig, DeviceError, MemoryStore, Message, MessageMode, SqliteStore, StoreError,
};
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use support::crypto::{rng, Rng};
use support::group::{identity, T0};
use support::process::{spawn_child, wait_for_line, TempDir};

const DB: &str = "SPLITSAFE_STORE_DB";
const DAY: u64 = 24 * 60 * 60 * 1000;

fn peek<const N: usize>(rng: &Rng) -> [u8; N] {
    let mut bytes = [0; N];
    rng.clone().fill_bytes(&mut bytes);
    bytes
}

/// Every file of the store at `db` (the main file and whatever SQLite keeps beside it).
fn store_files(db: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = db.parent().unwrap();
    let name = db.file_name().unwrap().to_str().unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(name)
        })
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect()
}

/// The files of the store at `db` that hold `secret`.
fn files_holding(db: &Path, secret: &[u8; 32]) -> Vec<String> {
    store_files(db)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(32).any(|w| w == secret))
        .map(|(name, _)| name)
        .collect()
}

/// The child: opens the device at `DB`, says `open`, and holds it until its stdin closes.
#[test]
#[ignore = "run by a_second_process_cannot_open_a_store_in_use in a child process"]
fn holding_child() {
    let Ok(path) = std::env::var(DB) else { return };
    let device = Device::open(SqliteStore::open(&path).unwrap(), DeviceConfig::default()).unwrap();
    println!("open");
    let _ = std::io::stdin().lock().lines().next();
    drop(device);
}

#[test]
fn a_second_process_cannot_open_a_store_in_use() {
    let dir = TempDir::new("store-lock");
    let db = dir.0.join("alice.db");
    let mut r = rng(1);
    let config = DeviceConfig::default();
    let alice = Device::create(
        SqliteStore::open(&db).unwrap(),
        identity(0),
        config,
        &mut r,
        T0,
    )
    .unwrap();
    // In this process, a second handle is refused while the first is open.
    assert!(matches!(SqliteStore::open(&db), Err(StoreError::Locked)));
    drop(alice);

    let mut child = spawn_child(
        "device_store::holding_child",
        &[(DB, db.display().to_string())],
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    wait_for_line(&mut lines, "open");
    let refused = SqliteStore::open(&db).map(|store| Device::open(store, config));
    assert!(
        matches!(refused, Err(StoreError::Locked)),
        "a second process opened a store in use"
    );
    let error = DeviceError::from(StoreError::Locked).to_string();
    assert!(error.contains("open elsewhere"), "{error}");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // Closed there, it opens here.
    let alice = Device::open(SqliteStore::open(&db).unwrap(), config).unwrap();
    assert_eq!(alice.id(), identity(0).id());
}

/// Bob, on SQLite at `db`, reads Alice's envelope, rotates and erases his first key after
/// the grace period; then reads six messages of Carol's sender chain. Returns his first
/// X25519 secret and Carol's chain keys at indices 0 to 6 (Bob has used 0 to 5), and Bob,
/// still open (a closed store has no log left to look at).
fn erase_keys(db: &Path) -> ([u8; 32], Vec<[u8; 32]>, Device<SqliteStore>) {
    let mut r = rng(2);
    let pairwise = DeviceConfig {
        messages: MessageMode::Pairwise,
        ..DeviceConfig::default()
    };
    let mut alice =
        Device::create(MemoryStore::default(), identity(0), pairwise, &mut r, T0).unwrap();
    let first_secret: [u8; 32] = peek(&r);
    let mut bob = Device::create(
        SqliteStore::open(db).unwrap(),
        identity(1),
        pairwise,
        &mut r,
        T0,
    )
    .unwrap();
    let group = alice.create_group(&mut r, T0).unwrap();
    let invitation = alice.invite(group, bob.bundle(), T0 + 1).unwrap();
    support::device::join(&mut bob, &invitation.welcome, T0 + 2);
    let sealed = alice.send(group, b"before", &mut r, T0 + 3).unwrap();
    assert_eq!(bob.receive(&sealed.to_bytes(), T0 + 4).unwrap().len(), 1);
    for published in bob.rotate(&mut r, T0 + 5).unwrap() {
        alice.receive(&published.to_bytes(), T0 + 6).unwrap();
    }
    bob.tick(T0 + 5 + DAY + 1).unwrap();
    assert_eq!(
        bob.keyring()
            .export()
            .windows(32)
            .filter(|w| *w == first_secret)
            .count(),
        0
    );

    // Carol's chain: a new chain draws its id (16 bytes), its key (32), then its signing key.
    let mut carol =
        Device::create(MemoryStore::default(), identity(2), pairwise, &mut r, T0).unwrap();
    let now = T0 + 2 * DAY;
    let invitation = alice.invite(group, carol.bundle(), now).unwrap();
    support::device::join(&mut carol, &invitation.welcome, now + 1);
    bob.receive(&invitation.add.to_bytes(), now + 1).unwrap();
    carol.set_mode(group, MessageMode::SenderKeys).unwrap();
    let drawn: [u8; 48] = peek(&r);
    let mut keys = vec![<[u8; 32]>::try_from(&drawn[16..]).unwrap()];
    for _ in 0..6 {
        let last = keys.last().unwrap();
        keys.push(*blake3::keyed_hash(last, b"splitsafe v1 chain step").as_bytes());
    }
    for i in 0..6 {
        let sent = carol.send(group, b"chained", &mut r, now + 10 + i).unwrap();
        assert!(matches!(sent.message, Message::Chain(_)));
        let events = bob.receive(&sent.to_bytes(), now + 20 + i).unwrap();
        assert!(events
            .iter()
            .any(|e| matches!(e, splitsafe::device::Event::Message(_))));
    }
    (first_secret, keys, bob)
}

fn assert_erased(db: &Path, first_secret: &[u8; 32], chain_keys: &[[u8; 32]]) {
    assert_eq!(
        files_holding(db, first_secret),
        Vec::<String>::new(),
        "the erased secret"
    );
    for (index, key) in chain_keys[..6].iter().enumerate() {
        assert_eq!(
            files_holding(db, key),
            Vec::<String>::new(),
            "the used chain key of index {index}"
        );
    }
    // The current chain key is Bob's to keep: the scan does find what is there.
    assert!(!files_holding(db, &chain_keys[6]).is_empty());
}

#[test]
fn erased_keys_are_in_no_file_of_the_store() {
    let dir = TempDir::new("store-erasure");
    let db = dir.0.join("bob.db");
    let (first_secret, chain_keys, bob) = erase_keys(&db);
    // As a thief copies them while the app runs.
    assert_erased(&db, &first_secret, &chain_keys);
    drop(bob);
    assert_erased(&db, &first_secret, &chain_keys);
}

/// The child: does [`erase_keys`] on `DB`, says `erased` with the keys, and waits to be killed.
#[test]
#[ignore = "run by erased_keys_are_in_no_file_after_a_kill in a child process"]
fn erasing_child() {
    let Ok(path) = std::env::var(DB) else { return };
    let (first_secret, chain_keys, _bob) = erase_keys(Path::new(&path));
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    println!("secret {}", hex(&first_secret));
    println!(
        "keys {}",
        chain_keys.iter().map(|k| hex(k)).collect::<String>()
    );
    println!("erased");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}

#[test]
fn erased_keys_are_in_no_file_after_a_kill() {
    let dir = TempDir::new("store-erasure-kill");
    let db = dir.0.join("bob.db");
    let mut child = spawn_child(
        "device_store::erasing_child",
        &[(DB, db.display().to_string())],
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "erased" {
            break;
        }
        // The test harness may print its own words before the child's on a line.
        for kind in ["secret", "keys"] {
            if let Some(at) = line.find(&format!("{kind} ")) {
                said.push((kind.to_string(), line[at + kind.len() + 1..].to_string()));
            }
        }
    }
    child.kill().unwrap(); // SIGKILL: no clean close
    child.wait().unwrap();
    let unhex = |text: &str| -> Vec<u8> {
        (0..text.len() / 2)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    };
    let said = |what: &str| &said.iter().find(|(kind, _)| kind == what).unwrap().1;
    let (secret, keys) = (said("secret"), said("keys"));
    let first_secret: [u8; 32] = unhex(secret).try_into().unwrap();
    let chain_keys: Vec<[u8; 32]> = unhex(keys)
        .chunks(32)
        .map(|k| k.try_into().unwrap())
        .collect();
    // The files as the kill left them, before any reopening tidies them.
    assert_erased(&db, &first_secret, &chain_keys);
}

/// Pages of the file: (all, free). Read with the store closed.
fn pages(db: &Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let count = |pragma: &str| -> i64 {
        conn.pragma_query_value(None, pragma, |row| row.get(0))
            .unwrap()
    };
    (count("page_count"), count("freelist_count"))
}

/// Accepting an invitation deletes the welcome kept until then, a copy of the whole log: the
/// file gives those pages back at once (they used to stay as free pages, 40% of the file),
/// and a file made before this rule is compacted once when opened.
#[test]
fn a_store_gives_freed_pages_back() {
    let dir = TempDir::new("free-pages");
    let db = dir.0.join("bob.db");
    let mut r = rng(3);
    let config = DeviceConfig::default();
    let mut alice =
        Device::create(MemoryStore::default(), identity(0), config, &mut r, T0).unwrap();
    let group = alice.create_group(&mut r, T0).unwrap();
    for i in 2..200u8 {
        let keyring = splitsafe::crypto::Keyring::new(
            identity(i),
            splitsafe::crypto::KeyringConfig::default(),
            &mut r,
            T0,
        );
        alice.invite(group, keyring.bundle(), T0 + 1).unwrap();
    }
    let mut bob = Device::create(
        SqliteStore::open(&db).unwrap(),
        identity(1),
        config,
        &mut r,
        T0,
    )
    .unwrap();
    let invitation = alice.invite(group, bob.bundle(), T0 + 2).unwrap();
    support::device::join(&mut bob, &invitation.welcome, T0 + 3);
    assert_eq!(bob.view(group).unwrap().len(), 200);
    drop(bob);
    let (all, free) = pages(&db);
    assert_eq!(free, 0, "no free page is left in the file");
    let log: usize = alice
        .replica(group)
        .unwrap()
        .ops()
        .map(|op| op.to_cbor().len())
        .sum();
    let file = std::fs::metadata(&db).unwrap().len() as usize;
    assert_eq!(file, all as usize * 4096);
    assert!(
        file < 2 * log + 64 * 1024,
        "a file of {file} bytes for a log of {log}"
    );

    // A file as an earlier version left it: no auto-vacuum, and free pages.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA auto_vacuum = NONE; VACUUM;
             CREATE TABLE scratch (b BLOB); INSERT INTO scratch VALUES (zeroblob(200000));
             DROP TABLE scratch;",
        )
        .unwrap();
    }
    assert!(pages(&db).1 > 40, "the old file has free pages");
    let bob = Device::open(SqliteStore::open(&db).unwrap(), config).unwrap();
    assert_eq!(bob.view(group).unwrap().len(), 200);
    drop(bob);
    assert_eq!(pages(&db).1, 0, "opening compacted it");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mode: i64 = conn
        .pragma_query_value(None, "auto_vacuum", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, 1, "and it now gives pages back at every commit");
}
