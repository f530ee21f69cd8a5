//! An arbitrary simulation: group size, partitions, network faults, clock skew and schedule
//! all from the input. Every run must end with no invariant violated.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use splitsafe::sim::{Action, Sim, SimConfig};

#[derive(Arbitrary, Debug)]
enum Step {
    Add { actor: u8, target: u8 },
    Remove { actor: u8, target: u8 },
    Rotate { actor: u8 },
    Rank { actor: u8, target: u8, admin: bool },
    Send { actor: u8 },
    Sync { a: u8, b: u8 },
    Split { sides: Vec<u8> },
    Heal,
    Advance { ms: u32 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    devices: u8,
    initial_members: u8,
    partitions: u8,
    seed: u64,
    loss_permille: u16,
    duplicate_permille: u16,
    max_skew_ms: u32,
    sender_keys: bool,
    steps: Vec<Step>,
}

fuzz_target!(|input: Input| {
    let config = SimConfig {
        devices: 2 + input.devices % 12,
        initial_members: input.initial_members % 12,
        partitions: 1 + input.partitions % 4,
        seed: input.seed,
        loss_permille: input.loss_permille % 1000,
        duplicate_permille: input.duplicate_permille % 1000,
        max_skew_ms: input.max_skew_ms % 1_200_000,
        sender_keys: input.sender_keys,
        ..SimConfig::default()
    };
    let schedule: Vec<Action> = input
        .steps
        .into_iter()
        .take(60)
        .map(|s| match s {
            Step::Add { actor, target } => Action::Add { actor, target },
            Step::Remove { actor, target } => Action::Remove { actor, target },
            Step::Rotate { actor } => Action::Rotate { actor },
            Step::Rank {
                actor,
                target,
                admin,
            } => Action::Rank {
                actor,
                target,
                admin,
            },
            Step::Send { actor } => Action::Send { actor },
            Step::Sync { a, b } => Action::Sync { a, b },
            Step::Split { sides } => Action::Split { sides },
            Step::Heal => Action::Heal,
            Step::Advance { ms } => Action::Advance { ms: ms % 3_600_000 },
        })
        .collect();
    let outcome = Sim::run(config, &schedule);
    assert!(
        outcome.violations.is_empty(),
        "{:#?}\n{schedule:?}",
        outcome.violations
    );
});
