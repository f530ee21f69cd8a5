//! P1 under the fuzzer: after an arbitrary honest history, the owner removes admin 1, which
//! then signs arbitrary operations (any chain position, stamp and body). Delivered before or
//! after the honest ones, they change neither the view nor any honest operation's verdict.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

use arbitrary::Arbitrary;
use group::{removed_admin_attack, Crafted, Step};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Steps as (kind, device, device): see `group::step_from_bytes`.
    actions: Vec<(u8, u8, u8)>,
    crafted: Vec<(u8, u8, u32, u8, u8, bool)>,
    crafted_first: bool,
}

fuzz_target!(|input: Input| {
    let steps: Vec<Step> = input
        .actions
        .iter()
        .take(30)
        .map(|&(kind, a, b)| group::step_from_bytes(kind, a, b))
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
