//! Crash safety of the SQLite store: a child process runs a write-heavy workload on a
//! device and reports each call once it returned (committed); the parent kills it with
//! SIGKILL at seeded random points, reopens the store each time and checks that every call
//! the child reported is there, and that each group's view is exactly the fold of the
//! operations stored for it, verified from scratch (nothing half-written). The child then
//! goes on from what was stored, so later rounds start from a store that was killed.

use crate::support;

use splitsafe::device::{Device, DeviceConfig, Message, SqliteStore, Store};
use splitsafe::group::{GroupId, OpId, Replica, ReplicaConfig, SignedOp};
use std::io::{BufRead, BufReader, Write as _};
use support::crypto::rng;
use support::group::{identity, T0};
use support::process::{spawn_child, TempDir};

const DB: &str = "SPLITSAFE_CRASH_DB";
const ROUND: &str = "SPLITSAFE_CRASH_ROUND";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    std::array::from_fn(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
}

/// The child: opens (or creates) the device, then acts until it is killed, printing
/// `committed <kind> <group> <id>` after each call returns (for a sent envelope, its stamp).
#[test]
#[ignore = "run by crash_safety_under_sigkill in a child process"]
fn crash_child() {
    let Ok(path) = std::env::var(DB) else { return };
    let round: u64 = std::env::var(ROUND).unwrap().parse().unwrap();
    let mut r = rng(round);
    let config = DeviceConfig::default();
    let store = SqliteStore::open(&path).unwrap();
    let mut device = match Device::open(store, config) {
        Ok(device) => device,
        Err(_) => Device::create(
            SqliteStore::open(&path).unwrap(),
            identity(0),
            config,
            &mut r,
            T0,
        )
        .unwrap(),
    };
    let existing = device.groups().next();
    let group = match existing {
        Some(group) => group,
        None => {
            let group = device.create_group(&mut r, T0).unwrap();
            println!("committed group {} -", hex(&group.0));
            group
        }
    };
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let now = T0 + 1_000 * (round * 100_000 + i);
        let (kind, id) = match i % 4 {
            0 | 2 => {
                let Message::Envelope(envelope) = device
                    .send(group, &i.to_be_bytes(), &mut r, now)
                    .unwrap()
                    .message
                else {
                    unreachable!()
                };
                ("envelope", envelope.header.stamp.as_raw().to_string())
            }
            1 => {
                let seed = blake3::hash(&[round.to_be_bytes(), i.to_be_bytes()].concat());
                let newcomer = splitsafe::keys::Identity::from_secret_bytes(*seed.as_bytes());
                let bundle = newcomer.bundle(
                    support::group::enc_key(((round * 7 + i) % 250) as u8 + 1),
                    splitsafe::clock::Timestamp::from_physical(now),
                );
                let Message::Operations(ops) =
                    device.invite(group, bundle, now).unwrap().add.message
                else {
                    unreachable!()
                };
                ("op", hex(&ops[0].id().0))
            }
            _ => {
                let published = device.rotate(&mut r, now).unwrap();
                let Message::Operations(ops) = &published[0].message else {
                    unreachable!()
                };
                ("op", hex(&ops[0].id().0))
            }
        };
        writeln!(out, "committed {kind} {} {id}", hex(&group.0)).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn crash_safety_under_sigkill() {
    let dir = TempDir::new("crash");
    let path = dir.0.join("device.db");
    let mut committed: Vec<(String, GroupId, String)> = Vec::new();
    let mut kills = 0;
    for round in 0..8u64 {
        let mut child = spawn_child(
            "device_crash::crash_child",
            &[(DB, path.display().to_string()), (ROUND, round.to_string())],
        );
        // Seeded: kill after 3 to 40 reported calls, mid-way through the next one.
        let wait_for = 3 + (round * 2_654_435_761 % 38) as usize;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen < wait_for {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(rest) = line.strip_prefix("committed ") {
                let parts: Vec<&str> = rest.split(' ').collect();
                committed.push((
                    parts[0].to_string(),
                    GroupId(unhex(parts[1])),
                    parts[2].to_string(),
                ));
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        check(&path, &committed);
    }
    assert_eq!(kills, 8);
    assert!(
        committed.len() > 40,
        "the child committed {} calls",
        committed.len()
    );
}

/// Every reported call is in the store, and each group's view is the fold of its stored
/// operations, verified from scratch.
fn check(path: &std::path::Path, committed: &[(String, GroupId, String)]) {
    let mut store = SqliteStore::open(path).unwrap();
    let stored = store.load().unwrap().expect("the device was created");
    let device = Device::open(store, DeviceConfig::default()).unwrap();
    for (kind, group, id) in committed {
        let replica = device.replica(*group).expect("the group is stored");
        match kind.as_str() {
            "group" => {}
            // A send commits its stamp to the group's clock.
            "envelope" => assert!(
                replica.clock().last().as_raw() >= id.parse::<u64>().unwrap(),
                "the clock of a sent envelope was lost"
            ),
            _ => assert!(
                replica.is_effective(&OpId(unhex(id))).is_some(),
                "op {id} lost"
            ),
        }
    }
    for (group, stored_group) in &stored.groups {
        let ops: Vec<SignedOp> = stored_group
            .ops
            .values()
            .map(|(_, bytes)| SignedOp::from_stored(bytes).unwrap())
            .collect();
        let genesis = ops.iter().find(|op| op.id().0 == group.0).unwrap();
        let mut fold = Replica::join(genesis, ReplicaConfig::default(), T0).unwrap();
        let report = fold.ingest_batch(ops, T0 + 1_000_000_000_000);
        assert!(
            report.results.iter().all(Result::is_ok),
            "a stored op is refused"
        );
        assert_eq!(fold.view(), device.view(*group).unwrap());
    }
}
