//! Export and import of a keyring's secrets, for backups and for a device's own storage.
//!
//! The body, in the frame of [`crate::keys`] exports (magic `"splitsafe keyring\0"`,
//! version 1, checksum), integers big-endian:
//!
//! ```text
//! identity secret (32) || created (u64) || count (u16)
//!   || count x (X25519 secret (32) || retired (1: 0 or 1) || retired at (u64))
//! ```
//!
//! Keys are oldest first; exactly the last is current (not retired, retired-at 0).
//! **The export is the keyring's secrets in clear**: whoever holds it can read every message
//! sealed to those keys and sign as the member. Store it where the platform protects secrets,
//! or encrypt it. Cached pairwise keys are not exported: they are derived again when needed.

use super::keyring::Keyring;
use super::KeyringConfig;
use crate::clock::Timestamp;
use crate::keys::backup::{FrameReader, FrameWriter};
use crate::keys::{BackupError, Identity};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

const MAGIC: &[u8] = b"splitsafe keyring\0";
const KEY_LEN: usize = 32 + 1 + 8;

impl Keyring {
    /// The keyring's identity and encryption secrets (current and retired, with their
    /// retirement times), versioned and checksummed; see the module docs for the layout.
    /// The buffer is allocated once at its final size and zeroized when dropped.
    ///
    /// ```
    /// use splitsafe::crypto::{Keyring, KeyringConfig};
    /// use splitsafe::keys::Identity;
    ///
    /// let mut rng = splitsafe::rng::os_rng();
    /// let config = KeyringConfig::default();
    /// let keyring = Keyring::new(Identity::generate(&mut rng), config, &mut rng, 0);
    /// let saved = keyring.export();
    /// let restored = Keyring::import(&saved, config).unwrap();
    /// assert_eq!(restored.bundle(), keyring.bundle());
    /// ```
    pub fn export(&self) -> Zeroizing<Vec<u8>> {
        let mut out = FrameWriter::new(MAGIC, 32 + 8 + 2 + self.own.len() * KEY_LEN);
        out.put(self.identity.secret_bytes().as_ref());
        out.put(&self.created().as_raw().to_be_bytes());
        let count = u16::try_from(self.own.len()).expect("fewer than 65,536 keys held");
        out.put(&count.to_be_bytes());
        for key in &self.own {
            out.put(Zeroizing::new(key.secret_bytes()).as_ref());
            out.put(&[u8::from(key.retired_at().is_some())]);
            out.put(&key.retired_at().unwrap_or(0).to_be_bytes());
        }
        out.finish()
    }

    /// Rebuilds a keyring from [`export`](Self::export)'s bytes, with `config` (settings are
    /// not part of the export). Secrets pass through zeroized buffers only.
    ///
    /// # Errors
    ///
    /// [`BackupError`] saying what is wrong with the bytes.
    pub fn import(bytes: &[u8], config: KeyringConfig) -> Result<Self, BackupError> {
        let mut body = FrameReader::open(MAGIC, bytes)?;
        let identity = Identity::from_secret_bytes(*body.secret()?);
        let created = Timestamp::from_raw(body.u64()?);
        let count = u16::from_be_bytes(body.take(2)?.try_into().expect("2 bytes"));
        if count == 0 {
            return Err(BackupError::Invalid("no encryption key"));
        }
        let mut keyring = Self::restore(identity, config, created);
        for index in 0..count {
            let secret = body.secret()?;
            let flag = body.take(1)?[0];
            let retired_at = body.u64()?;
            let retired_at = match (flag, index + 1 == count) {
                (0, true) if retired_at == 0 => None,
                (1, false) => Some(retired_at),
                (0 | 1, _) => return Err(BackupError::Invalid("exactly the last key is current")),
                _ => return Err(BackupError::Invalid("a retired flag is neither 0 nor 1")),
            };
            keyring.push_restored(StaticSecret::from(*secret), retired_at);
        }
        body.end()?;
        Ok(keyring)
    }
}
