//! The end-of-run invariants of `spec/netsplit.md` that look at the whole run; the checks
//! made as each message is opened live with the opening.

use super::outcome::MessageRecord;
use std::collections::BTreeSet;

/// Liveness: every message that reached a device in its sender's view was opened there.
pub(super) fn liveness(messages: &[MessageRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for (m, record) in messages.iter().enumerate() {
        for d in record.delivered_to.intersection(&record.view) {
            if *d != record.sender && !record.opened_by.contains(d) {
                out.push(format!(
                    "liveness: device {d} received message {m} but never opened it"
                ));
            }
        }
    }
    out
}

/// Safety: no device shows a member that no `Add` ever admitted.
pub(super) fn only_added_members<'a>(
    views: impl Iterator<Item = (usize, Vec<Option<u8>>)> + 'a,
    ever_added: &BTreeSet<u8>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, members) in views {
        if members
            .iter()
            .any(|m| m.is_none_or(|x| !ever_added.contains(&x)))
        {
            out.push(format!("safety: device {i} shows a member never added"));
        }
    }
    out
}

/// Convergence: each message sealed after the final sync was opened by exactly its view
/// minus its sender, each of whom judged the sender a member.
pub(super) fn converged_reads(messages: &[MessageRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for (m, record) in messages.iter().enumerate() {
        if !record.after_convergence {
            continue;
        }
        let expected: BTreeSet<u8> = record
            .view
            .iter()
            .copied()
            .filter(|d| *d != record.sender)
            .collect();
        if record.opened_by != expected {
            out.push(format!(
                "convergence: message {m} was opened by {:?}, its view minus the sender is {expected:?}",
                record.opened_by
            ));
        }
        if !record.opened_as_outsider.is_empty() {
            out.push(format!(
                "convergence: devices {:?} did not judge the sender of message {m} a member",
                record.opened_as_outsider
            ));
        }
    }
    out
}
