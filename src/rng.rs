//! The operating system's random number generator: the one to use for identities, keyrings
//! and sealing.
//!
//! ```
//! use splitsafe::crypto::{Keyring, KeyringConfig};
//! use splitsafe::keys::Identity;
//!
//! let mut rng = splitsafe::rng::os_rng();
//! let identity = Identity::generate(&mut rng);
//! let keyring = Keyring::new(identity, KeyringConfig::default(), &mut rng, 1_795_694_400_000);
//! # let _ = keyring;
//! ```
//!
//! Every API that needs randomness takes a `rand_core::CryptoRng` argument, so tests can pass
//! a seeded generator and replay; production code passes this one. The simulator's
//! [`SeededRng`](crate::sim::SeededRng) is not a `CryptoRng`, so it cannot be passed by
//! mistake:
//!
//! ```compile_fail
//! fn keys_from<R: rand_core::CryptoRng>(_: &mut R) {}
//! keys_from(&mut splitsafe::sim::SeededRng::new(7));
//! ```
//!
//! ```
//! fn keys_from<R: rand_core::CryptoRng>(_: &mut R) {}
//! keys_from(&mut splitsafe::rng::os_rng());
//! ```

/// The operating system's CSPRNG (`getrandom`), which panics if the operating system cannot
/// provide randomness: there is no safe way to go on without it.
pub type OsRng = rand_core::UnwrapErr<getrandom::SysRng>;

/// The operating system's CSPRNG.
pub fn os_rng() -> OsRng {
    rand_core::UnwrapErr(getrandom::SysRng)
}
