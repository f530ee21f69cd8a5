//! Two replicas of a member set diverge on both sides of a netsplit, then converge.
//!
//! Run: `cargo run --release --example netsplit`

use splitsafe::clock::{Clock, ClockConfig, Timestamp};
use splitsafe::lww::LwwSet;

/// A stamp that is unique per operation: the HLC time, then the replica that issued it.
type Stamp = (Timestamp, &'static str);

#[derive(Clone)]
struct Replica {
    name: &'static str,
    clock: Clock,
    members: LwwSet<&'static str, Stamp>,
}

impl Replica {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            clock: Clock::new(ClockConfig::default()),
            members: LwwSet::new(),
        }
    }

    fn add(&mut self, member: &'static str, now_ms: u64) {
        let stamp = (self.clock.send(now_ms), self.name);
        self.members
            .insert(member, stamp)
            .expect("stamps are unique");
        println!("  {:<6} adds    {member:<6} at {}", self.name, stamp.0);
    }

    fn remove(&mut self, member: &'static str, now_ms: u64) {
        let stamp = (self.clock.send(now_ms), self.name);
        self.members
            .remove(member, stamp)
            .expect("stamps are unique");
        println!("  {:<6} removes {member:<6} at {}", self.name, stamp.0);
    }

    /// Merges a peer's replica, first advancing the clock past everything the peer stamped.
    fn sync_from(&mut self, peer: &Replica, now_ms: u64) {
        if let Some(latest) = peer.members.entries().map(|(_, e)| e.stamp.0).max() {
            self.clock
                .receive(latest, now_ms)
                .expect("peer clocks are within the drift bound");
        }
        self.members
            .merge(&peer.members)
            .expect("stamps are unique");
    }

    fn show(&self) -> String {
        let names: Vec<_> = self.members.iter().copied().collect();
        format!("{:<6} sees [{}]", self.name, names.join(", "))
    }
}

fn main() {
    // Fixed times, so every run prints the same story: 2026-11-26 12:00:00 UTC.
    let t0 = 1_795_694_400_000;
    let mut left = Replica::new("left");
    let mut right = Replica::new("right");

    println!("The group forms:");
    left.add("alice", t0);
    left.add("bob", t0 + 1);
    left.add("carol", t0 + 2);
    right.sync_from(&left, t0 + 10);
    println!("  {}\n  {}", left.show(), right.show());

    println!("\nThe network splits; each side edits on its own:");
    left.remove("carol", t0 + 1_000);
    left.add("dave", t0 + 1_100);
    right.add("erin", t0 + 1_050);
    right.remove("bob", t0 + 1_200);
    // Concurrent edits of one member: right re-adds carol later than left removed her.
    right.add("carol", t0 + 1_300);
    println!("  {}\n  {}", left.show(), right.show());
    let diverged = left.members != right.members;

    println!("\nThe split heals; each side merges the other's replica:");
    // Each merges what the other held at the moment the split healed.
    let left_at_heal = left.clone();
    left.sync_from(&right, t0 + 5_000);
    right.sync_from(&left_at_heal, t0 + 5_000);
    println!("  {}\n  {}", left.show(), right.show());

    let converged = left.members == right.members;
    let expected = ["alice", "carol", "dave", "erin"];
    let correct = left.members.iter().copied().eq(expected);
    println!(
        "\nverdict: diverged during the split: {diverged}; converged after healing: {converged}; \
         member list {expected:?}: {correct}"
    );
    if !(diverged && converged && correct) {
        std::process::exit(1);
    }
}
