//! The simulator's randomness.

use crate::xof::XofRng;

/// A deterministic generator: BLAKE3 in XOF mode over the seed. Every random choice of a
/// run, keys included, comes from it, so a run replays from its seed.
///
/// It is deliberately not a `CryptoRng`: anyone who knows the seed knows its whole stream,
/// so keys or messages made from it would be public. The simulator hands its devices' key
/// generation a crate-private view of the same stream; applications use the operating
/// system's generator ([`crate::rng::os_rng`]).
pub struct SeededRng(XofRng);

impl SeededRng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("splitsafe v1 simulation rng");
        hasher.update(&seed.to_le_bytes());
        Self(XofRng::new(&hasher))
    }

    /// A number below `n` (0 if `n` is 0); the modulo bias is below 2^-40 for the small
    /// `n` used here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            rand_core::Rng::next_u64(&mut self.0) % n
        }
    }

    /// True with probability `permille` / 1000.
    pub fn chance(&mut self, permille: u16) -> bool {
        self.below(1000) < u64::from(permille)
    }

    /// The stream as a CSPRNG, for the simulated devices' keys and seals only.
    pub(crate) fn keys(&mut self) -> &mut XofRng {
        &mut self.0
    }
}
