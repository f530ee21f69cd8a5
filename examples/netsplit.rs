//! A group keeps working through a netsplit and converges after it.
//!
//! Run: `cargo run --release --example netsplit` for the story, or with
//! `--devices N --partitions K --ops N --seed S` for a random run of N actions, and `--json`
//! for machine-readable output. The exit code is 0 exactly when the verdict is true.

use splitsafe::sim::{random_schedule, Action, MessageRecord, Outcome, Sim, SimConfig};
use std::collections::BTreeSet;
use std::process::ExitCode;

struct Args {
    devices: u8,
    partitions: u8,
    ops: Option<usize>,
    seed: u64,
    json: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        devices: 8,
        partitions: 2,
        ops: None,
        seed: 1,
        json: false,
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
            "--help" | "-h" => {
                return Err(
                    "usage: netsplit [--devices N] [--partitions K] [--ops N] [--seed S] [--json]"
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
    say(
        &sim,
        "The group forms: d0 founds it and adds d1..d4; d5, d6, d7 are outside.",
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
            "Left: d0 removes d4, who is on the right side. Right: d3 adds d6 and d7.",
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
            "Left: d1 adds d5. Both sides send: d2 (message 0) and d4 (message 1).",
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
            "Right: d3 removes d1, who is on the left. d7 sends message 2; d5 sends message 3.",
            vec![
                Action::Remove {
                    actor: 3,
                    target: 1,
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
    if args.json {
        println!("{}", json(&outcome));
    } else {
        table(&outcome);
    }
    if outcome.violations.is_empty() && outcome.converged {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
