//! The versioned, checksummed frame of secret exports (identities, keyrings):
//!
//! ```text
//! magic || version (1) || body || checksum (16)
//! ```
//!
//! The checksum is the first 16 bytes of BLAKE3 (derive-key context `"splitsafe v1 backup"`)
//! of everything before it: it catches damage, not tampering. Frames are built in buffers
//! allocated once at their final size and zeroized when dropped.

use std::fmt;
use zeroize::Zeroizing;

/// The version of every frame this code writes.
pub(crate) const VERSION: u8 = 1;
const CHECKSUM_LEN: usize = 16;

/// Why an export could not be imported. Nothing is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupError {
    /// The bytes do not start with the magic of the expected kind of export.
    WrongKind,
    /// A version this code does not read.
    UnsupportedVersion(u8),
    /// Too short, or a length that disagrees with what the content says.
    WrongLength,
    /// The checksum does not match: the bytes were damaged.
    BadChecksum,
    /// The content breaks a rule of its layout.
    Invalid(&'static str),
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongKind => f.write_str("not a splitsafe export of the expected kind"),
            Self::UnsupportedVersion(v) => write!(f, "export version {v} is not supported"),
            Self::WrongLength => f.write_str("export length disagrees with its content"),
            Self::BadChecksum => f.write_str("export checksum mismatch: the bytes were damaged"),
            Self::Invalid(reason) => write!(f, "invalid export: {reason}"),
        }
    }
}

impl std::error::Error for BackupError {}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let hash = blake3::derive_key("splitsafe v1 backup", bytes);
    hash[..CHECKSUM_LEN].try_into().expect("16 of 32 bytes")
}

/// A frame under construction: write the body, then [`finish`](Self::finish).
pub(crate) struct FrameWriter(Zeroizing<Vec<u8>>);

impl FrameWriter {
    pub(crate) fn new(magic: &[u8], body_len: usize) -> Self {
        let mut out = Vec::with_capacity(magic.len() + 1 + body_len + CHECKSUM_LEN);
        out.extend_from_slice(magic);
        out.push(VERSION);
        Self(Zeroizing::new(out))
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn finish(mut self) -> Zeroizing<Vec<u8>> {
        let sum = checksum(&self.0);
        self.0.extend_from_slice(&sum);
        debug_assert_eq!(self.0.len(), self.0.capacity(), "the body length was exact");
        self.0
    }
}

/// Reads a frame's body front to back, after its magic, version and checksum are checked.
pub(crate) struct FrameReader<'a> {
    body: &'a [u8],
}

impl<'a> FrameReader<'a> {
    pub(crate) fn open(magic: &[u8], bytes: &'a [u8]) -> Result<Self, BackupError> {
        let rest = bytes.strip_prefix(magic).ok_or(BackupError::WrongKind)?;
        let (&version, rest) = rest.split_first().ok_or(BackupError::WrongLength)?;
        if version != VERSION {
            return Err(BackupError::UnsupportedVersion(version));
        }
        let split = rest
            .len()
            .checked_sub(CHECKSUM_LEN)
            .ok_or(BackupError::WrongLength)?;
        let (body, sum) = rest.split_at(split);
        if checksum(&bytes[..bytes.len() - CHECKSUM_LEN]) != sum {
            return Err(BackupError::BadChecksum);
        }
        Ok(Self { body })
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], BackupError> {
        if self.body.len() < n {
            return Err(BackupError::WrongLength);
        }
        let (part, rest) = self.body.split_at(n);
        self.body = rest;
        Ok(part)
    }

    pub(crate) fn secret(&mut self) -> Result<Zeroizing<[u8; 32]>, BackupError> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(self.take(32)?);
        Ok(out)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, BackupError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// The body is used up.
    pub(crate) fn end(self) -> Result<(), BackupError> {
        if self.body.is_empty() {
            Ok(())
        } else {
            Err(BackupError::WrongLength)
        }
    }
}
