//! What a device delivers to its application: every message at least once, across crashes
//! at any point of a receive-then-store loop, and never again once acknowledged; and a
//! judgment of a sender that does not depend on the order operations and messages arrive
//! in (a message read before its sender's removal arrived is judged again, and the new
//! judgment is delivered too, across restarts).

use crate::support;

use splitsafe::crypto::OpenError;
use splitsafe::device::{
    Delivery, Device, DeviceConfig, Event, MemoryStore, Message, MessageMode, Refusal, SqliteStore,
    Store,
};
use splitsafe::group::{GroupId, Standing};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use support::crypto::{rng, Rng};
use support::group::{identity, T0};
use support::process::{spawn_child, TempDir};

const DIR: &str = "SPLITSAFE_DELIVERY_DIR";
const STEPPED: &str = "SPLITSAFE_DELIVERY_STEPPED";
const MESSAGES: usize = 60;

fn pairwise() -> DeviceConfig {
    DeviceConfig {
        messages: MessageMode::Pairwise,
        ..DeviceConfig::default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The application's own log: one line per message it stored (`stored <id>`) and per
/// acknowledgement that returned (`acked <id>`), flushed as written.
fn app_log(dir: &Path) -> PathBuf {
    dir.join("app.log")
}

/// The child: Bob's messenger. It opens his store, stores whatever was delivered and not
/// acknowledged, then reads every mail file in turn, storing each message it is given and
/// acknowledging it. It says each line it logs on stdout too, so the parent can kill it at
/// any of them.
#[test]
#[ignore = "run by every_message_is_delivered_across_kills in a child process"]
fn messenger_child() {
    let Ok(dir) = std::env::var(DIR) else { return };
    let dir = Path::new(&dir);
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(app_log(dir))
        .unwrap();
    // Stepped, the child waits for a line on stdin after each of its own, so the parent's
    // kill lands exactly after the line it chose.
    let stepped = std::env::var_os(STEPPED).is_some();
    let mut go = std::io::stdin().lock().lines();
    let mut say = |line: String| {
        // One write per line: a kill never leaves half a line for the next run to append to.
        log.write_all(format!("{line}\n").as_bytes()).unwrap();
        println!("{line}");
        if stepped {
            let _ = go.next();
        }
    };
    let store = SqliteStore::open(dir.join("bob.db")).unwrap();
    let mut bob = Device::open(store, pairwise()).unwrap();
    let mut store_and_ack = |bob: &mut Device<SqliteStore>, id: splitsafe::crypto::EnvelopeId| {
        say(format!("stored {}", hex(&id.0)));
        bob.ack(id).unwrap();
        say(format!("acked {}", hex(&id.0)));
    };
    let owed: Vec<_> = bob.unacknowledged().map(Delivery::id).collect();
    for id in owed {
        store_and_ack(&mut bob, id);
    }
    for i in 0..MESSAGES {
        let mail = std::fs::read(dir.join(format!("mail-{i}"))).unwrap();
        for event in bob.receive(&mail, T0 + 1_000).unwrap() {
            if let Event::Message(received) = event {
                store_and_ack(&mut bob, received.id);
            }
        }
    }
    println!("done");
}

#[test]
fn every_message_is_delivered_across_kills() {
    let dir = TempDir::new("delivery");
    let mut r = rng(7);
    let mut alice =
        Device::create(MemoryStore::default(), identity(0), pairwise(), &mut r, T0).unwrap();
    let store = SqliteStore::open(dir.0.join("bob.db")).unwrap();
    let mut bob = Device::create(store, identity(1), pairwise(), &mut r, T0).unwrap();
    let group = alice.create_group(&mut r, T0).unwrap();
    let invitation = alice.invite(group, bob.bundle(), T0 + 1).unwrap();
    support::device::join(&mut bob, &invitation.welcome, T0 + 2);
    drop(bob);
    let mut sent = Vec::new();
    for i in 0..MESSAGES {
        let Message::Envelope(envelope) =
            alice.send(group, b"mail", &mut r, T0 + 10).unwrap().message
        else {
            unreachable!("pairwise")
        };
        std::fs::write(
            dir.0.join(format!("mail-{i}")),
            Message::Envelope(envelope.clone()).to_bytes(),
        )
        .unwrap();
        sent.push(hex(&envelope.id().0));
    }

    // Seeded kills, each after 1 to 20 lines of the child's, then one run to the end.
    let dir_env = [(DIR, dir.0.display().to_string())];
    let stepped = [dir_env[0].clone(), (STEPPED, "1".to_string())];
    for round in 0..10u64 {
        let mut child = spawn_child("device_delivery::messenger_child", &stepped);
        let mut stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let kill_after = 1 + usize::from(blake3::hash(&round.to_be_bytes()).as_bytes()[0] % 20);
        let mut done = false;
        // The child's own lines (the test harness prints some of its own, which wait for
        // nothing).
        let own = lines.map_while(Result::ok).filter(|line| {
            line.contains("stored ") || line.contains("acked ") || line.ends_with("done")
        });
        for (n, line) in own.enumerate() {
            done |= line.ends_with("done");
            if n + 1 == kill_after || done {
                break;
            }
            writeln!(stdin, "go").unwrap();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!done, "round {round} ran to the end before its kill");
    }
    let mut child = spawn_child("device_delivery::messenger_child", &dir_env);
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(child.wait().unwrap().success());
    assert!(lines.iter().any(|line| line.ends_with("done")));

    // Every message stored; none stored again once its acknowledgement returned.
    let log = std::fs::read_to_string(app_log(&dir.0)).unwrap();
    let mut acked: BTreeMap<&str, usize> = BTreeMap::new();
    let mut stored: BTreeMap<&str, usize> = BTreeMap::new();
    for line in log.lines() {
        let (what, id) = line.split_once(' ').unwrap();
        match what {
            "stored" => {
                assert!(
                    !acked.contains_key(id),
                    "{id} delivered after its acknowledgement"
                );
                *stored.entry(id).or_default() += 1;
            }
            _ => *acked.entry(id).or_default() += 1,
        }
    }
    for id in &sent {
        assert!(stored.contains_key(id.as_str()), "message {id} was lost");
    }
    assert_eq!(stored.len(), MESSAGES);
    let bob = Device::open(SqliteStore::open(dir.0.join("bob.db")).unwrap(), pairwise()).unwrap();
    assert_eq!(bob.unacknowledged().count(), 0);
}

/// Alice owns a group of Bob and Carol. Carol rotates her key (her chain's first operation),
/// and Bob hears of it; Alice does not, and removes Carol with a watermark below it. Carol
/// then sends. Returns Bob (before Carol's message and the removal), Carol's message and the
/// removal.
fn split_removal(r: &mut Rng) -> (Device<MemoryStore>, Message, Message, GroupId) {
    let mut alice = Device::create(MemoryStore::default(), identity(0), pairwise(), r, T0).unwrap();
    let mut bob = Device::create(MemoryStore::default(), identity(1), pairwise(), r, T0).unwrap();
    let mut carol = Device::create(MemoryStore::default(), identity(2), pairwise(), r, T0).unwrap();
    let group = alice.create_group(r, T0).unwrap();
    let to_bob = alice.invite(group, bob.bundle(), T0 + 1).unwrap();
    support::device::join(&mut bob, &to_bob.welcome, T0 + 2);
    let to_carol = alice.invite(group, carol.bundle(), T0 + 3).unwrap();
    support::device::join(&mut carol, &to_carol.welcome, T0 + 4);
    bob.receive(&to_carol.add.to_bytes(), T0 + 4).unwrap();
    for rotation in carol.rotate(r, T0 + 5).unwrap() {
        bob.receive(&rotation.to_bytes(), T0 + 6).unwrap();
    }
    let removal = alice.remove(group, identity(2).id(), T0 + 7).unwrap();
    let message = carol
        .send(group, b"from the other side", r, T0 + 8)
        .unwrap()
        .message;
    (bob, message, removal.message, group)
}

fn standing_of(events: &[Event]) -> Option<Standing> {
    events.iter().find_map(|event| match event {
        Event::Message(received) => Some(received.standing),
        Event::Refused(Refusal::Envelope {
            error: OpenError::SenderRefused { standing, .. },
            ..
        }) => Some(*standing),
        _ => None,
    })
}

#[test]
fn a_message_read_before_its_senders_removal_is_judged_again() {
    let mut r = rng(8);
    let (mut bob, message, removal, group) = split_removal(&mut r);

    // The removal first: Carol's message is judged beyond it.
    let mut other = Device::open(bob.store().clone(), pairwise()).unwrap();
    other.receive(&removal.to_bytes(), T0 + 9).unwrap();
    let removal_first = standing_of(&other.receive(&message.to_bytes(), T0 + 10).unwrap());
    assert!(matches!(removal_first, Some(Standing::Beyond { .. })));

    // The message first: read as a member's, then judged again when the removal arrives.
    let events = bob.receive(&message.to_bytes(), T0 + 9).unwrap();
    assert_eq!(standing_of(&events), Some(Standing::Member));
    let [Event::Message(received)] = &events[..] else {
        panic!("{events:?}")
    };
    let id = received.id;
    assert!(bob.ack(id).unwrap());
    let events = bob.receive(&removal.to_bytes(), T0 + 10).unwrap();
    let rejudged = events
        .iter()
        .find_map(|event| match event {
            Event::Rejudged(rejudged) => Some(*rejudged),
            _ => None,
        })
        .expect("the removal changes the standing of a message already read");
    assert_eq!(
        (
            rejudged.group,
            rejudged.id,
            rejudged.was,
            Some(rejudged.standing)
        ),
        (group, id, Standing::Member, removal_first)
    );
    // Kept across a restart until acknowledged, then gone.
    let mut bob = Device::open(bob.into_store(), pairwise()).unwrap();
    assert_eq!(
        bob.unacknowledged().cloned().collect::<Vec<_>>(),
        [Delivery::Rejudged(rejudged)]
    );
    assert!(bob.ack(id).unwrap());
    assert!(!bob.ack(id).unwrap());
    let bob = Device::open(bob.into_store(), pairwise()).unwrap();
    assert_eq!(bob.unacknowledged().count(), 0);
}

#[test]
fn an_unacknowledged_message_carries_its_new_standing() {
    let mut r = rng(9);
    let (mut bob, message, removal, _) = split_removal(&mut r);
    bob.receive(&message.to_bytes(), T0 + 9).unwrap();
    bob.receive(&removal.to_bytes(), T0 + 10).unwrap();
    let bob = Device::open(bob.into_store(), pairwise()).unwrap();
    let owed: Vec<_> = bob.unacknowledged().collect();
    assert!(
        matches!(&owed[..], [Delivery::Message(m)] if matches!(m.standing, Standing::Beyond { .. })),
        "{owed:?}"
    );
}

#[test]
fn outside_the_window_a_message_keeps_its_standing() {
    let mut r = rng(10);
    let (bob, message, removal, _) = split_removal(&mut r);
    let config = DeviceConfig {
        rejudge_window: 0,
        ..pairwise()
    };
    let mut bob = Device::open(bob.into_store(), config).unwrap();
    bob.receive(&message.to_bytes(), T0 + 9).unwrap();
    let events = bob.receive(&removal.to_bytes(), T0 + 10).unwrap();
    assert!(!events.iter().any(|e| matches!(e, Event::Rejudged(_))));
}

/// A store of any kind serves: the in-memory one keeps deliveries as SQLite does.
#[test]
fn deliveries_survive_reopening_either_store() {
    fn check<S: Store>(store: S, r: &mut Rng) {
        let mut alice =
            Device::create(MemoryStore::default(), identity(0), pairwise(), r, T0).unwrap();
        let mut bob = Device::create(store, identity(1), pairwise(), r, T0).unwrap();
        let group = alice.create_group(r, T0).unwrap();
        let invitation = alice.invite(group, bob.bundle(), T0 + 1).unwrap();
        support::device::join(&mut bob, &invitation.welcome, T0 + 2);
        let sealed = alice.send(group, b"kept", r, T0 + 3).unwrap();
        bob.receive(&sealed.to_bytes(), T0 + 4).unwrap();
        let mut bob = Device::open(bob.into_store(), pairwise()).unwrap();
        let owed: Vec<_> = bob.unacknowledged().cloned().collect();
        let [Delivery::Message(received)] = &owed[..] else {
            panic!("{owed:?}")
        };
        assert_eq!(received.plaintext, b"kept");
        // Read again: a duplicate, not a second delivery.
        let again = bob.receive(&sealed.to_bytes(), T0 + 5).unwrap();
        assert!(matches!(&again[..], [Event::Duplicate(_)]));
        assert!(bob.ack(received.id).unwrap());
        let bob = Device::open(bob.into_store(), pairwise()).unwrap();
        assert_eq!(bob.unacknowledged().count(), 0);
    }
    let mut r = rng(11);
    check(MemoryStore::default(), &mut r);
    check(SqliteStore::in_memory().unwrap(), &mut r);
}
