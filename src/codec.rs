//! Bounded, strict CBOR encoding shared by every layer.
//!
//! Every decoder in this crate takes untrusted bytes. [`decode`] therefore refuses input
//! larger than a caller-given limit before parsing, bounds nesting depth, and refuses
//! trailing bytes after the value, so that one value has exactly one accepted encoding
//! length and a decoder never reads past what it was meant to read.

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

/// Decodes exactly one CBOR value of type `T` from `bytes`, at most `max_len` bytes long.
///
/// # Errors
///
/// [`DecodeError`] says what was wrong: too long, truncated, malformed, invalid for `T`,
/// nested too deeply, or followed by trailing bytes.
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
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<T, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let mut rest = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_NESTING).map_err(
        |e| match e {
            ciborium::de::Error::Io(_) => DecodeError::Truncated,
            ciborium::de::Error::Syntax(offset) => DecodeError::Syntax { offset },
            ciborium::de::Error::Semantic(_, reason) => DecodeError::Invalid { reason },
            ciborium::de::Error::RecursionLimitExceeded => DecodeError::TooDeep,
        },
    )?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: rest.len() });
    }
    Ok(value)
}
