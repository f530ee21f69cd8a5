//! Differential test: `LwwSet` against `crdts::Map<E, LWWReg<bool, S>>`, an implementation
//! nobody here wrote, on arbitrary operation sequences including duplicates and conflicts.

use crate::support;

use crdts::{CmRDT, LWWReg};
use proptest::prelude::*;
use splitsafe::lww::{Action, LwwSet, Op};
use support::crdts_oracle::{write, OracleMap};
use support::{action, ALPHABET};

const ACTOR: u8 = 1;

proptest! {
    #![proptest_config(support::config())]

    #[test]
    fn lww_set_agrees_with_crdts_map_of_lww_registers(
        // Stamps from a small range so repeats (duplicates and conflicts) are common. The
        // oracle's default register holds marker 0, so stamps start at 1.
        ops in proptest::collection::vec((0..ALPHABET, 1u32..40, action()), 0..80)
    ) {
        let mut ours = LwwSet::new();
        let mut oracle: OracleMap<u8, u32> = OracleMap::new();
        for (element, stamp, action) in ops {
            let present = action == Action::Insert;
            // crdts validates a map op's dot against each entry's own clock, which refuses a
            // single actor writing several keys; the register's own validation is the
            // last-writer-wins rule under test.
            let held = oracle.get(&element).val.unwrap_or_default();
            let oracle_verdict = held.validate_op(&LWWReg { val: present, marker: stamp });
            let our_verdict = ours.apply(Op { element, stamp, action });
            prop_assert_eq!(
                our_verdict.is_err(),
                oracle_verdict.is_err(),
                "disagree on conflict for {:?} {} {:?}: ours {:?}, crdts {:?}",
                action, element, stamp, our_verdict, oracle_verdict
            );
            if oracle_verdict.is_ok() {
                oracle.apply(write(&oracle, ACTOR, element, present, stamp));
            }
            for e in 0..ALPHABET {
                let reg = oracle.get(&e).val.map(|reg| reg.0);
                prop_assert_eq!(ours.contains(&e), reg.as_ref().is_some_and(|r| r.val));
                prop_assert_eq!(
                    ours.get(&e).map(|entry| entry.stamp),
                    reg.map(|r| r.marker),
                );
            }
        }
    }
}
