//! A deterministic stream of pseudorandom bytes: BLAKE3 in XOF mode over a key that the
//! caller derives. Crate-private on purpose: it is a CSPRNG only when its key is secret, and
//! the crate uses it only where the key is public by design (batch-verification weights keyed
//! by the batch, the simulator's seeded runs).

/// BLAKE3's output stream as a [`rand_core::TryCryptoRng`].
pub(crate) struct XofRng(blake3::OutputReader);

impl XofRng {
    /// The stream of `hasher`'s output (a hasher in derive-key mode, fed the seed).
    pub(crate) fn new(hasher: &blake3::Hasher) -> Self {
        Self(hasher.finalize_xof())
    }
}

impl rand_core::TryRng for XofRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for XofRng {}
