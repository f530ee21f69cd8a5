//! Bounded, strict CBOR encoding shared by every layer.
//!
//! Every decoder in this crate takes untrusted bytes. [`decode`] therefore refuses input
//! larger than a caller-given limit before parsing, bounds nesting depth, refuses trailing
//! bytes after the value, and refuses every encoding of the value but the one [`encode`]
//! writes (`spec/formats.md`, "Encoding"): one value has exactly one accepted encoding, so
//! implementations agree on what they accept, and a copy cannot be altered in its
//! encoding alone.

use serde::{de::DeserializeOwned, Serialize};
use std::fmt;

/// The deepest nesting of CBOR arrays and maps [`decode`] follows before giving up.
///
/// Every type of this crate nests far less deeply; the bound keeps hostile input from
/// exhausting the stack.
pub const MAX_NESTING: usize = 32;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input is longer than the decoder accepts.
    TooLarge {
        /// Length of the input in bytes.
        len: usize,
        /// Largest accepted length in bytes.
        max: usize,
    },
    /// The input ended before the value was complete.
    Truncated,
    /// The bytes are not well-formed CBOR at the given offset.
    Syntax {
        /// Byte offset of the malformed item.
        offset: usize,
    },
    /// The CBOR is well formed but does not describe a valid value of the expected type.
    Invalid {
        /// What was wrong, as reported by the type's decoder.
        reason: String,
    },
    /// Arrays or maps nest deeper than [`MAX_NESTING`].
    TooDeep,
    /// A complete value was followed by bytes that belong to nothing.
    TrailingBytes {
        /// How many bytes followed the value.
        count: usize,
    },
    /// The value is valid but not in its deterministic encoding (keys out of order, an
    /// integer or length not in its shortest form, an indefinite length, a tag, an
    /// optional field present with its default value, ...).
    NotCanonical {
        /// Offset of the first byte that differs from the deterministic encoding.
        offset: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(f, "input of {len} bytes exceeds the limit of {max} bytes")
            }
            Self::Truncated => f.write_str("input ended before the value was complete"),
            Self::Syntax { offset } => write!(f, "malformed CBOR at byte {offset}"),
            Self::Invalid { reason } => write!(f, "invalid value: {reason}"),
            Self::TooDeep => write!(f, "nesting deeper than {MAX_NESTING} levels"),
            Self::TrailingBytes { count } => {
                write!(f, "{count} trailing bytes after the value")
            }
            Self::NotCanonical { offset } => write!(
                f,
                "not the deterministic encoding of the value: it differs at byte {offset}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encodes `value` as CBOR.
///
/// Serializing into memory cannot fail for the types of this crate: their `Serialize` impls
/// are derived or infallible, and writing into a `Vec` has no I/O error.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out)
        .expect("serializing a crate type into memory cannot fail");
    out
}

/// `BLAKE3-derive-key(context, CBOR of value)`, without holding the encoding in memory (a
/// summary of 100,000 authors encodes to 15 MB).
pub(crate) fn derive_key<T: Serialize + ?Sized>(context: &str, value: &T) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    ciborium::ser::into_writer(value, &mut hasher)
        .expect("serializing a crate type into a hasher cannot fail");
    *hasher.finalize().as_bytes()
}

/// Decodes exactly one CBOR value of type `T` from `bytes`, at most `max_len` bytes long,
/// in its deterministic encoding: the bytes [`encode`] writes for the value.
///
/// # Errors
///
/// [`DecodeError`] says what was wrong: too long, truncated, malformed, invalid for `T`,
/// nested too deeply, followed by trailing bytes, or not the value's deterministic encoding.
///
/// ```
/// use splitsafe::codec::{decode, encode, DecodeError};
///
/// let bytes = encode(&(1u8, "two"));
/// assert_eq!(decode::<(u8, String)>(&bytes, 64), Ok((1, "two".to_string())));
///
/// let mut long = bytes.clone();
/// long.push(0);
/// assert_eq!(decode::<(u8, String)>(&long, 64), Err(DecodeError::TrailingBytes { count: 1 }));
/// assert!(matches!(decode::<(u8, String)>(&bytes, 2), Err(DecodeError::TooLarge { .. })));
///
/// // 1 as a two-byte integer (0x18 0x01) is valid CBOR, but not the shortest form.
/// let long_int = [0x82, 0x18, 0x01, 0x63, b't', b'w', b'o'];
/// assert_eq!(decode::<(u8, String)>(&long_int, 64), Err(DecodeError::NotCanonical { offset: 1 }));
/// ```
pub fn decode<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    let value = decode_any_form(bytes, max_len)?;
    let mut check = Compare {
        expected: bytes,
        at: 0,
    };
    let written = ciborium::ser::into_writer(&value, &mut check);
    if written.is_err() || check.at != bytes.len() {
        return Err(DecodeError::NotCanonical { offset: check.at });
    }
    Ok(value)
}

/// As [`decode`], but accepting any encoding of the value: only for this crate's own
/// storage, whose rows an earlier version may have written without fields added since
/// (they decode to their defaults). Never for bytes another party wrote.
pub(crate) fn decode_stored<T: DeserializeOwned>(
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    // A store is read one small row at a time (100,000 operations when a device reopens):
    // ciborium's own entry points zero a fresh 4 KiB scratch buffer for each value, a tenth
    // of reopening. Stored rows reuse one buffer instead, and take ciborium's default
    // nesting bound (256): this code wrote them.
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 4096]);
    }
    read_one(bytes, max_len, |rest| {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => ciborium::de::from_reader_with_buffer(rest, &mut scratch),
            // A value whose decoding decodes another stored value: a buffer of its own.
            Err(_) => ciborium::de::from_reader_with_buffer(rest, &mut [0; 4096]),
        })
    })
}

/// Reads exactly one value off `bytes` (at most `max_len` of them) with `read`: the length
/// bound, the error mapping and the trailing-bytes check every decoder shares.
fn read_one<T>(
    bytes: &[u8],
    max_len: usize,
    read: impl FnOnce(&mut &[u8]) -> Result<T, ciborium::de::Error<std::io::Error>>,
) -> Result<T, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let mut rest = bytes;
    let value = read(&mut rest).map_err(decode_error)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: rest.len() });
    }
    Ok(value)
}

/// What a ciborium error says, as a [`DecodeError`].
fn decode_error(error: ciborium::de::Error<std::io::Error>) -> DecodeError {
    match error {
        ciborium::de::Error::Io(_) => DecodeError::Truncated,
        ciborium::de::Error::Syntax(offset) => DecodeError::Syntax { offset },
        ciborium::de::Error::Semantic(_, reason) => DecodeError::Invalid { reason },
        ciborium::de::Error::RecursionLimitExceeded => DecodeError::TooDeep,
    }
}

/// A writer that compares what is written with `expected` instead of storing it, so that
/// checking an encoding allocates nothing (a snapshot's body runs to megabytes).
struct Compare<'a> {
    expected: &'a [u8],
    /// How many bytes matched so far.
    at: usize,
}

impl std::io::Write for Compare<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let rest = &self.expected[self.at..];
        let same = rest.iter().zip(buf).take_while(|(a, b)| a == b).count();
        self.at += same;
        if same < buf.len() {
            return Err(std::io::Error::other("differs from the input"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn decode_any_form<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<T, DecodeError> {
    read_one(bytes, max_len, |rest| {
        ciborium::de::from_reader_with_recursion_limit(rest, MAX_NESTING)
    })
}
