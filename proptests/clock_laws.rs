//! Laws of the hybrid logical clock under random schedules of sends and receives between
//! replicas whose physical clocks are skewed, jump backwards and exceed the drift bound.

use crate::support;

use proptest::prelude::*;
use splitsafe::clock::{Clock, ClockConfig, ClockError, Timestamp};

const REPLICAS: usize = 3;

#[derive(Clone, Debug)]
enum Event {
    /// Real time moves by this many milliseconds (possibly not at all).
    Advance(u64),
    /// A replica's physical clock jumps by this many milliseconds (negative: backwards).
    Jump(usize, i64),
    /// A replica stamps a local event and puts it on the wire.
    Send(usize),
    /// A replica receives the stamp at this position on the wire (modulo its length).
    Receive(usize, usize),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => (0u64..2_000).prop_map(Event::Advance),
        1 => (0..REPLICAS, -600_000i64..600_000).prop_map(|(r, d)| Event::Jump(r, d)),
        4 => (0..REPLICAS).prop_map(Event::Send),
        4 => (0..REPLICAS, any::<usize>()).prop_map(|(r, i)| Event::Receive(r, i)),
    ]
}

fn physical(real: u64, skew: i64) -> u64 {
    real.saturating_add_signed(skew)
}

proptest! {
    #![proptest_config(support::config())]

    #[test]
    fn schedules_keep_every_clock_law(
        start in 0u64..(1 << 44),
        max_drift_ms in 0u64..900_000,
        skews in proptest::array::uniform3(-900_000i64..900_000),
        events in proptest::collection::vec(event(), 1..200),
    ) {
        let config = ClockConfig { max_drift_ms };
        let mut clocks: [Clock; REPLICAS] = std::array::from_fn(|_| Clock::new(config));
        let mut skews = skews;
        let mut max_physical = [0u64; REPLICAS];
        let mut real = start;
        let mut wire: Vec<Timestamp> = vec![];

        for event in events {
            match event {
                Event::Advance(ms) => real += ms,
                Event::Jump(r, d) => skews[r] += d,
                Event::Send(r) => {
                    let now = physical(real, skews[r]);
                    let before = clocks[r].last();
                    let t = clocks[r].send(now);
                    prop_assert!(t > before, "send not strictly monotonic: {before} then {t}");
                    prop_assert!(t >= Timestamp::from_physical(now), "send behind physical time");
                    wire.push(t);
                }
                Event::Receive(r, i) => {
                    if wire.is_empty() { continue; }
                    let remote = wire[i % wire.len()];
                    let now = physical(real, skews[r]);
                    let before = clocks[r].clone();
                    match clocks[r].receive(remote, now) {
                        Ok(t) => {
                            prop_assert!(t > before.last() && t > remote);
                            prop_assert!(t >= Timestamp::from_physical(now));
                            prop_assert!(remote.millis() <= now + max_drift_ms);
                        }
                        Err(ClockError::TooFarAhead { remote: r2, local_ms, max_drift_ms: bound }) => {
                            prop_assert_eq!(&clocks[r], &before, "refused remote changed the clock");
                            prop_assert_eq!((r2, local_ms, bound), (remote, now, max_drift_ms));
                            prop_assert!(remote.millis() > now + max_drift_ms);
                        }
                    }
                }
            }
            for r in 0..REPLICAS {
                max_physical[r] = max_physical[r].max(physical(real, skews[r]));
            }
            // No clock runs further ahead of the physical time it has seen than the drift
            // bound, plus one millisecond of counter carry (fewer than 65,536 events here).
            for r in 0..REPLICAS {
                let last = clocks[r].last();
                prop_assert!(
                    last.millis() <= max_physical[r] + max_drift_ms + 1,
                    "clock {r} at {last} ran ahead of {} + {max_drift_ms} ms", max_physical[r]
                );
            }
        }
    }

    #[test]
    fn arbitrary_remote_stamps_are_adopted_or_refused_exactly_by_the_bound(
        last in any::<u64>().prop_map(|r| r >> 2),
        remote in any::<u64>(),
        now in 0u64..(1 << 47),
        max_drift_ms in 0u64..(1 << 40),
    ) {
        let config = ClockConfig { max_drift_ms };
        let mut clock = Clock::resume(config, Timestamp::from_raw(last));
        let remote = Timestamp::from_raw(remote);
        let before = clock.clone();
        let allowed = remote.millis() <= now + max_drift_ms;
        match clock.receive(remote, now) {
            Ok(t) => {
                prop_assert!(allowed);
                prop_assert!(t > remote && t > before.last() && t >= Timestamp::from_physical(now));
                // The result is the least stamp that satisfies all three bounds.
                prop_assert_eq!(t, Timestamp::from_raw(last.max(remote.as_raw()) + 1).max(Timestamp::from_physical(now)));
            }
            Err(_) => {
                prop_assert!(!allowed);
                prop_assert_eq!(clock, before);
            }
        }
    }

    #[test]
    fn timestamp_packing_round_trips(millis in 0..=Timestamp::MAX_MILLIS, counter in any::<u16>()) {
        let t = Timestamp::new(millis, counter).unwrap();
        prop_assert_eq!((t.millis(), t.counter()), (millis, counter));
        prop_assert_eq!(Timestamp::from_raw(t.as_raw()), t);
        let bytes = splitsafe::codec::encode(&t);
        prop_assert_eq!(splitsafe::codec::decode::<Timestamp>(&bytes, 9).unwrap(), t);
    }

    #[test]
    fn timestamp_order_is_millis_then_counter(a in any::<u64>(), b in any::<u64>()) {
        let (a, b) = (Timestamp::from_raw(a), Timestamp::from_raw(b));
        prop_assert_eq!(a.cmp(&b), (a.millis(), a.counter()).cmp(&(b.millis(), b.counter())));
    }
}
