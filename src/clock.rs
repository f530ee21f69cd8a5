//! Hybrid logical clock: stamps that follow physical time yet never run backwards.
//!
//! A [`Timestamp`] packs unix milliseconds into its high 48 bits and a logical counter into
//! its low 16 bits, so plain integer order is causal order: a replica that has seen a stamp
//! only ever issues larger ones. Physical time is always an argument; nothing in this module
//! reads the wall clock except the [`system_time_ms`] helper offered to callers.
//!
//! A remote stamp from a clock running far ahead would otherwise drag every replica into the
//! future and win every last-writer-wins conflict. [`Clock::receive`] therefore refuses a
//! stamp more than [`ClockConfig::max_drift_ms`] ahead of local physical time and leaves the
//! clock unchanged; the caller holds the carrying operation back until local time catches up.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A hybrid-logical-clock stamp: unix milliseconds (high 48 bits) and a counter (low 16 bits).
///
/// Ordering is the integer ordering of the packed `u64`. It encodes as a plain unsigned
/// integer.
///
/// ```
/// use splitsafe::clock::Timestamp;
///
/// let t = Timestamp::new(1_764_000_000_000, 7).unwrap();
/// assert_eq!((t.millis(), t.counter()), (1_764_000_000_000, 7));
/// assert!(t < Timestamp::new(1_764_000_000_000, 8).unwrap());
/// assert!(Timestamp::new(1_764_000_000_000, u16::MAX).unwrap() < Timestamp::new(1_764_000_000_001, 0).unwrap());
/// assert_eq!(t.to_string(), "2025-11-24T16:00:00.000Z#7");
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Bits of the logical counter.
    pub const COUNTER_BITS: u32 = 16;
    /// The largest millisecond value a stamp can hold (2^48 - 1, in the year 10889).
    pub const MAX_MILLIS: u64 = (1 << (64 - Self::COUNTER_BITS)) - 1;
    /// The smallest stamp.
    pub const ZERO: Self = Self(0);
    /// The largest stamp.
    pub const MAX: Self = Self(u64::MAX);

    /// Builds a stamp from milliseconds and a counter; `None` if `millis > MAX_MILLIS`.
    pub const fn new(millis: u64, counter: u16) -> Option<Self> {
        if millis > Self::MAX_MILLIS {
            None
        } else {
            Some(Self((millis << Self::COUNTER_BITS) | counter as u64))
        }
    }

    /// The stamp of a physical time with a zero counter, saturating at [`Self::MAX_MILLIS`].
    pub const fn from_physical(millis: u64) -> Self {
        let millis = if millis > Self::MAX_MILLIS {
            Self::MAX_MILLIS
        } else {
            millis
        };
        Self(millis << Self::COUNTER_BITS)
    }

    /// The stamp whose packed representation is `raw`.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The packed representation.
    pub const fn as_raw(self) -> u64 {
        self.0
    }

    /// Unix milliseconds.
    pub const fn millis(self) -> u64 {
        self.0 >> Self::COUNTER_BITS
    }

    /// The logical counter.
    pub const fn counter(self) -> u16 {
        // Truncation keeps exactly the low 16 bits, which is the counter.
        self.0 as u16
    }

    /// The next stamp: counter plus one, carrying into the milliseconds; saturates at
    /// [`Self::MAX`] (only reachable in the year 10889).
    const fn successor(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ#counter`, in UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.millis();
        let (secs, milli) = (ms / 1000, ms % 1000);
        let (days, day_secs) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{milli:03}Z#{}",
            day_secs / 3600,
            day_secs / 60 % 60,
            day_secs % 60,
            self.counter()
        )
    }
}

/// Proleptic Gregorian date of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, restricted to non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Settings of a [`Clock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockConfig {
    /// How far, in milliseconds, a remote stamp may run ahead of local physical time and
    /// still be adopted.
    pub max_drift_ms: u64,
}

impl ClockConfig {
    /// Five minutes: wide enough for ordinary unsynchronised device clocks, narrow enough
    /// that a future-dated stamp cannot win conflicts for long.
    pub const DEFAULT_MAX_DRIFT_MS: u64 = 5 * 60 * 1000;
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            max_drift_ms: Self::DEFAULT_MAX_DRIFT_MS,
        }
    }
}

/// Why a remote stamp was not adopted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockError {
    /// The remote stamp is further ahead of local physical time than the drift bound allows.
    TooFarAhead {
        /// The refused remote stamp.
        remote: Timestamp,
        /// Local physical time, in unix milliseconds.
        local_ms: u64,
        /// The configured bound, in milliseconds.
        max_drift_ms: u64,
    },
}

impl fmt::Display for ClockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFarAhead {
                remote,
                local_ms,
                max_drift_ms,
            } => write!(
                f,
                "remote timestamp {remote} is {} ms ahead of local time {}, beyond the max drift of {max_drift_ms} ms",
                remote.millis().saturating_sub(*local_ms),
                Timestamp::from_physical(*local_ms),
            ),
        }
    }
}

impl std::error::Error for ClockError {}

/// A hybrid logical clock: issues strictly increasing [`Timestamp`]s that track physical time.
///
/// ```
/// use splitsafe::clock::{Clock, ClockConfig, ClockError, Timestamp};
///
/// let mut clock = Clock::new(ClockConfig { max_drift_ms: 1_000 });
/// let a = clock.send(5_000);
/// let b = clock.send(5_000); // same millisecond: the counter moves on
/// assert!(b > a);
///
/// // A stamp from a peer slightly ahead is adopted, and later sends follow it.
/// let remote = Timestamp::new(5_900, 3).unwrap();
/// assert!(clock.receive(remote, 5_000).unwrap() > remote);
///
/// // One too far ahead is refused and leaves the clock as it was.
/// let before = clock.last();
/// let far = Timestamp::new(9_000, 0).unwrap();
/// assert!(matches!(clock.receive(far, 5_000), Err(ClockError::TooFarAhead { .. })));
/// assert_eq!(clock.last(), before);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clock {
    last: Timestamp,
    config: ClockConfig,
}

impl Clock {
    /// A clock that has issued nothing yet.
    pub const fn new(config: ClockConfig) -> Self {
        Self::resume(config, Timestamp::ZERO)
    }

    /// A clock that continues after `last`, for example after loading a saved replica.
    pub const fn resume(config: ClockConfig, last: Timestamp) -> Self {
        Self { last, config }
    }

    /// The last stamp issued or adopted.
    pub const fn last(&self) -> Timestamp {
        self.last
    }

    /// The clock's settings.
    pub const fn config(&self) -> ClockConfig {
        self.config
    }

    /// Stamps a local event at physical time `physical_ms`:
    /// `max(last + 1, physical_ms << 16)`.
    pub fn send(&mut self, physical_ms: u64) -> Timestamp {
        self.last = self
            .last
            .successor()
            .max(Timestamp::from_physical(physical_ms));
        self.last
    }

    /// Checks that `remote` is within the drift bound of `physical_ms`, without changing the
    /// clock.
    ///
    /// # Errors
    ///
    /// [`ClockError::TooFarAhead`] if `remote` is more than `max_drift_ms` ahead.
    pub fn check(&self, remote: Timestamp, physical_ms: u64) -> Result<(), ClockError> {
        let local_ms = Timestamp::from_physical(physical_ms).millis();
        if remote.millis() > local_ms.saturating_add(self.config.max_drift_ms) {
            return Err(ClockError::TooFarAhead {
                remote,
                local_ms,
                max_drift_ms: self.config.max_drift_ms,
            });
        }
        Ok(())
    }

    /// Adopts a remote stamp seen at physical time `physical_ms`:
    /// `max(last + 1, remote + 1, physical_ms << 16)`.
    ///
    /// # Errors
    ///
    /// [`ClockError::TooFarAhead`] if `remote` is more than `max_drift_ms` ahead of
    /// `physical_ms`; the clock is then unchanged.
    pub fn receive(
        &mut self,
        remote: Timestamp,
        physical_ms: u64,
    ) -> Result<Timestamp, ClockError> {
        self.check(remote, physical_ms)?;
        self.last = self
            .last
            .max(remote)
            .successor()
            .max(Timestamp::from_physical(physical_ms));
        Ok(self.last)
    }
}

/// The system's wall-clock time in unix milliseconds, for callers that feed [`Clock`].
///
/// The core never calls this; it exists so applications need not write it. A system clock
/// set before 1970 reads as 0.
pub fn system_time_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_known_dates() {
        assert_eq!(Timestamp::ZERO.to_string(), "1970-01-01T00:00:00.000Z#0");
        // 2000-02-29 (a leap day in a century year divisible by 400) 12:34:56.789.
        let t = Timestamp::new(951_827_696_789, 65_535).unwrap();
        assert_eq!(t.to_string(), "2000-02-29T12:34:56.789Z#65535");
        assert_eq!(
            Timestamp::from_physical(u64::MAX).to_string(),
            "10889-08-02T05:31:50.655Z#0"
        );
    }

    #[test]
    fn counter_overflow_carries_into_millis() {
        let mut clock = Clock::resume(
            ClockConfig::default(),
            Timestamp::new(10, u16::MAX).unwrap(),
        );
        assert_eq!(clock.send(0), Timestamp::new(11, 0).unwrap());
    }

    #[test]
    fn new_rejects_millis_beyond_48_bits() {
        assert!(Timestamp::new(Timestamp::MAX_MILLIS, 0).is_some());
        assert!(Timestamp::new(Timestamp::MAX_MILLIS + 1, 0).is_none());
    }

    #[test]
    fn error_names_remote_local_and_bound() {
        let clock = Clock::new(ClockConfig { max_drift_ms: 1000 });
        let remote = Timestamp::new(5_000, 1).unwrap();
        let err = clock.check(remote, 2_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "remote timestamp 1970-01-01T00:00:05.000Z#1 is 3000 ms ahead of local time \
             1970-01-01T00:00:02.000Z#0, beyond the max drift of 1000 ms"
        );
    }
}
