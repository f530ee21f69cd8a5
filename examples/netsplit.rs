//! A group keeps working through a netsplit and converges after it; a removed admin cannot
//! rewrite its history with backdated operations.
//!
//! Run: `cargo run` (this binary is the default) for the story, or with
//! `--devices N --partitions K --ops N --seed S` for a random run of N actions, and `--json`
//! for machine-readable output; `--sender-keys` sends in sender-key mode instead of pairwise
//! envelopes. The exit code is 0 exactly when the verdict is true.

use splitsafe::clock::Timestamp;
use splitsafe::group::{Body, Op, Replica, ReplicaConfig, Watermark};
use splitsafe::keys::{EncryptionKey, Identity};
use splitsafe::sim::{random_schedule, Action, MessageRecord, Outcome, Sim, SimConfig};
use std::collections::BTreeSet;
use std::process::ExitCode;

struct Args {
    devices: u8,
    partitions: u8,
    ops: Option<usize>,
    seed: u64,
    json: bool,
    sender_keys: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        devices: 8,
        partitions: 2,
        ops: None,
        seed: 1,
        json: false,
        sender_keys: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or(format!("{name} needs a value"))
                .and_then(|v| v.parse::<u64>().map_err(|e| format!("{name} {v}: {e}")))
        };
        match flag.as_str() {
            "--devices" => args.devices = value("--devices")?.clamp(2, 250) as u8,
            "--partitions" => args.partitions = value("--partitions")?.clamp(1, 16) as u8,
            "--ops" => args.ops = Some(value("--ops")? as usize),
            "--seed" => args.seed = value("--seed")?,
            "--json" => args.json = true,
            "--sender-keys" => args.sender_keys = true,
            "--help" | "-h" => {
                return Err(
                    "usage: netsplit [--devices N] [--partitions K] [--ops N] [--seed S] [--json] [--sender-keys]"
                        .into(),
                )
            }
            other => return Err(format!("unknown flag {other}; try --help")),
        }
    }
    Ok(args)
}

fn names(set: &BTreeSet<u8>) -> String {
    let v: Vec<String> = set.iter().map(|d| format!("d{d}")).collect();
    format!("[{}]", v.join(" "))
}

/// The story: eight devices, five of them members; the network splits in two; each side
/// changes the membership and keeps messaging; the split heals.
fn story(args: &Args) -> Outcome {
    let config = SimConfig {
        devices: 8,
        initial_members: 5,
        partitions: 2,
        seed: args.seed,
        // Clocks within a second of each other, so the story reads in real-time order.
        max_skew_ms: 1_000,
        sender_keys: args.sender_keys,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config);
    let say = |sim: &Sim, text: &str| {
        println!("{text}");
        println!(
            "    d0 sees {}   d3 sees {}",
            names(&sim.members_seen_by(0)),
            names(&sim.members_seen_by(3))
        );
    };
    if args.sender_keys {
        println!("Messages go in sender-key mode: each sender hands its chain to its view in one envelope, then encrypts each message once.");
    }
    say(
        &sim,
        "The group forms: d0 founds it (the owner), adds d1..d4 and makes d1 and d3 admins; d5, d6, d7 are outside.",
    );
    // Each chapter is followed by a few seconds for the network to deliver, and a sync on
    // each side to recover what it lost.
    let chapters: Vec<(&str, Vec<Action>)> = vec![
        (
            "The network splits: {d0 d1 d2 d5} | {d3 d4 d6 d7}.",
            vec![Action::Split {
                sides: vec![0, 0, 0, 1, 1, 0, 1, 1],
            }],
        ),
        (
            "Left: d0 removes d4, who is on the right side. Right: admin d3 adds d6 and d7.",
            vec![
                Action::Remove {
                    actor: 0,
                    target: 4,
                },
                Action::Add {
                    actor: 3,
                    target: 6,
                },
                Action::Add {
                    actor: 3,
                    target: 7,
                },
            ],
        ),
        (
            "Left: admin d1 adds d5. Both sides send: d2 (message 0) and d4 (message 1).",
            vec![
                Action::Add {
                    actor: 1,
                    target: 5,
                },
                Action::Send { actor: 2 },
                Action::Send { actor: 4 },
            ],
        ),
        (
            "Right: admin d3 removes d2, who is on the left. d7 sends message 2; d5 sends message 3.",
            vec![
                Action::Remove {
                    actor: 3,
                    target: 2,
                },
                Action::Send { actor: 7 },
                Action::Send { actor: 5 },
            ],
        ),
        ("The split heals; everyone syncs.", vec![Action::Heal]),
    ];
    for (text, actions) in &chapters {
        for action in actions {
            sim.step(action);
        }
        sim.step(&Action::Advance { ms: 2_500 });
        // Pairs across the split only sync once it has healed.
        for (a, b) in [
            (0, 1),
            (1, 2),
            (2, 5),
            (3, 4),
            (4, 6),
            (6, 7),
            (5, 6),
            (2, 3),
        ] {
            sim.step(&Action::Sync { a, b });
        }
        say(&sim, text);
    }
    sim.finish()
}

/// Indices of the messages among `messages` that device `device` opened.
fn opened_by(messages: &[MessageRecord], device: usize) -> BTreeSet<u8> {
    messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.opened_by.contains(&(device as u8)))
        .map(|(k, _)| k as u8)
        .collect()
}

fn json(outcome: &Outcome) -> String {
    let hex = |d: &splitsafe::group::ViewDigest| d.to_string();
    let set = |s: &BTreeSet<u8>| {
        format!(
            "[{}]",
            s.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
        )
    };
    let devices: Vec<String> = outcome
        .digests
        .iter()
        .zip(&outcome.members)
        .enumerate()
        .map(|(i, (digest, members))| {
            let opened = opened_by(&outcome.messages, i);
            format!(
                r#"{{"device":{i},"digest":"{}","members":{},"opened":{}}}"#,
                hex(digest),
                set(members),
                set(&opened)
            )
        })
        .collect();
    let messages: Vec<String> = outcome
        .messages
        .iter()
        .map(|m| {
            format!(
                r#"{{"sender":{},"view":{},"delivered_to":{},"opened_by":{},"after_convergence":{}}}"#,
                m.sender, set(&m.view), set(&m.delivered_to), set(&m.opened_by), m.after_convergence
            )
        })
        .collect();
    let violations: Vec<String> = outcome
        .violations
        .iter()
        .map(|v| format!("{v:?}"))
        .collect();
    format!(
        r#"{{"verdict":{},"converged":{},"devices":[{}],"messages":[{}],"violations":[{}],"stats":{{"ops":{},"packets":{},"lost":{},"cut":{},"duplicated":{},"syncs":{},"sync_bytes":{}}}}}"#,
        outcome.violations.is_empty() && outcome.converged,
        outcome.converged,
        devices.join(","),
        messages.join(","),
        violations.join(","),
        outcome.stats.ops,
        outcome.stats.packets,
        outcome.stats.lost,
        outcome.stats.cut,
        outcome.stats.duplicated,
        outcome.stats.syncs,
        outcome.stats.sync_bytes
    )
}

fn table(outcome: &Outcome) {
    let during = outcome
        .messages
        .iter()
        .filter(|m| !m.after_convergence)
        .count();
    println!(
        "\n{:<7} {:<18} {:<28} opened (messages during the split)",
        "device", "view digest", "members"
    );
    for (i, (digest, members)) in outcome.digests.iter().zip(&outcome.members).enumerate() {
        let opened = opened_by(&outcome.messages[..during], i);
        let opened: Vec<String> = opened.iter().map(|k| format!("m{k}")).collect();
        println!(
            "d{i:<6} {:<18} {:<28} {}",
            &digest.to_string()[..16],
            names(members),
            opened.join(" ")
        );
    }
    let s = &outcome.stats;
    println!(
        "\n{} membership ops, {} packets ({} lost, {} cut by the split, {} duplicated), {} sync rounds ({} bytes)",
        s.ops, s.packets, s.lost, s.cut, s.duplicated, s.syncs, s.sync_bytes
    );
    for v in &outcome.violations {
        println!("violation: {v}");
    }
    let verdict = outcome.violations.is_empty() && outcome.converged;
    println!(
        "verdict: {verdict} (one view digest on every device after healing: {}; every message opened by exactly its sender's view where delivered: {})",
        outcome.converged,
        outcome.violations.is_empty()
    );
}

/// The second story: Mallory, an admin, is removed by the owner a year after joining. From
/// a copy of the group she kept from her first days she signs, by hand, a removal of Bob
/// stamped a year back, an add of a puppet, and an op that reuses her last sequence number
/// the owner saw. Returns whether everything she signed is void and the view unchanged.
fn backdating_story() -> bool {
    const T0: u64 = 1_795_694_400_000; // 2026-11-26 12:00 UTC
    const YEAR: u64 = 365 * 86_400_000;
    let person = |n: u8| Identity::from_secret_bytes([n; 32]);
    let (alice, bob, mallory, puppet) = (person(1), person(2), person(3), person(4));
    let bundle = |who: &Identity| {
        let key = EncryptionKey(x25519_dalek::X25519_BASEPOINT_BYTES);
        who.bundle(key, Timestamp::from_physical(T0))
    };
    let config = ReplicaConfig::default();
    let (mut group, genesis) =
        Replica::create(&alice, bundle(&alice), [0; 16], config, T0).expect("a fresh group");
    group.add(&alice, bundle(&bob), T0 + 1).expect("owner adds");
    group
        .add(&alice, bundle(&mallory), T0 + 2)
        .expect("owner adds");
    group
        .promote(&alice, mallory.id(), T0 + 3)
        .expect("owner ranks");
    let (her_first, _) = group
        .add(&mallory, bundle(&person(5)), T0 + 4)
        .expect("admin adds");
    group
        .remove(&alice, mallory.id(), T0 + YEAR)
        .expect("owner removes");
    let before = group.view().clone();
    println!(
        "
A year later the owner removes admin Mallory; she kept her key and an old copy of the group."
    );
    let craft = |seq: u64, prev, at: u64, body: Body| {
        Op {
            group: group.group(),
            author: mallory.id(),
            seq,
            prev,
            timestamp: Timestamp::from_physical(at),
            body,
        }
        .sign(&mallory)
    };
    let remove_bob = craft(
        2,
        her_first.id(),
        T0 + 5,
        Body::Remove {
            member: bob.id(),
            watermark: Watermark::NONE,
        },
    );
    let add_puppet = craft(
        3,
        remove_bob.id(),
        T0 + 6,
        Body::Add {
            bundle: bundle(&puppet),
            watermark: Watermark::NONE,
        },
    );
    let rewrite_first = craft(
        1,
        Op::NO_PREV,
        T0 + 4,
        Body::Remove {
            member: bob.id(),
            watermark: Watermark::NONE,
        },
    );
    let mut at_bob = Replica::join(&genesis, config, T0 + YEAR + 10).expect("joins");
    at_bob.ingest_batch(group.ops().cloned().collect(), T0 + YEAR + 10);
    let mut all_void = true;
    for (what, op) in [
        ("removes Bob, stamped a year back", &remove_bob),
        ("adds her puppet, stamped a year back", &add_puppet),
        ("re-signs her first op as a removal of Bob", &rewrite_first),
    ] {
        let status = at_bob
            .ingest(op.clone(), T0 + YEAR + 20)
            .expect("well formed and signed");
        let effective = at_bob.is_effective(&op.id()) == Some(true);
        all_void &= !effective;
        println!(
            "    Mallory {what} (stamp {}): {:?}, takes effect: {effective}",
            op.op().timestamp,
            status.status
        );
    }
    let unchanged = at_bob.view() == &before && at_bob.is_effective(&her_first.id()) == Some(true);
    println!(
        "    view unchanged: {unchanged}; Bob a member: {}; the add the owner saw her make still stands: {}",
        at_bob.is_member(&bob.id()),
        at_bob.is_effective(&her_first.id()) == Some(true)
    );
    all_void && unchanged
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match args.ops {
        None if !args.json => story(&args),
        ops => {
            let config = SimConfig {
                devices: args.devices,
                partitions: args.partitions,
                seed: args.seed,
                sender_keys: args.sender_keys,
                ..SimConfig::default()
            };
            let schedule = random_schedule(args.seed, ops.unwrap_or(200), args.partitions);
            let mut sim = Sim::new(config);
            let tenth = (schedule.len() / 10).max(1);
            for (k, action) in schedule.iter().enumerate() {
                sim.step(action);
                if !args.json && (k + 1) % tenth == 0 {
                    eprintln!("progress: {}/{} actions", k + 1, schedule.len());
                }
            }
            sim.finish()
        }
    };
    let mut verdict = outcome.violations.is_empty() && outcome.converged;
    if args.json {
        println!("{}", json(&outcome));
    } else {
        table(&outcome);
        if args.ops.is_none() {
            let held = backdating_story();
            println!("verdict: {held} (every backdated op of the removed admin is void)");
            verdict &= held;
        }
    }
    if verdict {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
