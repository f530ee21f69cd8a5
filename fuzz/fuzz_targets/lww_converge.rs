//! An arbitrary schedule of inserts, removes and merges across several replicas: after every
//! replica has merged every other, all replicas are equal, and equal to applying every
//! operation ever issued to one set. Conflicts never arise because stamps are unique.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use splitsafe::lww::{Action, LwwSet, Op};

const REPLICAS: usize = 4;

#[derive(Arbitrary, Debug)]
enum Step {
    Insert { replica: u8, element: u8 },
    Remove { replica: u8, element: u8 },
    Merge { into: u8, from: u8 },
}

fuzz_target!(|steps: Vec<Step>| {
    let mut replicas: Vec<LwwSet<u8, (u32, u8)>> = vec![LwwSet::new(); REPLICAS];
    let mut issued = Vec::new();
    // Stamps: a global counter that does not follow delivery order, plus the replica index,
    // so stamps are unique yet arrive out of order.
    for (n, step) in steps.into_iter().enumerate() {
        let counter = (n as u32).wrapping_mul(2_654_435_761);
        match step {
            Step::Insert { replica, element } | Step::Remove { replica, element } => {
                let r = usize::from(replica) % REPLICAS;
                let action = if matches!(step, Step::Insert { .. }) {
                    Action::Insert
                } else {
                    Action::Remove
                };
                let op = Op {
                    element,
                    stamp: (counter, r as u8),
                    action,
                };
                replicas[r]
                    .apply(op.clone())
                    .expect("unique stamps never conflict");
                issued.push(op);
            }
            Step::Merge { into, from } => {
                let from = replicas[usize::from(from) % REPLICAS].clone();
                replicas[usize::from(into) % REPLICAS]
                    .merge(&from)
                    .expect("unique stamps never conflict");
            }
        }
    }
    // Full sync: every replica merges every other.
    let snapshot = replicas.clone();
    for replica in &mut replicas {
        for other in &snapshot {
            replica.merge(other).expect("unique stamps never conflict");
        }
    }
    let mut reference = LwwSet::new();
    for op in issued {
        reference.apply(op).expect("unique stamps never conflict");
    }
    for replica in &replicas {
        assert_eq!(replica, &reference);
    }
});
