//! End-to-end properties over random schedules of the netsplit simulator, in both message
//! modes (pairwise envelopes and sender keys): safety, liveness within partitions,
//! convergence after healing, and determinism.
//!
//! `SPLITSAFE_SIM_CASES=N` runs N cases instead of the default (sized for CI).

use crate::support;

use proptest::prelude::*;
use splitsafe::sim::{Action, Schedule, Sim, SimConfig};

fn action() -> impl Strategy<Value = Action> {
    let d = any::<u8>();
    prop_oneof![
        3 => (d, d).prop_map(|(actor, target)| Action::Add { actor, target }),
        3 => (d, d).prop_map(|(actor, target)| Action::Remove { actor, target }),
        1 => d.prop_map(|actor| Action::Rotate { actor }),
        1 => (0u8..2, d, any::<bool>()).prop_map(|(actor, target, admin)| Action::Rank { actor, target, admin }),
        4 => d.prop_map(|actor| Action::Send { actor }),
        2 => (d, d).prop_map(|(a, b)| Action::Sync { a, b }),
        1 => proptest::collection::vec(any::<u8>(), 0..30).prop_map(|sides| Action::Split { sides }),
        1 => Just(Action::Heal),
        2 => (0u32..400_000).prop_map(|ms| Action::Advance { ms }),
    ]
}

fn config() -> impl Strategy<Value = SimConfig> {
    (
        2u8..=30,
        2u8..=4,
        any::<u64>(),
        0u16..300,
        0u16..300,
        0u32..600_000,
    )
        .prop_map(
            |(devices, partitions, seed, loss_permille, duplicate_permille, max_skew_ms)| {
                SimConfig {
                    devices,
                    partitions,
                    seed,
                    loss_permille,
                    duplicate_permille,
                    max_skew_ms,
                    ..SimConfig::default()
                }
            },
        )
}

/// A schedule that always splits first, so every run has concurrent changes on each side.
fn schedule() -> impl Strategy<Value = Schedule> {
    (
        proptest::collection::vec(any::<u8>(), 2..30),
        proptest::collection::vec(action(), 0..40),
    )
        .prop_map(|(sides, rest)| {
            let mut schedule = vec![Action::Split { sides }];
            schedule.extend(rest);
            schedule
        })
}

fn cases() -> u32 {
    std::env::var("SPLITSAFE_SIM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

/// No violation, converged, and (safety restated on the record) nobody outside a sender's
/// view opened its message.
fn keeps_every_invariant(config: SimConfig, schedule: &Schedule) -> Result<(), TestCaseError> {
    let outcome = Sim::run(config, schedule);
    prop_assert!(outcome.violations.is_empty(), "{:#?}", outcome.violations);
    prop_assert!(outcome.converged);
    for record in &outcome.messages {
        prop_assert!(record.opened_by.is_subset(&record.view));
        prop_assert!(!record.opened_by.contains(&record.sender));
    }
    Ok(())
}

proptest! {
    #![proptest_config(support::config_with_cases(cases()))]

    #[test]
    fn every_run_keeps_safety_liveness_and_convergence(config in config(), schedule in schedule()) {
        keeps_every_invariant(config, &schedule)?;
    }

    #[test]
    fn every_run_keeps_safety_liveness_and_convergence_with_sender_keys(config in config(), schedule in schedule()) {
        keeps_every_invariant(SimConfig { sender_keys: true, ..config }, &schedule)?;
    }

    #[test]
    fn the_same_seed_and_schedule_give_byte_identical_results(config in config(), schedule in schedule()) {
        let once = Sim::run(config, &schedule).to_cbor();
        let twice = Sim::run(config, &schedule).to_cbor();
        prop_assert_eq!(once, twice);
    }
}

#[test]
fn a_removal_on_one_side_and_adds_on_the_other_converge() {
    let config = SimConfig {
        devices: 6,
        seed: 7,
        ..SimConfig::default()
    };
    let schedule = vec![
        Action::Split {
            sides: vec![0, 0, 0, 1, 1, 1],
        },
        // Left: the owner removes device 4, while the right (where 4 is) keeps messaging and
        // its admin 3 removes device 2.
        Action::Remove {
            actor: 0,
            target: 4,
        },
        Action::Send { actor: 1 },
        Action::Send { actor: 4 },
        Action::Remove {
            actor: 3,
            target: 2,
        },
        Action::Advance { ms: 5_000 },
        Action::Sync { a: 0, b: 2 },
        Action::Sync { a: 3, b: 5 },
        Action::Send { actor: 5 },
        Action::Advance { ms: 5_000 },
        Action::Heal,
    ];
    let outcome = Sim::run(config, &schedule);
    assert!(outcome.violations.is_empty(), "{:#?}", outcome.violations);
    assert!(outcome.converged);
    let members: Vec<u8> = outcome.members[0].iter().copied().collect();
    assert_eq!(members, vec![0, 1, 3, 5]);
    // Device 4 was removed on the left but still read what the right side sent it.
    let from_five = &outcome.messages[2];
    assert_eq!(from_five.sender, 5);
    assert!(from_five.view.contains(&4));
    // After convergence, exactly the converged view reads.
    let last = outcome.messages.last().unwrap();
    assert!(last.after_convergence);
    assert!(!last.opened_by.contains(&4) && !last.opened_by.contains(&2));
}
