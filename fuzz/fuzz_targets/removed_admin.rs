//! P1 under the fuzzer: after an arbitrary honest history, the owner removes admin 1, which
//! then signs arbitrary operations (any chain position, stamp and body). Delivered before or
//! after the honest ones, they change neither the view nor any honest operation's verdict.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

use arbitrary::Arbitrary;
use group::{removed_admin_attack, Crafted, Step, DEVICES};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Action {
    Add { device: u8, target: u8 },
    Remove { device: u8, target: u8 },
    Rotate { device: u8 },
    Deliver { from: u8, to: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    actions: Vec<Action>,
    crafted: Vec<(u8, u8, u32, u8, u8, bool)>,
    crafted_first: bool,
}

fuzz_target!(|input: Input| {
    let d = |x: u8| x % DEVICES;
    let steps: Vec<Step> = input
        .actions
        .iter()
        .take(30)
        .map(|a| match *a {
            Action::Add { device, target } => Step::Add {
                device: d(device),
                target: d(target),
            },
            Action::Remove { device, target } => Step::Remove {
                device: d(device),
                target: d(target),
            },
            Action::Rotate { device } => Step::Rotate { device: d(device) },
            Action::Deliver { from, to } => Step::Deliver {
                from: d(from),
                to: d(to),
            },
        })
        .collect();
    let crafted: Vec<Crafted> = input
        .crafted
        .iter()
        .take(8)
        .map(|&(seq, prev, at, body, target, early)| Crafted {
            seq: u64::from(seq % 8),
            prev,
            at: u64::from(at),
            body,
            target,
            early,
        })
        .collect();
    if let Err(e) = removed_admin_attack(&steps, &crafted, input.crafted_first) {
        panic!("{e}\n{input:?}");
    }
});
